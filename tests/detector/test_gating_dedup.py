"""Profile gating, cooldown with counts on event time, rate limits, bounded memory."""

from __future__ import annotations

from detector.alerts import AlertKind
from detector.dedup import Deduplicator
from detector.stats import DetectorStats
from profiler.readmodel import ProfileStatus
from tests.detector.builders import (
    SEC,
    T0,
    WEB_KEY,
    binding_yaml,
    exec_ev,
    make_detector,
    run,
)
from tests.detector.profiles import MemoryProfile, MemoryProfiles

MIN = 60 * SEC
HOUR = 60 * MIN


def test_anomaly_rules_wait_for_a_completed_profile_signature_rules_do_not() -> None:
    profiles = MemoryProfiles()
    d = make_detector(binding_yaml("R0001", "R1000"), profiles=profiles)
    assert run(d, [exec_ev("/dev/shm/x", t=0)]) == [("R1000", "high", 1)]
    assert d.stats.suppressed[("R0001", "no_profile")] == 1
    profiles.add(MemoryProfile(WEB_KEY, status=ProfileStatus.LEARNING))
    assert run(d, [exec_ev("/bin/a", t=1), exec_ev("/bin/a", t=2)]) == []
    assert d.stats.suppressed[("R0001", "profile_learning")] == 2
    profiles.add(MemoryProfile(WEB_KEY, status=ProfileStatus.PARTIAL))
    assert run(d, [exec_ev("/bin/a", t=3)]) == []
    assert d.stats.suppressed[("R0001", "profile_partial")] == 1
    profiles.add(MemoryProfile(WEB_KEY))
    assert run(d, [exec_ev("/bin/a", t=4)]) == [("R0001", "medium", 1)]
    assert d.stats.evaluations["R0001"] == 1


def test_partial_profiles_alert_when_configured() -> None:
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY, status=ProfileStatus.PARTIAL)])
    d = make_detector(
        binding_yaml("R0001"),
        profiles=profiles,
        alert_on_profile_statuses=("completed", "partial"),
    )
    assert run(d, [exec_ev("/bin/a")]) == [("R0001", "medium", 1)]


def test_cooldown_counts_repeats_and_reports_them_on_the_next_alert() -> None:
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY)])
    d = make_detector(binding_yaml("R0001"), profiles=profiles)
    first = d.evaluate([exec_ev("/bin/nc", t=0)])
    assert [(a.dedup.count, a.dedup.first_seen_ns, a.dedup.last_seen_ns) for a in first] == [
        (1, T0, T0)
    ]
    # 5 repeats within the hour: counted, not sent. Another key alerts independently.
    repeats = [exec_ev("/bin/nc", t=i * MIN) for i in range(1, 6)]
    assert run(d, [*repeats, exec_ev("/bin/sh", t=10 * MIN)]) == [("R0001", "medium", 1)]
    assert d.stats.suppressed[("R0001", "cooldown")] == 5
    # After the cooldown (event time), the next occurrence carries the 5 repeats.
    [alert] = d.evaluate([exec_ev("/bin/nc", t=HOUR + 1)])
    assert alert.dedup.count == 6
    assert alert.dedup.first_seen_ns == T0 + MIN
    assert alert.dedup.last_seen_ns == T0 + HOUR + 1
    assert alert.fingerprint == first[0].fingerprint
    d2 = alert.to_dict()["dedup"]
    assert d2 == {
        "count": 6,
        "firstSeen": "2026-01-01T00:01:00.000000000Z",
        "lastSeen": "2026-01-01T01:00:00.000000001Z",
    }


def test_replicas_of_one_workload_share_a_cooldown() -> None:
    from dataclasses import replace

    from gadgetclient.events import ContainerId
    from tests.detector.builders import WEB

    other_pod = replace(WEB, pod="web-5d4f9-zzzzz", container_id=ContainerId("c0ffee99"))
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY)])
    d = make_detector(binding_yaml("R0001"), profiles=profiles, cooldown="10m")
    assert run(d, [exec_ev("/bin/nc"), exec_ev("/bin/nc", c=other_pod, t=SEC)]) == [
        ("R0001", "medium", 1)
    ]
    assert run(d, [exec_ev("/bin/nc", c=other_pod, t=11 * MIN)]) == [("R0001", "medium", 2)]


def test_rate_limits_announce_once_and_keep_counts() -> None:
    d = make_detector(binding_yaml("R1000"), per_rule_rate_limit=3, global_rate_limit=100)
    events = [exec_ev(f"/dev/shm/x{i}", t=i * SEC) for i in range(6)]
    alerts = d.evaluate(events)
    kinds = [(a.kind, a.rule.id) for a in alerts]
    assert kinds == [(AlertKind.RULE, "R1000")] * 3 + [(AlertKind.SYSTEM, "GW0001")]
    system = alerts[3]
    assert system.event["scope"] == "R1000"
    assert "Alert limit reached for rule R1000: 3 alerts per 60s" in system.message
    assert d.stats.suppressed[("R1000", "rate_limit")] == 3
    # Next window: the limited keys alert again, carrying their held occurrences.
    again = d.evaluate([exec_ev("/dev/shm/x3", t=61 * SEC)])
    assert [(a.rule.id, a.dedup.count) for a in again] == [("R1000", 2)]


def test_global_limit_announces_exactly_once_per_window() -> None:
    d = make_detector(binding_yaml("R1000", "R1005"), global_rate_limit=2, per_rule_rate_limit=0)
    events = [exec_ev(f"/dev/shm/x{i}", t=i) for i in range(4)] + [exec_ev("/dev/fd/3", t=9)]
    alerts = d.evaluate(events)
    assert [a.kind for a in alerts].count(AlertKind.SYSTEM) == 1
    assert [a.rule.id for a in alerts] == ["R1000", "R1000", "GW0001"]
    assert alerts[2].event["scope"] == "global"


def test_cooldown_table_is_bounded_and_evictions_counted() -> None:
    stats = DetectorStats()
    dd = Deduplicator(
        cooldown_ns=HOUR,
        max_keys=100,
        window_ns=MIN,
        global_limit=0,
        per_rule_limit=0,
        stats=stats,
    )
    for i in range(250):
        assert dd.admit(("k", i), "R1", T0 + i) is not None
    assert len(dd) == 100
    assert stats.dedup_evictions["capacity"] == 150
    # Idle keys with nothing pending expire by event time.
    dd.admit(("late",), "R1", T0 + 2 * HOUR)
    assert stats.dedup_evictions["expired"] == 8
    assert len(dd) == 92  # 101 keys, one evicted for capacity, 8 expired


def test_idle_key_with_pending_count_is_kept_until_its_next_alert() -> None:
    stats = DetectorStats()
    dd = Deduplicator(
        cooldown_ns=HOUR,
        max_keys=100,
        window_ns=MIN,
        global_limit=0,
        per_rule_limit=0,
        stats=stats,
    )
    dd.admit(("a",), "R1", T0)
    assert dd.admit(("a",), "R1", T0 + MIN) is None
    for i in range(20):
        dd.admit(("b", i), "R1", T0 + 3 * HOUR + i)
    info = dd.admit(("a",), "R1", T0 + 4 * HOUR)
    assert info is not None
    assert info.count == 2


def test_memo_does_not_hide_repeats_or_profile_changes() -> None:
    profiles = MemoryProfiles([MemoryProfile(WEB_KEY, execs={"/bin/ok": []})])
    d = make_detector(binding_yaml("R0001"), profiles=profiles, cooldown="1s")
    assert run(d, [exec_ev("/bin/ok"), exec_ev("/bin/ok", t=1)]) == []
    assert d.stats.memo_hits["exec"] == 1
    # An anomaly is never memoised: its repeats keep reaching dedup.
    assert run(d, [exec_ev("/bin/bad", t=2), exec_ev("/bin/bad", t=2 * SEC)]) == [
        ("R0001", "medium", 1),
        ("R0001", "medium", 1),
    ]
    # A new profile object (relearned without /bin/ok) resets the memo.
    profiles.add(MemoryProfile(WEB_KEY))
    assert run(d, [exec_ev("/bin/ok", t=3 * SEC)]) == [("R0001", "medium", 1)]


def test_a_failing_pod_metadata_lookup_skips_the_event_and_is_counted() -> None:
    from tests.detector.builders import PodMeta

    class Broken(PodMeta):
        def volume_mounts(self, namespace: str, pod: str, container: str) -> list[str]:
            raise RuntimeError("cache not ready")

    d = make_detector(binding_yaml("R1000"), pod_meta=Broken())
    assert run(d, [exec_ev("/dev/shm/x")]) == []
    assert d.stats.errors["plan"] == 1
