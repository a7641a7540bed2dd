"""Collapse at record and flush time, wildcard matching, and the size caps."""

from __future__ import annotations

from profiler.cache import CompiledProfile
from profiler.collapsing import Thresholds, collapse_opens, collapse_proc
from profiler.dirstore import DirectoryStore
from profiler.identity import WorkloadKey
from profiler.readmodel import ProfileStatus
from tests.profiler.helpers import T0, FakePods, container, exec_, learner, open_

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})


def test_proc_pids_collapse_at_record_time() -> None:
    assert collapse_proc("/proc/1234/status") == "/proc/⋯/status"
    assert collapse_proc("/proc/1234") == "/proc/⋯"
    assert collapse_proc("/proc/self/status") == "/proc/self/status"
    assert collapse_proc("/proc/12ab/x") == "/proc/12ab/x"


def test_directory_past_threshold_becomes_wildcard_per_prefix() -> None:
    opens = {f"/var/cache/s{i}/data": frozenset({"O_RDONLY"}) for i in range(4)}
    opens["/var/cache/s0/data"] = frozenset({"O_WRONLY"})
    opens |= {f"/etc/conf{i}": frozenset({"O_RDONLY"}) for i in range(4)}
    thresholds = Thresholds(default=3, prefixes=(("/etc", 10),))
    out = collapse_opens(opens, thresholds)
    assert out == {
        "/var/cache/⋯/data": {"O_RDONLY", "O_WRONLY"},
        **{f"/etc/conf{i}": {"O_RDONLY"} for i in range(4)},  # /etc allows 10
    }
    # Collapsed once, later literals fold into the wildcard even below the threshold.
    again = collapse_opens(out | {"/var/cache/new/data": frozenset({"O_APPEND"})}, thresholds)
    assert again["/var/cache/⋯/data"] == {"O_RDONLY", "O_WRONLY", "O_APPEND"}
    assert "/var/cache/new/data" not in again


def test_matching_understands_wildcards() -> None:
    from profiler.profiles import Profile

    p = Profile(key=KEY)
    p.entries.add_open("/var/cache/⋯/data", ("O_RDONLY", "O_WRONLY"))
    p.entries.add_open("/proc/⋯/status", ("O_RDONLY",))
    p.entries.add_exec("/opt/⋯/bin/run", ())
    view = CompiledProfile(p)
    assert view.allows_open("/var/cache/abc/data", ["O_RDONLY"])
    assert not view.allows_open("/var/cache/abc/data", ["O_RDWR"])
    assert not view.allows_open("/var/cache/abc/other", ["O_RDONLY"])
    assert not view.allows_open("/var/cache/a/b/data", ["O_RDONLY"])  # one segment only
    assert view.allows_open("/proc/77/status", ["O_RDONLY"])
    assert view.allows_exec("/opt/v2/bin/run", ["/opt/v2/bin/run", "--any"])  # no args recorded


async def test_flush_collapses_and_learner_matches_wildcards(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0, collapse_threshold=3, collapse_prefixes=())
    c = container()
    # Names without numbers: numbered ones would fold into `⟨n⟩` first (file generalisation).
    lrn.observe([open_(c, T0 + i, f"/srv/sessions/s{'abcde'[i]}", "O_RDWR") for i in range(5)])
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.entries.opens == {"/srv/sessions/⋯": {"O_RDWR"}}
    lrn.observe([open_(c, T0 + 10, "/srv/sessions/szz", "O_RDWR")])
    assert await lrn.flush() == 0  # already covered by the wildcard: nothing new


async def test_entry_cap_makes_the_profile_too_large(store: DirectoryStore) -> None:
    lrn = learner(store, pods=PODS, attached_at_ns=T0, max_entries=100)
    c = container()
    lrn.observe([exec_(c, T0 + i, f"/bin/x{i}") for i in range(105)])
    profile = lrn.profile(KEY)
    assert profile is not None
    assert profile.meta.status is ProfileStatus.TOO_LARGE
    assert profile.meta.reason == "entries 101 > cap 100"
    assert len(profile.entries.execs) == 100  # stopped growing, nothing removed
    assert lrn.stats.skipped[("exec", "too_large")] == 5
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.meta.status is ProfileStatus.TOO_LARGE
    assert len(stored.entries.execs) == 100


async def test_byte_cap_keeps_the_stored_entries(store: DirectoryStore) -> None:
    lrn = learner(
        store,
        pods=PODS,
        attached_at_ns=T0,
        max_bytes=8192,
        collapse_threshold=10_000,
        generalize=frozenset(),  # numbered names must stay literal to fill the cap
    )
    c = container()
    lrn.observe([exec_(c, T0, "/bin/small")])
    await lrn.flush()
    lrn.observe([open_(c, T0 + i, f"/data/{'x' * 60}-{i}", "O_RDONLY") for i in range(200)])
    await lrn.flush()
    stored = await store.get(KEY)
    assert stored is not None
    assert stored.meta.status is ProfileStatus.TOO_LARGE
    assert stored.meta.reason.startswith("serialized size ")
    assert stored.meta.reason.endswith(" > cap 8192 bytes")
    assert list(stored.entries.execs) == ["/bin/small"]
    assert stored.entries.opens == {}
    assert lrn.stats.skipped[("flush", "too_large")] == 200
