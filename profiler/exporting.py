"""Export and import: carry a profile from staging to production.

`export_documents` writes profiles as self-contained documents (no resourceVersion, no cluster
metadata), one per profile, or a ``kind: List`` for several, so the file can be reviewed,
versioned and applied elsewhere.

`imported` turns an exported document into what production needs: the namespace remapped
(``--namespace``), status ``completed`` and ownership ``user``. A user-owned profile is
authoritative: learning never writes it (`store.write_merged` keeps it as is), and anomaly
detection uses it from the first event in the new cluster, with no learning period.
`import_into` creates it, or replaces whatever the target store holds for that workload (an
import is an explicit decision of a person).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from profiler.documents import from_document, load_yaml, to_document
from profiler.errors import ConflictError, InvalidProfileError
from profiler.identity import WorkloadKey
from profiler.profiles import ManagedBy, Profile
from profiler.status import ProfileStatus
from profiler.store import ProfileStore

#: Attempts to replace an existing object that keeps changing under the import; an agent
#: flushing the same profile at the same moment is the only expected writer.
IMPORT_ATTEMPTS = 5


def export_document(profile: Profile) -> dict[str, Any]:
    exported = profile.copy()
    exported.resource_version = ""
    return to_document(exported)


def export_documents(profiles: Sequence[Profile]) -> dict[str, Any]:
    if len(profiles) == 1:
        return export_document(profiles[0])
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [export_document(p) for p in profiles],
    }


def read_documents(text: str | bytes, *, source: str) -> list[Profile]:
    """Parse a file holding one profile or a ``kind: List`` of them."""
    data = load_yaml(text, source=source)
    if data.get("kind") == "List":
        items = data.get("items")
        if not isinstance(items, list):
            raise InvalidProfileError("expected a list", obj=source, field="items")
        return [from_document(item, source=f"{source} items[{i}]") for i, item in enumerate(items)]
    return [from_document(data, source=source)]


def imported(profile: Profile, *, namespace: str | None = None) -> Profile:
    """The production form: remapped, completed, user-owned, no resourceVersion."""
    out = profile.copy()
    origin = profile.key.namespace or "-"
    if namespace is not None:
        out.key = WorkloadKey(
            namespace, profile.key.owner_kind, profile.key.owner_name, profile.key.container
        )
    out.meta.managed_by = ManagedBy.USER
    out.meta.status = ProfileStatus.COMPLETED
    out.meta.reason = f"imported from {origin}/{profile.name} ({profile.meta.status.value})"
    out.resource_version = ""
    return out


async def import_into(store: ProfileStore, profile: Profile) -> Profile:
    """Create the profile, or replace the stored one; returns what is stored."""
    for _ in range(IMPORT_ATTEMPTS):
        current = await store.get(profile.key)
        try:
            if current is None:
                return await store.create(profile)
            replacement = profile.copy()
            replacement.resource_version = current.resource_version
            return await store.update(replacement)
        except ConflictError:
            continue
    raise ConflictError(
        f"the stored profile kept changing ({IMPORT_ATTEMPTS} attempts)", obj=profile.name
    )
