"""Export and import: carry a profile from staging to production.

`export_documents` writes profiles as self-contained documents (no resourceVersion, no cluster
metadata), one per profile, or a ``kind: List`` for several, so the file can be reviewed,
versioned and applied elsewhere.

`imported` turns an exported document into what production needs: the namespace remapped
(``--namespace``: the profile's own, and every peer identity and in-cluster DNS name that
pointed at the source namespace, so `profile netpol` of the import allows the new namespace),
status ``completed`` and ownership ``user``. A user-owned profile is
authoritative: learning never writes it (`store.write_merged` keeps it as is), and anomaly
detection uses it from the first event in the new cluster, with no learning period.
`import_into` creates it, or replaces whatever the target store holds for that workload (an
import is an explicit decision of a person).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gadgetclient.events import PeerIdentity
from profiler.documents import check_seal, load_yaml, seal, to_document
from profiler.errors import ConflictError, InvalidProfileError
from profiler.identity import WorkloadKey
from profiler.kubescape import Conversion, convert
from profiler.profiles import Egress, Entries, ManagedBy, Profile
from profiler.sources import regroup
from profiler.status import ProfileStatus
from profiler.store import ProfileStore

#: Attempts to replace an existing object that keeps changing under the import; an agent
#: flushing the same profile at the same moment is the only expected writer.
IMPORT_ATTEMPTS = 5


def export_document(profile: Profile) -> dict[str, Any]:
    exported = profile.copy()
    exported.resource_version = ""
    return seal(to_document(exported))


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
    return read_converted(text, source=source).profiles


def read_converted(text: str | bytes, *, source: str) -> Conversion:
    """`read_documents`, also accepting kapprofiler/kubecop ``kubescape.io/v1`` profiles (a
    ``kubectl get applicationprofiles.kubescape.io -A -o yaml`` listing): each is converted
    (`profiler.kubescape`) and whatever could not be carried over is in the notes."""
    data = load_yaml(text, source=source)
    kind = data.get("kind")
    # `kubectl get -o yaml` lists are `List`; the API's own are `<Kind>List`.
    if isinstance(kind, str) and kind.endswith("List") and "items" in data:
        items = data.get("items")
        if not isinstance(items, list):
            raise InvalidProfileError("expected a list", obj=source, field="items")
        documents = [(item, f"{source} items[{i}]") for i, item in enumerate(items)]
    else:
        documents = [(data, source)]
    out = Conversion()
    for item, where in documents:
        if isinstance(item, dict):
            check_seal(item, source=where)
        converted = convert(item, source=where)
        out.profiles.extend(converted.profiles)
        out.notes.extend(converted.notes)
    return out


def imported(profile: Profile, *, namespace: str | None = None) -> Profile:
    """The production form: remapped, completed, user-owned, no resourceVersion."""
    out = profile.copy()
    origin = profile.key.namespace or "-"
    if namespace is not None:
        out.key = WorkloadKey(
            namespace, profile.key.owner_kind, profile.key.owner_name, profile.key.container
        )
        if profile.key.namespace and namespace != profile.key.namespace:
            remap_namespace(out.entries, source=profile.key.namespace, target=namespace)
    out.meta.managed_by = ManagedBy.USER
    out.meta.status = ProfileStatus.COMPLETED
    out.meta.reason = f"imported from {origin}/{profile.name} ({profile.meta.status.value})"
    out.resource_version = ""
    return out


def remap_namespace(entries: Entries, *, source: str, target: str) -> None:
    """Point every in-namespace reference of `entries` at `target`: the peers' identities
    (pods and services of the source namespace, which NetworkPolicies turn into selectors) and
    in-cluster DNS names of the source namespace (``db.<source>.svc[.cluster.local]``). Peers in
    other namespaces (``kube-system`` DNS, a shared database) keep theirs: they are the same
    objects in the new cluster."""

    def peer(p: PeerIdentity) -> PeerIdentity:
        return replace(p, namespace=target) if p.namespace == source else p

    def egress_of(e: Egress) -> Egress:
        return (e[0], e[1], e[2], peer(e[3]))

    def name_of(name: str) -> str:
        labels = name.split(".")
        # <service>.<namespace>.svc[...] and <pod-ip>.<namespace>.pod[...]
        if len(labels) >= 3 and labels[1] == source and labels[2] in ("svc", "pod"):
            return ".".join([labels[0], target, *labels[2:]])
        return name

    entries.ingress = {(port, proto, addr, peer(p)) for port, proto, addr, p in entries.ingress}
    egress = {egress_of(e) for e in entries.egress}
    if entries.egress_procs:  # process-aware: the sets follow their entries
        entries.egress_procs = regroup(entries.egress, entries.egress_procs, (), egress_of)
    entries.egress = egress
    dns: dict[str, frozenset[str]] = {}
    for name, addresses in entries.dns.items():
        name = name_of(name)
        dns[name] = dns[name] | addresses if name in dns else addresses
    if entries.dns_procs:
        entries.dns_procs = regroup(entries.dns, entries.dns_procs, (), name_of)
    entries.dns = dns


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
