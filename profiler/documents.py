"""The on-disk / on-API form of a profile: a `gadgetwatch.io/v1` `ApplicationProfile` document.

`to_document` writes, `from_document` reads back with strict validation. The shape is a superset
of the predecessors' (kapprofiler / kubecop) schema, so their users find what they know::

    apiVersion: gadgetwatch.io/v1
    kind: ApplicationProfile
    metadata: {name, namespace, resourceVersion, labels, annotations}
    spec:
      workload: {namespace, kind, name, container}          # the identity (ours)
      containers:                                           # exactly one: the workload container
      - name, execs[{path,args}], opens[{path,flags,processes}], syscalls[],
        capabilities[{caps[],syscall}], dns[{dnsName,addresses[],processes}],
        networkActivity: {incoming[{port,protocol,dstEndpoint,peer}],
                          outgoing[{port,protocol,dstEndpoint,peer,processes}]},
        rulePolicies: {<rule id>: {processAllowed[], containerAllowed}}   # only when set
    status: {phase, reason, series, partial, managedBy, learningStartNs, learningPeriodNs,
             imageDigests[], templateRevisions[], images[], uids[], volumeMounts[], podLabels{},
             entries{…}, updatedNs}

Output is sorted everywhere, so the same profile always serializes to the same bytes (stable
diffs, stable size checks, no spurious writes).

Bad input never escapes as a KeyError or TypeError: every problem is an `InvalidProfileError`
naming the object and the dotted field. Fields the API server adds to ``metadata`` are tolerated;
unknown fields anywhere in ``spec`` or ``status`` are errors (a typo must not silently drop
behaviour from a profile). Kubescape's per-rule allowances are read under their storage name
``rulePolicies`` and under the Go field name ``policyByRuleId`` (the same data, both spellings
are in circulation); they are written back as ``rulePolicies``.

gadgetwatch's own API group (`GROUP`): Kubescape and kubecop own ``kubescape.io`` and install
a narrower schema for the same kind there, which rejects (or prunes) ``spec.workload``. Documents
gadgetwatch wrote before it had its own group (``kubescape.io/v1`` *with* ``spec.workload``) are
still read here unchanged, so existing profile files keep working and are rewritten in the new
group on their next write; the predecessors' own documents (no ``spec.workload``) are converted
by `profiler.kubescape`.

``processes`` (process-aware profiles, issue 18) lists the executables that reached an open,
a DNS name or an outgoing entry while learning; ``["*"]`` means any process (more than the
bound, or an executable that was unknown). An item without ``processes`` allows any process,
which is what every profile written before the option existed says. The field is written only
where a set is recorded, so a profile learned with the option off serialises byte for byte as
before.

Exec and open paths are normalised lexically on reading (`gadgetclient.pathnorm`), so a
hand-written ``/etc//app.conf`` allows the ``/etc/app.conf`` the rules compare with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import yaml

from gadgetclient.events import PeerIdentity
from gadgetclient.pathnorm import normalise_exec_path, normalise_path
from gadgetclient.safeyaml import check_limits
from profiler.errors import InvalidProfileError
from profiler.identity import WorkloadKey
from profiler.profiles import (
    ANY_PROCESS,
    ANY_PROCESS_SET,
    NO_PEER,
    Entries,
    ManagedBy,
    Profile,
    ProfileMeta,
    intern_set,
    union_processes,
)
from profiler.status import ProfileStatus

KIND = "ApplicationProfile"
GROUP = "gadgetwatch.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "applicationprofiles"
#: The CRD's name (``<plural>.<group>``), for `gadgetwatch probe` and the chart.
CRD_NAME = f"{PLURAL}.{GROUP}"
#: Kubescape's and kubecop's group, where gadgetwatch wrote profiles before it had its own: read
#: (`LEGACY_API_VERSION` documents holding ``spec.workload`` are ours), never written.
KUBESCAPE_GROUP = "kubescape.io"
LEGACY_API_VERSION = f"{KUBESCAPE_GROUP}/{VERSION}"

LABEL_MANAGED_BY = "gadgetwatch.io/managed-by"
LABEL_KIND = "gadgetwatch.io/workload-kind"
LABEL_CONTAINER = "gadgetwatch.io/container"
ANNOTATION_WORKLOAD = "gadgetwatch.io/workload"
#: The predecessors' status annotation ("ready" meant learning there), kept for their tooling.
ANNOTATION_KS_STATUS = "kubescape.io/status"
ANNOTATION_KS_COMPLETION = "kubescape.io/completion"
ANNOTATION_KS_MANAGED_BY = "kubescape.io/managed-by"
#: Integrity seal of a profile *file*: the number of entries it holds. A file cut short (a
#: crashed copy, a full disk under another tool) usually still parses, with a fraction of its
#: entries and its "completed" status intact at the top; the count tells it apart. Objects in
#: the API server are written atomically and carry no seal (a `kubectl edit` would break it).
ANNOTATION_ENTRIES = "gadgetwatch.io/entries"

#: The entry lists of one container, in document order.
_ENTRY_LISTS = ("execs", "opens", "syscalls", "capabilities", "dns")

_KS_STATUS = {
    ProfileStatus.LEARNING: "ready",
    ProfileStatus.COMPLETED: "completed",
    ProfileStatus.PARTIAL: "completed",
    ProfileStatus.TOO_LARGE: "too-large",
}

_MAX_PORT = 65535


def to_document(profile: Profile) -> dict[str, Any]:
    key, meta, entries = profile.key, profile.meta, profile.entries
    metadata: dict[str, Any] = {
        "name": profile.name,
        "namespace": key.namespace,
        "labels": {
            LABEL_MANAGED_BY: meta.managed_by.value,
            LABEL_KIND: key.owner_kind.lower(),
        },
        "annotations": {
            ANNOTATION_WORKLOAD: key.display(),
            ANNOTATION_KS_STATUS: _KS_STATUS[meta.status],
            ANNOTATION_KS_COMPLETION: "partial" if meta.partial else "complete",
        },
    }
    if meta.managed_by is ManagedBy.USER:
        metadata["annotations"][ANNOTATION_KS_MANAGED_BY] = "User"
    if profile.resource_version:
        metadata["resourceVersion"] = profile.resource_version
    container: dict[str, Any] = {
        "name": key.container,
        "execs": [
            {"path": path, "args": list(args)}
            for path in sorted(entries.execs)
            for args in sorted(entries.execs[path])
        ],
        "opens": [
            _with_processes({"path": p, "flags": sorted(entries.opens[p])}, entries.open_procs, p)
            for p in sorted(entries.opens)
        ],
        "syscalls": sorted(entries.syscalls),
        "capabilities": _capabilities_out(entries.capabilities),
        "dns": [
            _with_processes(
                {"dnsName": n, "addresses": sorted(entries.dns[n])}, entries.dns_procs, n
            )
            for n in sorted(entries.dns)
        ],
        "networkActivity": {
            "incoming": [
                _net_out(port, proto, address, peer)
                for port, proto, address, peer in sorted(entries.ingress, key=_ingress_order)
            ],
            "outgoing": [
                _with_processes(_net_out(e[1], e[2], e[0], e[3]), entries.egress_procs, e)
                for e in sorted(entries.egress, key=_egress_order)
            ],
        },
    }
    if entries.rule_policies:
        container["rulePolicies"] = {
            rule_id: {
                "processAllowed": sorted(p for p in procs if p != ANY_PROCESS),
                "containerAllowed": ANY_PROCESS in procs,
            }
            for rule_id, procs in sorted(entries.rule_policies.items())
        }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "workload": {
                "namespace": key.namespace,
                "kind": key.owner_kind,
                "name": key.owner_name,
                "container": key.container,
            },
            "containers": [container],
        },
        "status": {
            "phase": meta.status.value,
            "reason": meta.reason,
            "series": meta.series,
            "partial": meta.partial,
            "managedBy": meta.managed_by.value,
            "learningStartNs": meta.learning_start_ns,
            "learningPeriodNs": meta.learning_period_ns,
            "imageDigests": sorted(meta.image_digests),
            "templateRevisions": sorted(meta.revisions),
            "images": sorted(meta.images),
            "uids": sorted(meta.uids),
            "volumeMounts": sorted(meta.volume_mounts),
            "podLabels": dict(sorted(meta.labels.items())),
            "entries": entries.counts() | {"total": entries.total()},
            "updatedNs": meta.updated_ns,
        },
    }


def _with_processes(
    item: dict[str, Any], processes: Mapping[Any, frozenset[str]], key: Any
) -> dict[str, Any]:
    """`item` with its ``processes`` list when the entry records one (sorted; ``*`` alone when
    any process may reach it)."""
    known = processes.get(key)
    if known is not None:
        item["processes"] = [ANY_PROCESS] if ANY_PROCESS in known else sorted(known)
    return item


def _peer_order(peer: PeerIdentity) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    return (peer.kind, peer.namespace, peer.name, peer.labels)


def _ingress_order(e: tuple[int, str, str, PeerIdentity]) -> tuple[Any, ...]:
    return (e[0], e[1], e[2], _peer_order(e[3]))


def _egress_order(e: tuple[str, int, str, PeerIdentity]) -> tuple[Any, ...]:
    return (e[0], e[1], e[2], _peer_order(e[3]))


def _capabilities_out(pairs: set[tuple[str, str]]) -> list[dict[str, Any]]:
    by_syscall: dict[str, set[str]] = {}
    for cap, syscall in pairs:
        by_syscall.setdefault(syscall, set()).add(cap)
    return [{"caps": sorted(by_syscall[s]), "syscall": s} for s in sorted(by_syscall)]


def _net_out(port: int, proto: str, address: str, peer: PeerIdentity) -> dict[str, Any]:
    item: dict[str, Any] = {"port": port, "protocol": proto, "dstEndpoint": address}
    if peer != NO_PEER:
        item["peer"] = {
            "kind": peer.kind,
            "name": peer.name,
            "namespace": peer.namespace,
            "labels": dict(peer.labels),
        }
    return item


#: libyaml's C emitter and parser when PyYAML was built with them (they are 10-20x faster than
#: the pure-Python ones, which dominated flushes of large profiles); same safe subset of YAML.
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump_yaml(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump_json(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def serialized_size(profile: Profile) -> int:
    """Bytes of the compact JSON form: what the API server stores and limits."""
    return len(orjson.dumps(to_document(profile)))


def load_yaml(text: str | bytes, *, source: str) -> dict[str, Any]:
    try:
        check_limits(text)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidProfileError(f"invalid YAML: {problem}", obj=source, field=where) from exc
    if not isinstance(data, dict):
        raise InvalidProfileError(
            f"expected a mapping, got {type(data).__name__}", obj=source, field="(top level)"
        )
    return data


def _entry_count(document: Mapping[str, Any]) -> int | None:
    """Items in every entry list of the document, None when its shape is not a profile's."""
    try:
        total = 0
        for container in document["spec"]["containers"]:
            total += sum(len(container.get(name) or []) for name in _ENTRY_LISTS)
            net = container.get("networkActivity") or {}
            total += len(net.get("incoming") or []) + len(net.get("outgoing") or [])
        return total
    except (KeyError, TypeError, AttributeError):
        return None


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with its entry count annotated, for writing to a file."""
    count = _entry_count(document)
    if count is not None:
        document["metadata"].setdefault("annotations", {})[ANNOTATION_ENTRIES] = str(count)
    return document


def check_seal(document: Mapping[str, Any], *, source: str) -> None:
    """Raise `InvalidProfileError` when a sealed file holds other than what it was written with.

    Unsealed documents (hand-written, from older versions, from the cluster) pass; their
    strict schema validation in `from_document` is the only check.
    """
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping) or ANNOTATION_ENTRIES not in annotations:
        return
    sealed = str(annotations[ANNOTATION_ENTRIES])
    found = _entry_count(document)
    if "status" not in document or found is None or str(found) != sealed:
        raise InvalidProfileError(
            f"truncated or altered: written with {sealed} entries, holds "
            f"{'an incomplete document' if found is None or 'status' not in document else found}"
            f"; refusing to load it (restore it, or remove the {ANNOTATION_ENTRIES} annotation "
            "after checking the content by hand)",
            obj=source,
            field=f"metadata.annotations.{ANNOTATION_ENTRIES}",
        )


# -- reading ---------------------------------------------------------------------------------


class _Reader:
    """Typed accessors that raise `InvalidProfileError` with the object and dotted field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> InvalidProfileError:
        return InvalidProfileError(message, obj=self.source, field=path)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        return value

    def only(self, value: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
        for name in value:
            if name not in allowed:
                raise self.fail(f"{path}.{name}", "unknown field")

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, path: str, *, required: bool = False) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        if required and not value:
            raise self.fail(path, "must not be empty")
        return value

    def integer(self, value: Any, path: str, *, low: int = 0, high: int | None = None) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)}")
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(path, f"value {value} out of range ({bound})")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(path, f"expected a boolean, got {_kind(value)}")
        return value

    def strings(self, value: Any, path: str) -> list[str]:
        return [self.text(v, f"{path}[{i}]") for i, v in enumerate(self.items(value, path))]

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        mapping = self.mapping(value, path)
        return {str(k): self.text(v, f"{path}.{k}") for k, v in mapping.items()}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_SPEC = frozenset({"workload", "containers", "initContainers", "ephemeralContainers"})
_WORKLOAD = frozenset({"namespace", "kind", "name", "container"})
_CONTAINER = frozenset(
    {
        "name",
        "execs",
        "opens",
        "syscalls",
        "capabilities",
        "dns",
        "networkActivity",
        "rulePolicies",
        "policyByRuleId",
    }
)
_POLICY = frozenset({"processAllowed", "containerAllowed"})
_EXEC = frozenset({"path", "args", "envs", "upperLayer"})
_OPEN = frozenset({"path", "flags", "taskName", "taskId", "processes"})
_CAP = frozenset({"caps", "syscall"})
_DNS = frozenset({"dnsName", "addresses", "processes"})
_NET = frozenset({"incoming", "outgoing"})
_NET_ITEM = frozenset({"port", "protocol", "dstEndpoint", "peer", "processes"})
_PEER = frozenset({"kind", "name", "namespace", "labels"})
_STATUS = frozenset(
    {
        "phase",
        "reason",
        "series",
        "partial",
        "managedBy",
        "learningStartNs",
        "learningPeriodNs",
        "imageDigests",
        "templateRevisions",
        "images",
        "uids",
        "volumeMounts",
        "podLabels",
        "entries",
        "updatedNs",
    }
)
#: Largest Linux uid (uid_t is 32 bits, -1 is reserved).
_MAX_UID = 2**32 - 2
#: int64, the type the API server stores integers as.
_MAX_INT64 = 2**63 - 1


def from_document(document: Any, *, source: str) -> Profile:
    """Parse and validate one document. `source` names it in errors (file path or ns/name)."""
    r = _Reader(source)
    top = r.mapping(document, "(top level)")
    r.only(top, _TOP, "")
    api_version = top.get("apiVersion")
    if api_version not in (API_VERSION, LEGACY_API_VERSION):
        raise r.fail("apiVersion", f"expected {API_VERSION!r}, got {api_version!r}")
    if top.get("kind") != KIND:
        raise r.fail("kind", f"expected {KIND!r}, got {top.get('kind')!r}")
    metadata = r.mapping(top.get("metadata", {}), "metadata")
    resource_version = r.text(metadata.get("resourceVersion"), "metadata.resourceVersion")
    spec = r.mapping(top.get("spec"), "spec")
    if api_version == LEGACY_API_VERSION and "workload" not in spec:
        raise r.fail(
            "spec.workload",
            f"a {LEGACY_API_VERSION} profile of kapprofiler/kubecop (no spec.workload): convert it "
            "with `gadgetwatch profile import` (one gadgetwatch profile per container)",
        )
    r.only(spec, _SPEC, "spec")
    for extra in ("initContainers", "ephemeralContainers"):
        if r.items(spec.get(extra), f"spec.{extra}"):
            raise r.fail(f"spec.{extra}", "not supported: one profile per workload container")
    workload = r.mapping(spec.get("workload"), "spec.workload")
    r.only(workload, _WORKLOAD, "spec.workload")
    key = WorkloadKey(
        namespace=r.text(workload.get("namespace"), "spec.workload.namespace"),
        owner_kind=r.text(workload.get("kind"), "spec.workload.kind", required=True),
        owner_name=r.text(workload.get("name"), "spec.workload.name", required=True),
        container=r.text(workload.get("container"), "spec.workload.container", required=True),
    )
    namespace = r.text(metadata.get("namespace"), "metadata.namespace")
    if namespace and namespace != key.namespace:
        raise r.fail(
            "metadata.namespace",
            f"{namespace!r} differs from spec.workload.namespace {key.namespace!r}",
        )
    containers = r.items(spec.get("containers"), "spec.containers")
    if len(containers) != 1:
        raise r.fail("spec.containers", f"expected exactly one container, got {len(containers)}")
    entries = _read_container(r, containers[0], key.container)
    meta = _read_status(r, top.get("status"))
    return Profile(key=key, meta=meta, entries=entries, resource_version=resource_version)


def _read_container(r: _Reader, value: Any, expected: str) -> Entries:
    base = "spec.containers[0]"
    c = r.mapping(value, base)
    r.only(c, _CONTAINER, base)
    name = r.text(c.get("name"), f"{base}.name", required=True)
    if name != expected:
        raise r.fail(f"{base}.name", f"{name!r} differs from spec.workload.container {expected!r}")
    entries = Entries()
    # Entries written without `processes` (any process), per section.
    any_open: set[str] = set()
    any_dns: set[str] = set()
    any_egress: set[Any] = set()
    for i, item in enumerate(r.items(c.get("execs"), f"{base}.execs")):
        p = f"{base}.execs[{i}]"
        e = r.mapping(item, p)
        r.only(e, _EXEC, p)
        path = normalise_exec_path(r.text(e.get("path"), f"{p}.path", required=True))
        entries.add_exec(path, tuple(r.strings(e.get("args"), f"{p}.args")))
    for i, item in enumerate(r.items(c.get("opens"), f"{base}.opens")):
        p = f"{base}.opens[{i}]"
        o = r.mapping(item, p)
        r.only(o, _OPEN, p)
        path = normalise_path(r.text(o.get("path"), f"{p}.path", required=True))
        entries.add_open(path, frozenset(r.strings(o.get("flags"), f"{p}.flags")))
        _read_processes(r, o.get("processes"), f"{p}.processes", entries.open_procs, path, any_open)
    entries.syscalls.update(
        r.text(s, f"{base}.syscalls[{i}]", required=True)
        for i, s in enumerate(r.items(c.get("syscalls"), f"{base}.syscalls"))
    )
    for i, item in enumerate(r.items(c.get("capabilities"), f"{base}.capabilities")):
        p = f"{base}.capabilities[{i}]"
        cap = r.mapping(item, p)
        r.only(cap, _CAP, p)
        syscall = r.text(cap.get("syscall"), f"{p}.syscall")
        for name_ in r.strings(cap.get("caps"), f"{p}.caps"):
            entries.capabilities.add((name_, syscall))
    for i, item in enumerate(r.items(c.get("dns"), f"{base}.dns")):
        p = f"{base}.dns[{i}]"
        d = r.mapping(item, p)
        r.only(d, _DNS, p)
        dns_name = r.text(d.get("dnsName"), f"{p}.dnsName", required=True)
        entries.add_dns(dns_name, frozenset(r.strings(d.get("addresses"), f"{p}.addresses")))
        _read_processes(
            r, d.get("processes"), f"{p}.processes", entries.dns_procs, dns_name, any_dns
        )
    net = r.mapping(c.get("networkActivity") or {}, f"{base}.networkActivity")
    r.only(net, _NET, f"{base}.networkActivity")
    for direction in ("incoming", "outgoing"):
        np = f"{base}.networkActivity.{direction}"
        for i, item in enumerate(r.items(net.get(direction), np)):
            port, proto, address, peer = _read_net(r, item, f"{np}[{i}]")
            if direction == "incoming":
                if item.get("processes") is not None:
                    raise r.fail(f"{np}[{i}].processes", "only outgoing entries record processes")
                entries.ingress.add((port, proto, address, peer))
            else:
                egress = (address, port, proto, peer)
                entries.egress.add(egress)
                _read_processes(
                    r,
                    item.get("processes"),
                    f"{np}[{i}].processes",
                    entries.egress_procs,
                    egress,
                    any_egress,
                )
    for field_name in ("rulePolicies", "policyByRuleId"):
        _read_policies(r, c.get(field_name), f"{base}.{field_name}", entries)
    for path in any_open:
        entries.open_procs.pop(path, None)
    for name in any_dns:
        entries.dns_procs.pop(name, None)
    for egress in any_egress:
        entries.egress_procs.pop(egress, None)
    return entries


def _read_processes(
    r: _Reader, value: Any, p: str, into: dict[Any, frozenset[str]], key: Any, unscoped: set[Any]
) -> None:
    """An entry's ``processes``: absent (any process), or non-empty executables, ``*`` for any.

    Two items for one entry (the same path written twice) union their sets; one of them
    without ``processes`` leaves the entry any-process, as the merge would."""
    if value is None:
        unscoped.add(key)  # dropped from `into` once the whole section is read
        return
    names = [r.text(v, f"{p}[{i}]", required=True) for i, v in enumerate(r.items(value, p))]
    if not names:
        raise r.fail(p, "must not be empty (omit it to allow any process)")
    found = ANY_PROCESS_SET if ANY_PROCESS in names else intern_set(frozenset(names))
    into[key] = union_processes(into.get(key), found)


def _read_policies(r: _Reader, value: Any, p: str, entries: Entries) -> None:
    """Kubescape's per-rule policies: ``{R1011: {processAllowed: [...], containerAllowed}}``."""
    if value is None:
        return
    for rule_id, item in r.mapping(value, p).items():
        rp = f"{p}.{rule_id}"
        if not isinstance(rule_id, str) or not rule_id.strip():
            raise r.fail(rp, "a rule id must be a non-empty string")
        policy = r.mapping(item if item is not None else {}, rp)
        r.only(policy, _POLICY, rp)
        processes = {
            r.text(v, f"{rp}.processAllowed[{i}]", required=True)
            for i, v in enumerate(r.items(policy.get("processAllowed"), f"{rp}.processAllowed"))
        }
        if r.boolean(policy.get("containerAllowed"), f"{rp}.containerAllowed"):
            processes.add(ANY_PROCESS)
        entries.add_rule_policy(rule_id.strip().upper(), frozenset(processes))


def _read_net(r: _Reader, value: Any, p: str) -> tuple[int, str, str, PeerIdentity]:
    n = r.mapping(value, p)
    r.only(n, _NET_ITEM, p)
    port = r.integer(n.get("port"), f"{p}.port", high=_MAX_PORT)
    proto = r.text(n.get("protocol"), f"{p}.protocol", required=True).upper()
    address = r.text(n.get("dstEndpoint"), f"{p}.dstEndpoint")
    peer = NO_PEER
    if n.get("peer") is not None:
        pm = r.mapping(n["peer"], f"{p}.peer")
        r.only(pm, _PEER, f"{p}.peer")
        peer = PeerIdentity(
            kind=r.text(pm.get("kind"), f"{p}.peer.kind"),
            name=r.text(pm.get("name"), f"{p}.peer.name"),
            namespace=r.text(pm.get("namespace"), f"{p}.peer.namespace"),
            labels=tuple(sorted(r.string_map(pm.get("labels"), f"{p}.peer.labels").items())),
        )
    return port, proto, address, peer


def _read_status(r: _Reader, value: Any) -> ProfileMeta:
    if value is None:
        return ProfileMeta()
    s = r.mapping(value, "status")
    r.only(s, _STATUS, "status")
    phase = r.text(s.get("phase"), "status.phase") or ProfileStatus.LEARNING.value
    try:
        status = ProfileStatus(phase)
    except ValueError:
        allowed = ", ".join(v.value for v in ProfileStatus)
        raise r.fail("status.phase", f"unknown phase {phase!r} (one of {allowed})") from None
    managed = r.text(s.get("managedBy"), "status.managedBy") or ManagedBy.LEARNED.value
    try:
        managed_by = ManagedBy(managed)
    except ValueError:
        raise r.fail("status.managedBy", f"unknown owner {managed!r}") from None
    entries = r.mapping(s.get("entries") or {}, "status.entries")
    for name, count in entries.items():
        r.integer(count, f"status.entries.{name}")
    return ProfileMeta(
        series=r.integer(s.get("series"), "status.series", low=0, high=_MAX_INT64) or 1,
        status=status,
        reason=r.text(s.get("reason"), "status.reason"),
        partial=r.boolean(s.get("partial"), "status.partial"),
        learning_start_ns=r.integer(s.get("learningStartNs"), "status.learningStartNs"),
        learning_period_ns=r.integer(s.get("learningPeriodNs"), "status.learningPeriodNs"),
        managed_by=managed_by,
        image_digests=set(r.strings(s.get("imageDigests"), "status.imageDigests")),
        revisions=set(r.strings(s.get("templateRevisions"), "status.templateRevisions")),
        images=set(r.strings(s.get("images"), "status.images")),
        uids={
            r.integer(u, f"status.uids[{i}]", high=_MAX_UID)
            for i, u in enumerate(r.items(s.get("uids"), "status.uids"))
        },
        volume_mounts=set(r.strings(s.get("volumeMounts"), "status.volumeMounts")),
        labels=r.string_map(s.get("podLabels"), "status.podLabels"),
        updated_ns=r.integer(s.get("updatedNs"), "status.updatedNs"),
    )
