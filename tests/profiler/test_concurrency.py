"""Several agents write one profile at once, with forced conflicts: no entry is lost."""

from __future__ import annotations

import asyncio
import itertools

from gadgetclient.events import ExecEvent, OpenEvent
from profiler.dirstore import DirectoryStore
from profiler.errors import ConflictError
from profiler.identity import WorkloadKey
from profiler.learning import Learner
from profiler.merging import merge_entries, merged
from profiler.profiles import Entries, Profile
from tests.profiler.helpers import T0, FakePods, container, exec_, learner, open_

KEY = WorkloadKey("shop", "Deployment", "web", "nginx")
PODS = FakePods(owners={("ReplicaSet", "web-5d4f"): ("Deployment", "web")})
WRITERS = 6
ROUNDS = 5


class ConflictingStore(DirectoryStore):
    """A directory store that answers every `every`-th update with a conflict (fault injection,
    the same thing the stand-in API server does with `inject_conflicts`)."""

    def __init__(self, *args: object, every: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._counter = itertools.count(1)
        self._every = every
        self.injected = 0

    async def update(self, profile: Profile) -> Profile:
        if next(self._counter) % self._every == 0:
            self.injected += 1
            raise ConflictError("injected conflict", obj=profile.name)
        return await super().update(profile)


async def run_writers(store: object, learners: list[Learner]) -> set[str]:
    """Each writer learns its own paths over several rounds; all flush concurrently."""
    expected: set[str] = set()
    for round_ in range(ROUNDS):
        for i, lrn in enumerate(learners):
            c = container(cid=f"c{i}", pod=f"web-5d4f-{i}")
            events: list[ExecEvent | OpenEvent] = [
                open_(c, T0 + round_ * 10 + j, f"/w{i}/r{round_}/f{j}", "O_RDONLY")
                for j in range(3)
            ]
            events.append(exec_(c, T0 + round_ * 10, f"/bin/w{i}-{round_}"))
            lrn.observe(events)
            expected.update(e.path for e in events)
        await asyncio.gather(*(lrn.flush() for lrn in learners))
    # Deltas that exhausted their attempts stay queued; later flushes deliver them.
    for _ in range(20):
        if all(lrn.stats.pending_deltas == 0 for lrn in learners):
            break
        await asyncio.gather(*(lrn.flush() for lrn in learners))
    return expected


def paths(profile: Profile) -> set[str]:
    return set(profile.entries.execs) | set(profile.entries.opens)


async def test_concurrent_writers_with_forced_conflicts_lose_nothing(tmp_path: object) -> None:
    store = ConflictingStore(tmp_path / "p", every=3)  # type: ignore[operator]
    learners = [
        learner(
            store,
            pods=PODS,
            attached_at_ns=T0,
            collapse_threshold=1000,
            flush_attempts=3,
            generalize=frozenset(),
        )
        for _ in range(WRITERS)
    ]
    expected = await run_writers(store, learners)
    stored = await store.get(KEY)
    assert stored is not None
    assert paths(stored) == expected
    assert store.injected > 0
    conflicts = sum(lrn.stats.writes[("directory", "conflict")] for lrn in learners)
    assert conflicts >= store.injected
    # Every learner ends up knowing what the others wrote (adopted at its last flush).
    assert all(lrn.stats.pending_deltas == 0 for lrn in learners)


def test_merge_is_idempotent_and_commutative() -> None:
    a, b, c = Entries(), Entries(), Entries()
    a.add_exec("/bin/a", ("/bin/a",))
    a.add_open("/etc/x", ("O_RDONLY",))
    b.add_open("/etc/x", ("O_WRONLY",))
    b.syscalls.add("read")
    c.add_exec("/bin/a", ("/bin/a", "-v"))
    c.add_dns("example.com", ("1.2.3.4",))
    profiles = [Profile(KEY, entries=e) for e in (a, b, c)]
    results = []
    for order in itertools.permutations(profiles):
        out = order[0]
        for p in order[1:]:
            out = merged(out, p)
        results.append(out.entries)
    assert all(r == results[0] for r in results)
    again = results[0].copy()
    merge_entries(again, results[0])
    assert again == results[0]
    assert results[0].opens["/etc/x"] == {"O_RDONLY", "O_WRONLY"}
    assert results[0].execs["/bin/a"] == {("/bin/a",), ("/bin/a", "-v")}
