"""Process-aware anomaly rules: a known resource reached by an executable that never did.

R0002, R0005, R0006, R0011 and R2100 against profiles that record processes (the in-memory
read model's `sources`), with the clean-event memo on: the memo key must carry the acting
process, or the intruder's event would be answered "clean" from the rightful process's one.
Also: profiles without process sets behave as before, unknown executables fall back to comm,
hostile executable strings stay inert in messages, and fix suggestions name the intruder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from detector.alerts import Alert
from detector.stats import DetectorStats
from gadgetclient.events import Event, EventKind, ExecEvent, PeerIdentity, Process
from profiler.identity import PeerKey, peer_key
from tests.detector.builders import (
    T0,
    WEB,
    WEB_KEY,
    binding_yaml,
    dns_ev,
    make_detector,
    open_ev,
    tcp_ev,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "alert.schema.json").read_text()
)
CAT, SH = "/bin/cat", "/bin/sh"
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
DATABASE = "52.31.20.5"


def started(exe: str, pid: int, *, t: int = 0) -> ExecEvent:
    name = exe.rsplit("/", 1)[-1][:15]
    return ExecEvent(
        timestamp_ns=T0 + t,
        container=WEB,
        process=Process(pid=pid, comm=name, ppid=1, pcomm="gunicorn"),
        path=exe,
        args=(name,),
        parent_exe="/usr/local/bin/gunicorn",
    )


def as_pid(event: Any, pid: int, comm: str) -> Any:
    return replace(event, process=Process(pid=pid, comm=comm, ppid=1, pcomm="gunicorn"))


def profile(**sources: Any) -> MemoryProfile:
    p = MemoryProfile(
        key=WEB_KEY,
        opens={TOKEN: {"O_RDONLY"}, "/etc/app.conf": {"O_RDONLY"}},
        domains={"db.example.com"},
        egress={(DATABASE, 5432, "TCP"), ("10.244.2.9", 5432, "TCP")},
        peers={(PeerKey("pod", "data", "db"), 5432)},
    )
    p.sources = dict(sources.get("sources", {}))
    return p


AWARE = {
    ("open", TOKEN): frozenset({CAT}),
    ("open", "/etc/app.conf"): frozenset({"*"}),
    ("dns", "db.example.com"): frozenset({"/usr/bin/pg_dump"}),
    ("egress", (DATABASE, 5432, "TCP")): frozenset({"/usr/bin/pg_dump"}),
    ("peer", (PeerKey("pod", "data", "db"), 5432)): frozenset({"/usr/bin/pg_dump"}),
}


def detect(events: list[Event], sources: Any = AWARE, rules: tuple[str, ...] = ()) -> list[Alert]:
    d = make_detector(
        binding_yaml(*(rules or ("R0002", "R0005", "R0006", "R0011", "R2100"))),
        profiles=MemoryProfiles([profile(sources=sources)]),
    )
    return d.evaluate(events)


def ids(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(str(a.rule.id), a.process.comm) for a in alerts]


def test_the_token_read_by_the_learned_process_is_clean_and_by_another_alerts() -> None:
    events: list[Event] = [
        started(CAT, 10),
        as_pid(open_ev(TOKEN, t=1), 10, "cat"),
        started(SH, 11, t=2),
        as_pid(open_ev(TOKEN, t=3), 11, "sh"),
        # cat again after sh: the memo holds cat's clean open; sh's repeat is deduplicated.
        as_pid(open_ev(TOKEN, t=4), 10, "cat"),
        as_pid(open_ev(TOKEN, t=5), 11, "sh"),
    ]
    alerts = detect(events)
    assert sorted(ids(alerts)) == [("R0002", "sh"), ("R0006", "sh")]
    for alert in alerts:  # the published alert schema knows the new field
        jsonschema.validate(alert.to_dict(), SCHEMA)
    r0006 = next(a for a in alerts if a.rule.id == "R0006")
    assert "by /bin/sh" in r0006.message
    assert "learned: /bin/cat" in r0006.message
    assert r0006.event["knownProcesses"] == [CAT]
    # The fix suggestion's first form allows exactly this executable for this path.
    assert "fromSource:\n    - path: /bin/sh" in r0006.fix_suggestion


def test_the_memo_key_carries_the_process() -> None:
    # The intruder's open comes after the rightful one was memoised as clean.
    events: list[Event] = [
        started(CAT, 10),
        *[as_pid(open_ev(TOKEN, t=k), 10, "cat") for k in range(1, 4)],
        started(SH, 11, t=5),
        as_pid(open_ev(TOKEN, t=6), 11, "sh"),
    ]
    assert ids(detect(events, rules=("R0002",))) == [("R0002", "sh")]


def test_database_reached_by_pg_dump_is_clean_and_by_curl_alerts() -> None:
    events: list[Event] = [
        started("/usr/bin/pg_dump", 20),
        as_pid(dns_ev("db.example.com", t=1), 20, "pg_dump"),
        as_pid(tcp_ev(DATABASE, 5432, t=2), 20, "pg_dump"),
        started("/usr/bin/curl", 21, t=3),
        as_pid(dns_ev("db.example.com", t=4), 21, "curl"),
        as_pid(tcp_ev(DATABASE, 5432, t=5), 21, "curl"),
    ]
    alerts = detect(events)
    assert sorted(ids(alerts)) == [("R0005", "curl"), ("R0011", "curl")]
    egress = next(a for a in alerts if a.rule.id == "R0011")
    assert "by /usr/bin/curl" in egress.message
    assert "learned: /usr/bin/pg_dump" in egress.message


def test_in_cluster_peer_known_by_identity_alerts_for_another_process() -> None:
    db = PeerIdentity(kind="pod", name="db-0", namespace="data")
    events: list[Event] = [
        started("/usr/bin/pg_dump", 20),
        as_pid(tcp_ev("10.244.2.9", 5432, peer=db, t=1), 20, "pg_dump"),
        started("/usr/bin/nc", 21, t=2),
        as_pid(tcp_ev("10.244.2.9", 5432, peer=db, t=3), 21, "nc"),
    ]
    key = peer_key(db, "10.244.2.9")  # the identity the profile compares peers by
    sources = {("peer", (key, 5432)): frozenset({"/usr/bin/pg_dump"})}
    p = profile(sources=sources)
    p.peers = {(key, 5432)}
    d = make_detector(binding_yaml("R2100"), profiles=MemoryProfiles([p]))
    alerts = d.evaluate(events)
    assert ids(alerts) == [("R2100", "nc")]
    assert alerts[0].event["knownProcesses"] == ["/usr/bin/pg_dump"]


def test_profiles_without_process_sets_keep_todays_meaning() -> None:
    events: list[Event] = [
        started(SH, 11),
        as_pid(open_ev(TOKEN, t=1), 11, "sh"),
        as_pid(tcp_ev(DATABASE, 5432, t=2), 11, "sh"),
    ]
    assert detect(events, sources={}) == []


def test_any_process_entries_never_alert() -> None:
    events: list[Event] = [started(SH, 11), as_pid(open_ev("/etc/app.conf", t=1), 11, "sh")]
    assert detect(events) == []


@pytest.mark.parametrize(("comm", "alerts"), [("cat", 0), ("sh", 1)])
def test_an_unknown_executable_is_compared_by_comm(comm: str, alerts: int) -> None:
    # No exec seen for pid 30 (it predates the agent): its comm is all there is.
    events: list[Event] = [as_pid(open_ev(TOKEN, t=1), 30, comm)]
    found = detect(events, rules=("R0002",))
    assert len(found) == alerts
    if found:
        assert "sh (executable unknown)" in found[0].message


def test_hostile_executables_stay_inert_in_messages() -> None:
    evil = "/tmp/\u202eevil\n[ERROR] forged line \x1b[31m"
    events: list[Event] = [started(evil, 40), as_pid(open_ev(TOKEN, t=1), 40, "evil")]
    (alert,) = detect(events, rules=("R0002",))
    assert "\n" not in alert.message
    assert "\x1b" not in alert.message
    assert "\u202e" not in alert.message
    assert "learned: /bin/cat" in alert.message


def test_each_intruder_is_deduplicated_on_its_own() -> None:
    events: list[Event] = [
        started(SH, 11),
        as_pid(open_ev(TOKEN, t=1), 11, "sh"),
        started("/usr/bin/python3", 12, t=2),
        as_pid(open_ev(TOKEN, t=3), 12, "python3"),
        as_pid(open_ev(TOKEN, t=4), 11, "sh"),
    ]
    assert ids(detect(events, rules=("R0002",))) == [("R0002", "sh"), ("R0002", "python3")]


def test_the_memo_remembers_which_executables_an_event_is_clean_for() -> None:
    sources = {("open", TOKEN): frozenset({CAT, "/usr/bin/head"})}
    stats = DetectorStats()
    d = make_detector(
        binding_yaml("R0002"), profiles=MemoryProfiles([profile(sources=sources)]), stats=stats
    )
    events: list[Event] = [
        started(CAT, 10),
        started("/usr/bin/head", 11),
        started(SH, 12),
        as_pid(open_ev(TOKEN, t=1), 10, "cat"),  # evaluated: clean for {cat, head}
        as_pid(open_ev(TOKEN, t=2), 11, "head"),  # a hit: head is in the learned set
        as_pid(open_ev(TOKEN, t=3), 12, "sh"),  # not in it: evaluated, alerts
        as_pid(open_ev(TOKEN, t=4), 40, "cat"),  # unknown executable: evaluated (comm)
    ]
    assert ids(d.evaluate(events)) == [("R0002", "sh")]
    assert stats.memo_hits[EventKind.OPEN] == 1
    assert stats.evaluations["R0002"] == 3
