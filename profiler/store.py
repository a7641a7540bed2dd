"""The `ProfileStore` role and the read-merge-write loop every writer goes through.

A store keeps one object per profile with an opaque ``resourceVersion``, like the Kubernetes API:

- `get` returns the profile or None; `list` returns what parses plus the errors of what does not;
- `create` fails with `ConflictError` when the object exists;
- `update` fails with `ConflictError` when the stored resourceVersion is not the one read;
- `watch` feeds a `ProfileSink` (the read-model cache): an initial listing, then changes.

`write_merged` is the only way the profiler writes: read the current object, merge the delta into
it (a set union, see `merging.py`), finalize (collapse, caps, lifecycle) and write with the
resourceVersion read; on a conflict re-read and re-merge. Because the merge is idempotent and
commutative, any interleaving of concurrent writers ends with the union of all their deltas.
A user-owned object is never overwritten by learned data (the loop returns it unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

from profiler.errors import ConflictError, ProfilerError
from profiler.identity import WorkloadKey
from profiler.merging import merged
from profiler.profiles import ManagedBy, Profile
from profiler.stats import ProfilerStats

log = structlog.get_logger(__name__)


class ProfileSink(Protocol):
    """Receives a store's contents and changes (implemented by `cache.ProfileCache`)."""

    def upsert(self, profile: Profile) -> None: ...

    def remove(self, key: WorkloadKey) -> None: ...

    def invalid(self, error: ProfilerError) -> None:
        """An object that could not be parsed; the sink counts it and keeps going."""
        ...

    def synced(self) -> None:
        """The initial listing has been delivered."""
        ...


class ProfileStore(Protocol):
    @property
    def name(self) -> str:
        """Bounded label for stats: "directory" or "kubernetes"."""
        ...

    async def get(self, key: WorkloadKey) -> Profile | None: ...

    async def list(self, namespace: str | None = None) -> tuple[list[Profile], list[ProfilerError]]:
        """Every profile (of one namespace), and one error per object that did not parse."""
        ...

    async def create(self, profile: Profile) -> Profile:
        """Store a new object; returns it with its resourceVersion. `ConflictError` if it exists."""
        ...

    async def update(self, profile: Profile) -> Profile:
        """Replace the object if its resourceVersion is still `profile.resource_version`."""
        ...

    async def delete(self, key: WorkloadKey) -> None: ...

    async def watch(self, sink: ProfileSink) -> None:
        """Feed `sink` until cancelled: the initial listing, `synced()`, then every change."""
        ...

    async def aclose(self) -> None: ...


#: finalize(current stored object or None, merged candidate) -> what to write.
Finalizer = Callable[[Profile | None, Profile], Profile]


def _identity(current: Profile | None, candidate: Profile) -> Profile:
    return candidate


async def write_merged(
    store: ProfileStore,
    delta: Profile,
    *,
    attempts: int,
    stats: ProfilerStats,
    finalize: Finalizer = _identity,
) -> Profile:
    """Merge `delta` into the stored profile with optimistic concurrency; return what is stored.

    Raises `ConflictError` after `attempts` conflicting rounds (the caller keeps the delta for
    the next flush), and lets every other `ProfilerError` through.
    """
    for attempt in range(1, attempts + 1):
        current = await store.get(delta.key)
        try:
            if current is None:
                return await store.create(finalize(None, delta.copy()))
            if current.meta.managed_by is ManagedBy.USER and delta.meta.managed_by is not (
                ManagedBy.USER
            ):
                # Imported / hand-written profiles are authoritative: learning never writes them.
                stats.writes[(store.name, "kept")] += 1
                return current
            candidate = finalize(current, merged(current, delta))
            candidate.resource_version = current.resource_version
            if candidate == current:
                return current
            return await store.update(candidate)
        except ConflictError:
            stats.writes[(store.name, "conflict")] += 1
            log.debug("profile write conflict", profile=delta.key.display(), attempt=attempt)
    raise ConflictError(
        f"still conflicting after {attempts} attempts", obj=delta.key.display(), field=""
    )
