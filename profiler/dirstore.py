"""The directory store: the embedded default, one human-readable YAML file per profile.

Layout: ``<root>/<namespace>/<name>.yaml`` (``_host`` for profiles without a namespace), the
same document a `kubectl get applicationprofile -o yaml` shows, so a person can read, diff and
version them.

Names come from events, and events are attacker-controlled: a namespace of ``..``, ``/etc`` or
one with control characters must never become a path outside the root. The file name is
`profile_name` (already DNS-1123). The directory is the namespace itself only when it is a
valid DNS-1123 label, as every real Kubernetes namespace is; anything else is encoded as
``_ns-<sanitized>-<hash>`` (the ``_`` prefix cannot collide with a real namespace, the hash keeps
distinct identities apart). Every path is then checked to resolve under the root
(`StoreError` otherwise), so a symlink planted in the tree cannot redirect a write either.

Writes are atomic: the new text goes to a temporary file in the same directory, is fsynced and
renamed over the old one, so a reader (or a crash) sees the old or the new file, never half.
Other tools are not as careful, so every file carries its entry count (`documents.seal`); a
file cut short is refused with an error naming it, and since every write checks the stored
version first, a refused file is never overwritten: an operator restores or removes it.

Concurrency matches the Kubernetes store so the same merge loop works on both: every file holds
``metadata.resourceVersion`` (a counter); `create` and `update` check it under an exclusive lock
(``fcntl.flock`` on ``<root>/.lock`` — which also serializes separate processes such as the CLI
importing while an agent runs — plus a thread lock for threads of this process) and bump it.

`watch` polls (the stdlib has no portable file-change notification): every `poll_interval` it
compares each file's (mtime, size) with the last scan and reports changes; one unreadable file is
reported to the sink as invalid and the others go on.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import structlog

from profiler.documents import (
    check_seal,
    dump_yaml,
    load_yaml,
    seal,
    to_document,
)
from profiler.errors import (
    ConflictError,
    InvalidProfileError,
    NotFoundError,
    ProfilerError,
    StoreError,
)
from profiler.identity import WorkloadKey, is_namespace_name
from profiler.kubescape import read_profile
from profiler.profiles import Profile, profile_name
from profiler.store import ProfileSink

log = structlog.get_logger(__name__)

#: Directory name for profiles without a namespace (host mode); not a valid namespace name, so
#: it cannot collide with one.
HOST_DIR = "_host"

#: 8 hex digits of SHA-256 tell encoded names apart (same length as `profile_name`'s suffix).
_HASH_LEN = 8


def namespace_dir(namespace: str) -> str:
    """The directory name for `namespace`: itself when it is a valid namespace, else encoded."""
    if not namespace:
        return HOST_DIR
    if is_namespace_name(namespace):
        return namespace
    clean = re.sub(r"[^a-z0-9-]+", "-", namespace.lower()).strip("-")[:40] or "x"
    digest = hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    return f"_ns-{clean}-{digest}"


#: One observed change: a new or changed profile, a removed one, or an unreadable file.
Change = Profile | WorkloadKey | ProfilerError


class DirectoryStore:
    """`ProfileStore` over a directory. Safe for several threads and processes."""

    def __init__(self, root: Path | str, *, poll_interval: timedelta = timedelta(seconds=5)):
        self.root = Path(root)
        self._poll_s = poll_interval.total_seconds()
        self._thread_lock = threading.Lock()

    @property
    def name(self) -> str:
        return "directory"

    def path_for(self, key: WorkloadKey) -> Path:
        return self._contained(
            self.root / namespace_dir(key.namespace) / f"{profile_name(key)}.yaml"
        )

    def _contained(self, path: Path) -> Path:
        """`path`, after checking that it resolves (symlinks followed) inside the root."""
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root):
            raise StoreError("resolves outside the profiles directory", obj=str(path))
        return path

    # -- sync implementation (run in a worker thread by the async API) ------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._thread_lock, open(self.root / ".lock", "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError as exc:
            raise StoreError(f"cannot lock: {exc.strerror}", obj=str(self.root)) from exc

    def read_file(self, path: Path) -> Profile:
        try:
            text = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError("no such profile", obj=str(path)) from exc
        except OSError as exc:
            raise StoreError(f"cannot read: {exc.strerror}", obj=str(path)) from exc
        document = load_yaml(text, source=str(path))
        check_seal(document, source=str(path))
        profile, notes = read_profile(document, source=str(path))
        for note in notes:
            log.warning("profile file converted with losses", note=note)
        return profile

    def _get(self, key: WorkloadKey) -> Profile | None:
        path = self.path_for(key)
        try:
            profile = self.read_file(path)
        except NotFoundError:
            return None
        if profile.key != key:
            raise InvalidProfileError(
                f"holds {profile.key.display()}, expected {key.display()}",
                obj=str(path),
                field="spec.workload",
            )
        return profile

    def _write(self, profile: Profile, version: int) -> Profile:
        stored = profile.copy()
        stored.resource_version = str(version)
        path = self.path_for(profile.key)
        text = dump_yaml(seal(to_document(stored))).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    self.write_bytes(handle, text)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot write: {exc.strerror}", obj=str(path)) from exc
        return stored

    def write_bytes(self, handle: BinaryIO, data: bytes) -> None:
        """Write and fsync one temporary file. The seam where tests put a full disk (ENOSPC)
        without mounting a file system."""
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())

    def _stored_version(self, key: WorkloadKey) -> int | None:
        current = self._get(key)
        if current is None:
            return None
        try:
            return int(current.resource_version or "0")
        except ValueError as exc:
            raise InvalidProfileError(
                "resourceVersion is not a counter",
                obj=str(self.path_for(key)),
                field="metadata.resourceVersion",
            ) from exc

    def create_sync(self, profile: Profile) -> Profile:
        with self._locked():
            if self.path_for(profile.key).exists():
                raise ConflictError("already exists", obj=str(self.path_for(profile.key)))
            return self._write(profile, 1)

    def update_sync(self, profile: Profile) -> Profile:
        with self._locked():
            version = self._stored_version(profile.key)
            if version is None:
                raise NotFoundError("no such profile", obj=str(self.path_for(profile.key)))
            if str(version) != profile.resource_version:
                raise ConflictError(
                    f"resourceVersion is {version}, not {profile.resource_version or '(none)'}",
                    obj=str(self.path_for(profile.key)),
                    field="metadata.resourceVersion",
                )
            return self._write(profile, version + 1)

    def delete_sync(self, key: WorkloadKey) -> None:
        with self._locked():
            try:
                self.path_for(key).unlink()
            except FileNotFoundError as exc:
                raise NotFoundError("no such profile", obj=str(self.path_for(key))) from exc
            except OSError as exc:
                raise StoreError(f"cannot delete: {exc.strerror}", obj=str(self.root)) from exc

    def files(self, namespace: str | None = None) -> builtins.list[Path]:
        if not self.root.is_dir():
            return []
        dirs = (
            [self._contained(self.root / namespace_dir(namespace))]
            if namespace is not None
            else self.root.iterdir()
        )
        out: builtins.list[Path] = []
        for d in dirs:
            if d.is_dir():
                out.extend(p for p in d.glob("*.yaml") if not p.name.startswith("."))
        return sorted(out)

    def list_sync(
        self, namespace: str | None = None
    ) -> tuple[builtins.list[Profile], builtins.list[ProfilerError]]:
        profiles: builtins.list[Profile] = []
        errors: builtins.list[ProfilerError] = []
        for path in self.files(namespace):
            try:
                profiles.append(self.read_file(path))
            except NotFoundError:
                continue  # deleted between the listing and the read
            except ProfilerError as exc:
                errors.append(exc)
        return profiles, errors

    # -- the async ProfileStore API ---------------------------------------------------------

    async def get(self, key: WorkloadKey) -> Profile | None:
        return await asyncio.to_thread(self._get, key)

    async def list(
        self, namespace: str | None = None
    ) -> tuple[builtins.list[Profile], builtins.list[ProfilerError]]:
        return await asyncio.to_thread(self.list_sync, namespace)

    async def create(self, profile: Profile) -> Profile:
        return await asyncio.to_thread(self.create_sync, profile)

    async def update(self, profile: Profile) -> Profile:
        return await asyncio.to_thread(self.update_sync, profile)

    async def delete(self, key: WorkloadKey) -> None:
        await asyncio.to_thread(self.delete_sync, key)

    def scan(self, seen: dict[Path, tuple[int, int, WorkloadKey | None]]) -> builtins.list[Change]:
        """One poll: the new, changed and removed files since the state in `seen`."""
        changes: builtins.list[Change] = []
        current: set[Path] = set()
        for path in self.files():
            current.add(path)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            before = seen.get(path)
            if before is not None and before[:2] == stamp:
                continue
            try:
                profile = self.read_file(path)
            except NotFoundError:
                continue
            except ProfilerError as exc:
                seen[path] = (*stamp, None)
                changes.append(exc)
                continue
            seen[path] = (*stamp, profile.key)
            changes.append(profile)
        for path in builtins.list(seen):
            if path not in current:
                _, _, key = seen.pop(path)
                if key is not None:
                    changes.append(key)
        return changes

    async def resync(
        self, sink: ProfileSink, seen: dict[Path, tuple[int, int, WorkloadKey | None]]
    ) -> None:
        """Scan in a worker thread, apply the changes to `sink` on the event loop."""
        for change in await asyncio.to_thread(self.scan, seen):
            if isinstance(change, Profile):
                sink.upsert(change)
            elif isinstance(change, WorkloadKey):
                sink.remove(change)
            else:
                sink.invalid(change)

    async def watch(self, sink: ProfileSink) -> None:
        seen: dict[Path, tuple[int, int, WorkloadKey | None]] = {}
        await self.resync(sink, seen)
        sink.synced()
        while True:
            await asyncio.sleep(self._poll_s)
            await self.resync(sink, seen)

    async def aclose(self) -> None:
        return None
