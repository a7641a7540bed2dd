"""The R0011 resolved-address table's bounds, and R1008's packaged domain list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector import mining
from detector.mining import DomainSet, MiningDataError, is_mining_domain, load_domains
from detector.resolved import ResolvedAddresses

SEC = 1_000_000_000


class Domains:
    """A `ProfileView` stand-in that answers only `allows_domain`."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)

    def allows_domain(self, name: str) -> bool:
        return name in self.names


def table(**kw: int) -> ResolvedAddresses:
    return ResolvedAddresses(
        ttl_ns=kw.get("ttl", 60) * SEC,
        max_addresses=kw.get("addresses", 4),
        max_workloads=kw.get("workloads", 2),
    )


def test_answer_allows_only_while_fresh_and_only_for_profiled_names() -> None:
    t = table()
    t.record("w", "cdn.example.com", ("1.2.3.4",), 0)
    profile = Domains("cdn.example.com")
    assert t.allowed_by("w", "1.2.3.4", profile, 59 * SEC) == "cdn.example.com"
    assert t.allowed_by("w", "1.2.3.4", Domains("other.example"), 59 * SEC) is None
    assert t.allowed_by("w", "1.2.3.5", profile, 1) is None
    assert t.allowed_by("other", "1.2.3.4", profile, 1) is None
    assert t.allowed_by("w", "1.2.3.4", profile, 60 * SEC) is None
    assert t.evictions["expired"] == 1
    assert len(t) == 0


def test_one_of_several_names_for_an_address_is_enough() -> None:
    t = table()
    t.record("w", "evil.example", ("1.2.3.4",), 0)
    t.record("w", "cdn.example.com", ("1.2.3.4",), 0)
    assert t.allowed_by("w", "1.2.3.4", Domains("cdn.example.com"), SEC) == "cdn.example.com"


def test_a_flood_of_answers_stays_bounded_and_is_counted() -> None:
    t = table(addresses=4, workloads=2)
    for i in range(100):
        t.record("w", "flood.example", (f"9.9.{i // 256}.{i % 256}",), i)
    assert len(t) == 4
    assert t.evictions["capacity"] == 96
    # The newest answers survive, the oldest were evicted first.
    profile = Domains("flood.example")
    assert t.allowed_by("w", "9.9.0.99", profile, 100) == "flood.example"
    assert t.allowed_by("w", "9.9.0.0", profile, 100) is None
    t.record("a", "x.example", ("1.1.1.1", "1.1.1.2"), 0)
    t.record("b", "x.example", ("1.1.1.3",), 0)
    assert t.evictions["workloads"] == 4  # workload "w" and its four addresses
    assert len(t) == 3


def test_zero_ttl_disables_the_table() -> None:
    t = table(ttl=0)
    t.record("w", "cdn.example.com", ("1.2.3.4",), 0)
    assert len(t) == 0


def test_packaged_list_has_provenance_and_covers_kubescape() -> None:
    """Every name of Kubescape's R1008 (its Helm chart's default rules, listed in
    tests/data/kubescape/r1008-mining-domains.txt) is matched, and the file says where its names
    come from and when."""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", mining.MINING_DOMAINS_UPDATED)
    listing = (
        Path(__file__).resolve().parents[1] / "data" / "kubescape" / "r1008-mining-domains.txt"
    )
    names = [
        line.strip()
        for line in listing.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(names) > 100
    assert [n for n in names if not is_mining_domain(n)] == []
    assert is_mining_domain("a.b.xmr.gntl.uk")
    assert not is_mining_domain("gntl.uk")
    assert not is_mining_domain("example.com")


def test_bindings_extend_the_list_without_changing_the_default() -> None:
    extended = DomainSet(["Pool.Example.ORG."])
    assert extended.matches("eu.pool.example.org")
    assert extended.matches("nanopool.org")
    assert not is_mining_domain("eu.pool.example.org")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "expected a mapping"),
        ("a: [", "not YAML"),
        ("sources: [x]\npools: []\nkubescape: []\n", "`updated`"),
        ("updated: '2026-01-01'\npools: []\nkubescape: []\n", "`sources`"),
        ("updated: '2026-01-01'\nsources: [x]\npools: [1]\nkubescape: []\n", "`pools`"),
        ("updated: '2026-01-01'\nsources: [x]\npools: []\n", "`kubescape`"),
    ],
)
def test_a_broken_list_fails_loudly(text: str, problem: str) -> None:
    with pytest.raises(MiningDataError, match=re.escape(problem)):
        load_domains(text)
