"""The resource types the stand-in serves: built-ins plus CRD-defined custom resources.

A `ResourceType` is what the API server's REST mapping knows about a resource: group, version,
plural, kind, scope, short names, which verbs it serves, and (for custom resources) the
structural schema and whether `/status` is a subresource. The `Registry` answers the discovery
endpoints (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`) from the same table, so what
discovery advertises is exactly what the stand-in serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.standins.kube_schema import structural_problems

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    #: Whether DELETE answers with the deleted object (pods, services, CRDs, custom resources)
    #: rather than a `Status` (everything else), as the real server's strategies do.
    returns_deleted_object: bool = False
    has_status: bool = True
    #: Custom resources: the openAPIV3Schema of this version (None for built-ins).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    custom: bool = False
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`, `applicationprofiles.gadgetwatch.io` (used in messages)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        if self.has_status and "update" in self.verbs:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.plural == "pods" and not self.group:
            out.append(
                {
                    "name": "pods/portforward",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodPortForwardOptions",
                    "verbs": ["create", "get"],
                }
            )
        return out


def _b(
    group: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    version: str = "v1",
    **extra: Any,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        **extra,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _b("", "pods", "Pod", short=("po",), returns_deleted_object=True),
    _b("", "namespaces", "Namespace", namespaced=False, short=("ns",)),
    _b("", "nodes", "Node", namespaced=False, short=("no",)),
    _b("", "services", "Service", short=("svc",), returns_deleted_object=True),
    _b("", "endpoints", "Endpoints", short=("ep",), has_status=False),
    _b("", "events", "Event", short=("ev",), has_status=False),
    _b("", "configmaps", "ConfigMap", short=("cm",), has_status=False),
    _b("", "secrets", "Secret", has_status=False),
    _b("", "serviceaccounts", "ServiceAccount", short=("sa",), has_status=False),
    _b("apps", "deployments", "Deployment", short=("deploy",)),
    _b("apps", "replicasets", "ReplicaSet", short=("rs",)),
    _b("apps", "statefulsets", "StatefulSet", short=("sts",)),
    _b("apps", "daemonsets", "DaemonSet", short=("ds",)),
    _b("batch", "jobs", "Job"),
    _b("batch", "cronjobs", "CronJob", short=("cj",)),
    _b(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        returns_deleted_object=True,
    ),
    _b(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
        has_status=False,
    ),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CRD as resource types (raises ValueError when malformed)."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise ValueError("spec: Required value")
    names = spec.get("names") or {}
    group = spec.get("group")
    plural = names.get("plural")
    kind = names.get("kind")
    if not group or not plural or not kind:
        raise ValueError("spec.group, spec.names.plural and spec.names.kind are required")
    expected = f"{plural}.{group}"
    name = (crd.get("metadata") or {}).get("name")
    if name != expected:
        raise ValueError(
            f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
        )
    scope = spec.get("scope", "Namespaced")
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        schema = (ver.get("schema") or {}).get("openAPIV3Schema")
        where = f"spec.versions[{ver.get('name')}].schema.openAPIV3Schema"
        if schema is None:
            raise ValueError(f"{where}: Required value: schemas are required")
        problems = structural_problems(schema, where)
        if problems:
            raise ValueError("; ".join(problems))
        out.append(
            ResourceType(
                group=group,
                version=ver["name"],
                plural=plural,
                singular=names.get("singular") or kind.lower(),
                kind=kind,
                namespaced=scope == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                returns_deleted_object=True,
                has_status="status" in (ver.get("subresources") or {}),
                schema=schema,
                custom=True,
                categories=tuple(names.get("categories") or ()),
            )
        )
    if not out:
        raise ValueError(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
        )
    return out


class Registry:
    """Lookup of resource types by (group, version, plural) and discovery documents."""

    def __init__(self, types: Iterable[ResourceType] = BUILTINS) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_group_resource(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_plural(self, plural: str) -> list[ResourceType]:
        """Types named `plural` or `plural.group` (as `inject_conflicts` accepts)."""
        return [t for t in self._types.values() if plural in (t.plural, t.qualified)]

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def has_group_version(self, group: str, version: str) -> bool:
        return any(k[0] == group and k[1] == version for k in self._types)

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for (g, v, _), t in sorted(self._types.items()):
            if g == group and v == version:
                resources.extend(t.discovery())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def group_list(self) -> dict[str, Any]:
        groups = []
        for group, versions in sorted(self.group_versions().items()):
            if not group:
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
