"""Generalisation with bounds: what folds, what never does, and that an attacker's variant of a
generalised entry still misses the profile."""

from __future__ import annotations

from collections import Counter

import pytest

from gadgetclient.events import Container, Event
from profiler.cache import CompiledProfile
from profiler.collapsing import PathMatcher, Thresholds, collapse_opens
from profiler.dirstore import DirectoryStore
from profiler.generalizing import (
    ALL,
    NONE,
    ArgNormalizer,
    Generalization,
    arg_normalizer,
    collapse_dns,
    file_shape,
    generalized_entries,
    is_public_suffix,
    label_shape,
    ordinal_of,
    parse_generalize,
)
from profiler.identity import WorkloadKey
from profiler.learning import Learner
from profiler.profiles import Entries, Profile
from tests.profiler.helpers import T0, FakePods, S, container, dns, exec_, learner, open_

RO = frozenset({"O_RDONLY"})
W = frozenset({"O_WRONLY", "O_CREAT", "O_APPEND"})
THRESHOLDS = Thresholds(default=50)


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("access.log.1", "access.log.⟨n⟩"),
        ("app.2025-12-08.60.log.gz", "app.⟨date⟩.⟨n⟩.log.gz"),
        ("app-2025_12_08-13.log", "app-⟨date⟩.log"),
        ("000073.sst", "⟨n⟩.sst"),
        ("MANIFEST-000012", "MANIFEST-⟨n⟩"),
        ("00000001000000000000000A", "⟨n⟩"),
        ("0000000000000001-00000000000000ab.wal", "⟨n⟩-⟨n⟩.wal"),
        ("20251208.log", "⟨n⟩.log"),  # a compact date is indistinguishable from a counter
        ("access.log", "access.log"),
        ("deadbeefcafebabe", "deadbeefcafebabe"),  # hex-looking word without a digit
        # A short random hex token (a session id) has no numbered shape: the name stays as is.
        ("sess_00001eef", "sess_00001eef"),
        ("tmp.4f2a9c", "tmp.4f2a9c"),
        ("sess_00000000", "sess_⟨n⟩"),  # digits only: a counter as far as anyone can tell
    ],
)
def test_file_shapes(name: str, shape: str) -> None:
    assert file_shape(name) == shape


def test_rotated_names_collapse_once_the_directory_shows_the_pattern() -> None:
    opens = {
        "/var/log/app/access.log": W,
        "/var/log/app/access.log.1": RO,
        "/var/log/app/access.log.2": RO,
        "/var/log/app/app.2025-12-08.60.log.gz": W,
        "/var/log/app/app.2025-12-08.61.log.gz": W,
        "/data/db/000073.sst": RO,
        "/data/db/000074.sst": RO,
        "/data/db/000075.log": W,  # one name of this shape: stays literal
        "/etc/app.conf": RO,
    }
    counts: Counter[str] = Counter()
    out = collapse_opens(opens, THRESHOLDS, rotation=2, counts=counts)
    assert out == {
        "/var/log/app/access.log": W,
        "/var/log/app/access.log.⟨n⟩": RO,
        "/var/log/app/app.⟨date⟩.⟨n⟩.log.gz": W,
        "/data/db/⟨n⟩.sst": RO,
        "/data/db/000075.log": W,
        "/etc/app.conf": RO,
    }
    assert counts == {"files": 6}
    # Off: nothing folds.
    assert collapse_opens(opens, THRESHOLDS, rotation=0) == opens
    # A pattern already learned absorbs later literals of its shape, even one at a time.
    again = collapse_opens(out | {"/data/db/000090.sst": W}, THRESHOLDS, rotation=2)
    assert again["/data/db/⟨n⟩.sst"] == RO | W
    assert "/data/db/000090.sst" not in again


def test_numbered_directories_collapse_too() -> None:
    opens = {
        "/var/lib/postgresql/data/base/16384/2619": RO,
        "/var/lib/postgresql/data/base/16385/2620": RO,
    }
    out = collapse_opens(opens, THRESHOLDS, rotation=2)
    assert out == {"/var/lib/postgresql/data/base/⟨n⟩/⟨n⟩": RO}


def test_a_different_file_name_shape_in_the_same_directory_still_misses() -> None:
    opens = collapse_opens(
        {
            "/var/log/app/access.log.1": RO,
            "/var/log/app/access.log.2": RO,
            "/data/db/000073.sst": RO,
            "/data/db/000074.sst": RO,
        },
        THRESHOLDS,
        rotation=2,
    )
    matcher = PathMatcher(opens)
    assert matcher.covers("/var/log/app/access.log.17", ["O_RDONLY"])
    assert matcher.covers("/data/db/000912.sst", ["O_RDONLY"])
    # The attacker's variants: another extension, a suffix, another prefix, another depth.
    for path in (
        "/var/log/app/access.log.1.sh",
        "/var/log/app/access.log.x",
        "/var/log/app/evil.log.1",
        "/var/log/app/access.log",
        "/data/db/000912.so",
        "/data/db/000912.sst/x",
        "/data/db/x000912.sst",
        "/data/db/⟨n⟩.sst.sh",
    ):
        assert not matcher.covers(path, ["O_RDONLY"]), path
    # Flags still count: the pattern was learned read-only.
    assert not matcher.covers("/data/db/000912.sst", ["O_WRONLY"])


# -- dns -----------------------------------------------------------------------------------------


def test_label_shapes() -> None:
    assert label_shape("r3---sn-4g5e6nsz") == "X---sn-X"
    assert label_shape("rr1---sn-ab5l6nrz") == "X---sn-X"
    assert label_shape("api-12") == "api-N"
    assert label_shape("www") is None
    assert label_shape("static") is None


def _cdn(n: int, parent: str = "googlevideo.com") -> dict[str, frozenset[str]]:
    edges = ["r3---sn-4g5e6nsz", "r1---sn-ab5l6nrz", "r5---sn-h5q7dnel", "r2---sn-q4fl6n6s"]
    return {f"{edge}.{parent}": frozenset({f"172.217.0.{i}"}) for i, edge in enumerate(edges[:n])}


def test_generated_names_under_one_parent_become_a_wildcard_by_threshold() -> None:
    names = _cdn(4) | {"www.example.com": frozenset({"93.184.216.34"})}
    result = collapse_dns(names, threshold=4)
    assert result.dns == {
        "*.googlevideo.com": frozenset({f"172.217.0.{i}" for i in range(4)}),
        "www.example.com": frozenset({"93.184.216.34"}),
    }
    assert (result.folded, result.refused) == (4, 0)
    # Below the threshold nothing folds.
    assert collapse_dns(_cdn(3), threshold=4).dns == _cdn(3)
    # A learned wildcard takes later names of the parent.
    later = result.dns | {"r9---sn-zzzz1.googlevideo.com": frozenset({"172.217.9.9"})}
    assert set(collapse_dns(later, threshold=4).dns) == {"*.googlevideo.com", "www.example.com"}


@pytest.mark.parametrize("parent", ["com", "co.uk", "cloudfront.net", "s3.amazonaws.com", "svc"])
def test_never_a_public_suffix(parent: str) -> None:
    assert is_public_suffix(parent)
    names: dict[str, frozenset[str]] = {f"d{i}x{i}a.{parent}": frozenset() for i in range(10)}
    result = collapse_dns(names, threshold=2)
    assert result.dns == names
    assert result.refused == 1


def test_a_learned_wildcard_does_not_cover_another_tld_or_parent() -> None:
    entries = Entries(dns=collapse_dns(_cdn(4), threshold=4).dns)
    view = CompiledProfile(
        Profile(WorkloadKey("shop", "Deployment", "proxy", "envoy"), entries=entries)
    )
    assert view.allows_domain("r7---sn-abc12.googlevideo.com")
    for name in (
        "r7---sn-abc12.googlevideo.xyz",
        "googlevideo.com.evil.io",
        "r7---sn-abc12.googlevideo.co",
        "xgooglevideo.com",
    ):
        assert not view.allows_domain(name), name


# -- arguments -----------------------------------------------------------------------------------


def _db(ordinal: int) -> Container:
    return container(
        cid=f"db{ordinal}",
        pod=f"db-{ordinal}",
        name="db",
        owner=("StatefulSet", "db"),
        labels=(("app", "db"),),
    )


def test_own_identity_in_arguments_becomes_placeholders() -> None:
    norm = ArgNormalizer(pod="db-3", ordinal="3", pod_ip="10.244.1.20", node="worker-7")
    args = (
        "/usr/bin/db",
        "--advertise-host",
        "db-3.db.shop.svc.cluster.local",
        "--name=db-3",
        "--id",
        "3",
        "--index=3",
        "--listen=10.244.1.20:5432",
        "--node-name=worker-7",
    )
    assert norm.normalize(args) == (
        "/usr/bin/db",
        "--advertise-host",
        "⟨pod⟩.db.shop.svc.cluster.local",
        "--name=⟨pod⟩",
        "--id",
        "⟨ordinal⟩",
        "--index=⟨ordinal⟩",
        "--listen=⟨pod-ip⟩:5432",
        "--node-name=⟨node⟩",
    )
    # Not inside longer names or numbers: everything else stays exact (the same tuple object).
    other = ("db-30", "xdb-3", "db-3-data", "33", "--id=33", "10.244.1.200", "110.244.1.20", "3x")
    assert norm.normalize(other) is other


def test_ordinal_only_for_statefulset_pods() -> None:
    assert ordinal_of(_db(4)) == "4"
    assert ordinal_of(container(pod="web-5d4f-abcde")) == ""
    labelled = container(pod="db-x", owner=("StatefulSet", "db"),
                         labels=(("apps.kubernetes.io/pod-index", "2"),))  # fmt: skip
    assert ordinal_of(labelled) == "2"
    assert not ArgNormalizer(pod="ab", node="n")  # too short to be replaced safely


@pytest.mark.parametrize(
    ("value", "kinds"),
    [
        ("none", NONE),
        ("false", NONE),
        ("all", ALL),
        ("dns, files", frozenset({Generalization.DNS, Generalization.FILES})),
        ("args", frozenset({Generalization.ARGS})),
        ("dns,bogus", None),
    ],
)
def test_annotation_values(value: str, kinds: frozenset[Generalization] | None) -> None:
    assert parse_generalize(value) == kinds


# -- the learner ---------------------------------------------------------------------------------


def _learn_statefulset(store: DirectoryStore, pods: FakePods | None = None) -> Learner:
    lrn = learner(store, pods=pods, attached_at_ns=T0)
    events: list[Event] = []
    for k in range(2):
        c = _db(k)
        events += [
            exec_(
                c,
                T0 + S + k,
                "/usr/bin/db",
                "--advertise-host",
                f"db-{k}.db.shop.svc",
                "--id",
                str(k),
                "--node",
                "n1",
            ),
            open_(c, T0 + 2 * S + k, f"/data/db/00007{k}.sst", "O_RDONLY"),
            dns(c, T0 + 3 * S + k, f"r{k}---sn-4g5e6n{k}z.googlevideo.com", "172.217.0.1"),
            dns(c, T0 + 3 * S + 10 + k, f"r{k + 2}---sn-4g5e6n{k}z.googlevideo.com"),
        ]
    lrn.observe(events)
    return lrn


async def test_learner_stores_generalised_entries_and_counts_them(store: DirectoryStore) -> None:
    lrn = _learn_statefulset(store)
    await lrn.flush()
    key = WorkloadKey("shop", "StatefulSet", "db", "db")
    # While learning, numbered file names stay literal (the directory's size decides `*`)...
    learning = await store.get(key)
    assert learning is not None
    assert set(learning.entries.opens) == {"/data/db/000070.sst", "/data/db/000071.sst"}
    # ...and become patterns when the learning period ends.
    lrn.tick(2**62)
    await lrn.flush()
    stored = await store.get(key)
    assert stored is not None
    entries = stored.entries
    assert entries.execs == {
        "/usr/bin/db": frozenset(
            {
                (
                    "/usr/bin/db",
                    "--advertise-host",
                    "⟨pod⟩.db.shop.svc",
                    "--id",
                    "⟨ordinal⟩",
                    "--node",
                    "n1",  # node names under 3 characters are never replaced
                )
            }
        )
    }
    assert set(entries.opens) == {"/data/db/⟨n⟩.sst"}
    assert set(entries.dns) == {"*.googlevideo.com"}
    # Both replicas' argument lists became one entry; it was stored once.
    assert lrn.stats.generalized == {"args": 1, "files": 2, "dns": 4}
    shown = [(k.value, text) for k, text in generalized_entries(entries.execs, entries.opens,
                                                                 entries.dns)]  # fmt: skip
    assert [k for k, _ in shown] == ["dns", "files", "args"]


async def test_the_annotation_turns_generalisation_off_per_workload(store: DirectoryStore) -> None:
    off = {f"db-{k}": {"gadgetwatch.io/generalize": "none"} for k in range(2)}
    lrn = _learn_statefulset(store, FakePods(annotations=off))
    await lrn.flush()
    stored = await store.get(WorkloadKey("shop", "StatefulSet", "db", "db"))
    assert stored is not None
    assert len(stored.entries.execs["/usr/bin/db"]) == 2
    assert set(stored.entries.opens) == {"/data/db/000070.sst", "/data/db/000071.sst"}
    assert len(stored.entries.dns) == 4
    assert not lrn.stats.generalized


async def test_a_bad_annotation_is_counted_and_the_settings_apply(store: DirectoryStore) -> None:
    bad = {f"db-{k}": {"gadgetwatch.io/generalize": "everything"} for k in range(2)}
    lrn = _learn_statefulset(store, FakePods(annotations=bad))
    assert lrn.stats.errors[("annotation", "invalid")] == 2
    lrn.tick(2**62)
    await lrn.flush()
    stored = await store.get(WorkloadKey("shop", "StatefulSet", "db", "db"))
    assert stored is not None
    assert set(stored.entries.opens) == {"/data/db/⟨n⟩.sst"}


def test_pod_ip_from_the_pod_metadata_is_used_for_arguments() -> None:
    norm = arg_normalizer(_db(1), "10.244.1.21")
    assert norm.normalize(("--bind", "10.244.1.21")) == ("--bind", "⟨pod-ip⟩")
