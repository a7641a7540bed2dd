"""Converting the predecessors' `kubescape.io/v1` `ApplicationProfile` documents.

kapprofiler and kubecop (and Kubescape, which owns the ``kubescape.io`` group) store one object
per *workload* holding every container, named ``<kind>-<workload>`` in the workload's namespace
(``<kind>-<workload>-<namespace>`` plus the label ``kapprofiler.kubescape.io/namespace`` when a
central namespace was configured), with no field naming the workload. gadgetwatch keeps one
profile per workload *container* with the identity in ``spec.workload``. `convert` turns one of
theirs into ours:

- the identity comes from the object name (the kind prefix must be one gadgetwatch profiles:
  ``pod``, ``deployment``, ``replicaset``, ``statefulset``, ``daemonset``, ``job``, ``cronjob``;
  Kubescape's user-managed ``ug-`` prefix is understood and makes the profile user-owned);
- every entry of ``spec.containers[]`` becomes one profile, validated by
  `documents.from_document` (errors keep the original container index in their field path);
- the status comes from kapprofiler's labels (``final``: completed; ``partial``) or Kubescape's
  ``kubescape.io/status`` annotation, the owner from ``kubescape.io/managed-by: User``.

What a gadgetwatch profile cannot hold is never dropped silently: each such field is listed in
`Conversion.notes` with its dotted path and the reason (exec environments, open task ids,
init/ephemeral containers, the pre-2023-09 ``tcpconnections`` network shape). Everything else
that is wrong is an `InvalidProfileError` naming the object and the field, as for our own
documents. Documents that gadgetwatch itself wrote under ``kubescape.io/v1`` (they hold
``spec.workload``) need no conversion: `from_document` reads them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from profiler.documents import (
    ANNOTATION_KS_COMPLETION,
    ANNOTATION_KS_MANAGED_BY,
    ANNOTATION_KS_STATUS,
    API_VERSION,
    KIND,
    LEGACY_API_VERSION,
    from_document,
)
from profiler.errors import InvalidProfileError
from profiler.profiles import ManagedBy, Profile
from profiler.status import ProfileStatus

#: kapprofiler's labels on its objects.
LABEL_FINAL = "kapprofiler.kubescape.io/final"
LABEL_PARTIAL = "kapprofiler.kubescape.io/partial"
LABEL_FAILED = "kapprofiler.kubescape.io/failed"
LABEL_NAMESPACE = "kapprofiler.kubescape.io/namespace"
#: Kubescape's prefix of user-managed profiles (``ug-<workload profile name>``).
USER_PREFIX = "ug-"

#: Name prefix -> the owner kind gadgetwatch records (`WorkloadKey.owner_kind`).
OWNER_KINDS = {
    "pod": "Pod",
    "deployment": "Deployment",
    "replicaset": "ReplicaSet",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "job": "Job",
    "cronjob": "CronJob",
}

#: Container fields of theirs that a gadgetwatch profile has no place for, with the reason.
_NOT_KEPT = {
    "envs": "gadgetwatch profiles do not record environment variables",
    "upperLayer": "drift is judged from each exec event, not stored in the profile",
    "taskName": "opens are allowed per container, not per process",
    "taskId": "opens are allowed per container, not per process",
}


@dataclass(slots=True)
class Conversion:
    """The profiles one foreign document became, and what could not be carried over."""

    profiles: list[Profile] = field(default_factory=list)
    #: ``<source>: <field>: <what was not kept and why>``, one line each.
    notes: list[str] = field(default_factory=list)


def needs_conversion(document: Any) -> bool:
    """True for a kapprofiler/kubecop/Kubescape profile (theirs, not ours under the old group)."""
    if not isinstance(document, Mapping):
        return False
    spec = document.get("spec")
    return (
        document.get("apiVersion") == LEGACY_API_VERSION
        and document.get("kind") == KIND
        and not (isinstance(spec, Mapping) and "workload" in spec)
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    """Labels and annotations as a mapping (absent or malformed: empty; metadata is lenient)."""
    return value if isinstance(value, Mapping) else {}


def _identity(metadata: Mapping[str, Any], source: str) -> tuple[str, str, str, bool]:
    """(namespace, owner kind, owner name, user-managed) from the object's name and labels."""
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidProfileError(
            "is required to tell the workload", obj=source, field="metadata.name"
        )
    namespace = metadata.get("namespace")
    labels = _mapping(metadata.get("labels"))
    central = labels.get(LABEL_NAMESPACE)
    user = name.startswith(USER_PREFIX)
    rest = name[len(USER_PREFIX) :] if user else name
    prefix, sep, owner = rest.partition("-")
    kind = OWNER_KINDS.get(prefix)
    if isinstance(central, str) and central and owner.endswith(f"-{central}"):
        # Stored centrally: <kind>-<name>-<namespace>, the workload's namespace in the label.
        owner = owner[: -len(central) - 1]
        namespace = central
    if kind is None or not sep or not owner:
        known = ", ".join(sorted(OWNER_KINDS))
        raise InvalidProfileError(
            f"cannot tell the workload from {name!r}: expected <kind>-<workload> with kind one of "
            f"{known} (rename the object, or re-learn the workload with gadgetwatch)",
            obj=source,
            field="metadata.name",
        )
    if not isinstance(namespace, str) or not namespace:
        raise InvalidProfileError(
            "is required (profiles belong to a namespace)", obj=source, field="metadata.namespace"
        )
    return namespace, kind, owner, user


def _status(metadata: Mapping[str, Any]) -> dict[str, Any]:
    labels = _mapping(metadata.get("labels"))
    annotations = _mapping(metadata.get("annotations"))
    ks_status = annotations.get(ANNOTATION_KS_STATUS)
    completed = labels.get(LABEL_FINAL) == "true" or ks_status == "completed"
    status: dict[str, Any] = {
        "phase": (ProfileStatus.COMPLETED if completed else ProfileStatus.LEARNING).value,
        "partial": labels.get(LABEL_PARTIAL) == "true"
        or annotations.get(ANNOTATION_KS_COMPLETION) == "partial",
        "reason": "converted from kubescape.io/v1",
    }
    if annotations.get(ANNOTATION_KS_MANAGED_BY) == "User":
        status["managedBy"] = ManagedBy.USER.value
    return status


def _clean_container(
    container: Mapping[str, Any], path: str, notes: list[str], source: str
) -> dict[str, Any]:
    """A copy of `container` without the fields we cannot keep (each one noted)."""
    out = dict(container)
    for list_name in ("execs", "opens"):
        items = out.get(list_name)
        if not isinstance(items, list):
            continue
        cleaned: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                item = dict(item)
                for name, reason in _NOT_KEPT.items():
                    if name in item:
                        value = item.pop(name)
                        if value not in (None, [], "", False, 0):
                            notes.append(
                                f"{source}: {path}.{list_name}[{i}].{name}: not kept ({reason})"
                            )
            cleaned.append(item)
        out[list_name] = cleaned
    net = out.get("networkActivity")
    if isinstance(net, Mapping):
        for direction in ("incoming", "outgoing"):
            value = net.get(direction)
            if isinstance(value, Mapping) and "tcpconnections" in value:
                notes.append(
                    f"{source}: {path}.networkActivity.{direction}: not kept (the pre-2023-09 "
                    "kapprofiler tcpconnections shape has no port/protocol entries; gadgetwatch "
                    "learns them again)"
                )
                net = {k: v for k, v in net.items() if k != direction}
        out["networkActivity"] = net
    return out


def convert(document: Any, *, source: str) -> Conversion:
    """Their document as gadgetwatch profiles (see the module docstring)."""
    if not isinstance(document, Mapping):
        raise InvalidProfileError("expected a mapping", obj=source, field="(top level)")
    if not needs_conversion(document):
        return Conversion(profiles=[from_document(document, source=source)])
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidProfileError("expected a mapping", obj=source, field="metadata")
    namespace, kind, owner, user = _identity(metadata, source)
    for name in document:
        if name not in ("apiVersion", "kind", "metadata", "spec", "status"):
            raise InvalidProfileError("unknown field", obj=source, field=name)
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidProfileError("expected a mapping", obj=source, field="spec")
    result = Conversion()
    for extra in ("initContainers", "ephemeralContainers"):
        items = spec.get(extra)
        for i, item in enumerate(items if isinstance(items, list) else []):
            cname = item.get("name") if isinstance(item, Mapping) else None
            result.notes.append(
                f"{source}: spec.{extra}[{i}] ({cname!r}): not converted (gadgetwatch profiles "
                "the workload's regular containers)"
            )
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise InvalidProfileError("expected a non-empty list", obj=source, field="spec.containers")
    status = _status(metadata)
    if user:
        status["managedBy"] = ManagedBy.USER.value
    for i, container in enumerate(containers):
        path = f"spec.containers[{i}]"
        if not isinstance(container, Mapping):
            raise InvalidProfileError("expected a mapping", obj=source, field=path)
        cname = container.get("name")
        if not isinstance(cname, str) or not cname:
            raise InvalidProfileError("is required", obj=source, field=f"{path}.name")
        ours = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"namespace": namespace},
            "spec": {
                "workload": {
                    "namespace": namespace,
                    "kind": kind,
                    "name": owner,
                    "container": cname,
                },
                "containers": [_clean_container(container, path, result.notes, source)],
            },
            "status": status,
        }
        try:
            result.profiles.append(from_document(ours, source=source))
        except InvalidProfileError as exc:
            raise InvalidProfileError(
                exc.message, obj=source, field=exc.field.replace("spec.containers[0]", path, 1)
            ) from exc
    return result


def read_profile(document: Any, *, source: str) -> tuple[Profile, list[str]]:
    """Exactly one profile from a document of any supported form (a file store's file)."""
    conversion = convert(document, source=source)
    if len(conversion.profiles) != 1:
        raise InvalidProfileError(
            f"holds {len(conversion.profiles)} containers; a profile file holds one (split it "
            "with `gadgetwatch profile import`)",
            obj=source,
            field="spec.containers",
        )
    return conversion.profiles[0], conversion.notes
