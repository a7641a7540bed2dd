"""The generic REST semantics of the API server: create, get, list, update, patch, delete, watch.

Each verb follows the real server's order of checks, because code under test reacts to *which*
error it gets: body decoding (400), namespace/name consistency (400), namespace existence (404),
object-meta validation and the CRD schema (422, or 400 for unknown fields under Strict field
validation), existence (404 / 409 AlreadyExists), optimistic concurrency (409 Conflict), then
the object size limit (413). Writes go through `Store.write`, which stamps the global
resourceVersion and feeds watchers.

Deliberate simplifications are listed in `docs/kubernetes-standin.md`.
"""

from __future__ import annotations

import copy
import datetime
import json
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.standins.kube_patching import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from tests.standins.kube_resources import Registry, ResourceType, types_from_crd
from tests.standins.kube_schema import Cause, validate_custom_object
from tests.standins.kube_status import (
    StatusError,
    already_exists,
    conflict,
    invalid,
    not_found,
)
from tests.standins.kube_store import Store

#: The request body limit of the API server (`--max-request-bytes` default, 3 MiB).
MAX_REQUEST_BYTES = 3 * 1024 * 1024
#: etcd's default request limit (1.5 MiB): an object larger than this cannot be stored.
MAX_OBJECT_BYTES = 1536 * 1024

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
#: Resources whose names must be DNS-1123 labels (63 chars), not subdomains.
_LABEL_NAMED = {"namespaces", "services"}
#: Total annotation size limit (apimachinery `TotalAnnotationSizeLimitB`).
MAX_ANNOTATIONS_BYTES = 256 * 1024
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Options:
    """Stand-in behaviour switches (the defaults are the real server's, except where noted)."""

    #: fieldValidation when the request does not say: the real default is "Warn" (prune and add
    #: a Warning header). The stand-in defaults to "Strict" so that tests catch writes of
    #: fields the CRD would silently drop (documented difference).
    field_validation: str = "Strict"
    #: Reject namespaced writes into a namespace that does not exist (NamespaceLifecycle).
    require_namespace: bool = True
    #: Pending injected conflicts per qualified resource name.
    conflicts: dict[str, int] = field(default_factory=dict)


def _meta_causes(rtype: ResourceType, meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    name = meta.get("name", "")
    if name:
        pattern, limit = (_DNS_LABEL, 63) if rtype.plural in _LABEL_NAMED else (_DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.match(name):
            what = "RFC 1123 label" if limit == 63 else "RFC 1123 subdomain"
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(name)}: a lowercase {what} must consist of "
                    "lower case alphanumeric characters, '-' or '.', and must start and end "
                    f"with an alphanumeric character (at most {limit} characters)",
                    "metadata.name",
                )
            )
    for key, value in (meta.get("labels") or {}).items():
        _, _, short = key.rpartition("/")
        if not _QUALIFIED_NAME.match(short) or len(short) > 63:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(key)}: "
                    "name part must consist of alphanumeric characters",
                    "metadata.labels",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(value)}: a "
                    "valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.' (at most 63 characters)",
                    "metadata.labels",
                )
            )
    annotations = meta.get("annotations") or {}
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > MAX_ANNOTATIONS_BYTES:
        causes.append(
            Cause(
                "FieldValueTooLong",
                "Too long: must have at most 262144 bytes",
                "metadata.annotations",
            )
        )
    return causes


def _builtin_causes(rtype: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """The handful of built-in validations code under test could plausibly trip."""
    causes: list[Cause] = []
    if rtype.plural == "pods" and not rtype.group:
        containers = (obj.get("spec") or {}).get("containers")
        if not containers:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.containers"))
        for i, c in enumerate(containers or []):
            if not c.get("name"):
                causes.append(
                    Cause("FieldValueRequired", "Required value", f"spec.containers[{i}].name")
                )
    return causes


class Rest:
    """The verbs over one `Store` and `Registry`."""

    def __init__(self, store: Store, registry: Registry, options: Options) -> None:
        self.store = store
        self.registry = registry
        self.options = options
        self.warnings: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

    def _gr(self, rtype: ResourceType) -> tuple[str, str]:
        return (rtype.group, rtype.plural)

    def _present(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy as served at the requested version (custom objects carry the URL's version)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rtype.api_version
        out["kind"] = rtype.kind
        return out

    def _check_namespace(self, rtype: ResourceType, namespace: str) -> None:
        if not rtype.namespaced or not self.options.require_namespace:
            return
        if self.store.get(("", "namespaces"), "", namespace) is None:
            raise StatusError(
                404,
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )

    def _validate(
        self, rtype: ResourceType, obj: dict[str, Any], *, field_validation: str | None
    ) -> dict[str, Any]:
        """Meta + schema validation; returns the (pruned) object or raises 400/422."""
        meta = obj.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName") or ""
        causes = _meta_causes(rtype, meta)
        if rtype.custom:
            result = validate_custom_object(obj, rtype.schema)
            causes.extend(result.causes)
            mode = field_validation or self.options.field_validation
            if result.unknown and mode == "Strict":
                listed = ", ".join(f'unknown field "{u}"' for u in result.unknown)
                raise StatusError(
                    400,
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                    f"{rtype.kind}: strict decoding error: {listed}",
                )
            if result.unknown and mode == "Warn":
                self.warnings.extend(f'unknown field "{u}"' for u in result.unknown)
            obj = result.pruned
        else:
            causes.extend(_builtin_causes(rtype, obj))
        if causes:
            raise invalid(rtype, name, causes)
        return obj

    def _check_size(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        if len(json.dumps(obj, separators=(",", ":"))) > MAX_OBJECT_BYTES:
            raise StatusError(
                413,
                "Request entity too large: etcdserver: request is too large",
                details={"name": obj["metadata"].get("name", ""), "kind": rtype.plural},
            )

    def take_conflict(self, rtype: ResourceType) -> bool:
        for key in (rtype.qualified, rtype.plural):
            pending = self.options.conflicts.get(key, 0)
            if pending > 0:
                self.options.conflicts[key] = pending - 1
                return True
        return False

    # -- verbs -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(self._gr(rtype), namespace, name)
        if obj is None:
            raise not_found(rtype, name)
        return self._present(rtype, obj)

    def create(
        self,
        rtype: ResourceType,
        namespace: str,
        body: Any,
        *,
        field_validation: str | None = None,
        backdoor: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StatusError(400, "the object provided is unrecognized (must be a JSON object)")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, rtype.kind):
            raise StatusError(
                400,
                f"the object provided is unrecognized (must be of type {rtype.kind}): "
                f"{obj.get('kind')}",
            )
        if obj.get("apiVersion") not in (None, rtype.api_version) and rtype.custom:
            raise StatusError(
                400,
                f"the API version in the data ({obj.get('apiVersion')}) does not match "
                f"the expected API version ({rtype.api_version})",
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise StatusError(400, "metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise StatusError(
                    400,
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))
                meta["name"] = f"{meta['generateName']}{suffix}"
            else:
                raise invalid(
                    rtype,
                    "",
                    [
                        Cause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
        if not backdoor:
            self._check_namespace(rtype, namespace)
            obj = self._validate(rtype, obj, field_validation=field_validation)
            meta = obj["metadata"]
        if self.store.get(self._gr(rtype), meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(rtype, meta["name"])
        if rtype.plural == "customresourcedefinitions":
            obj = self._register_crd(obj)
            meta = obj["metadata"]
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        if rtype.custom and rtype.has_status and not backdoor:
            obj.pop("status", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        if rtype.custom or rtype.group in ("apps", "batch") or rtype.plural == "pods":
            meta.setdefault("generation", 1)
        if rtype.plural == "services" and not rtype.group:
            spec = obj.setdefault("spec", {})
            spec.setdefault("clusterIP", f"10.96.{random.randint(1, 254)}.{random.randint(1, 254)}")
            spec.setdefault("type", "ClusterIP")
        if rtype.plural == "namespaces" and not rtype.group:
            obj.setdefault("status", {"phase": "Active"})
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        self._check_size(rtype, obj)
        return self._present(rtype, self.store.write(self._gr(rtype), obj, type_="ADDED"))

    def _register_crd(self, obj: dict[str, Any]) -> dict[str, Any]:
        try:
            types = types_from_crd(obj)
        except (ValueError, KeyError, TypeError) as exc:
            crd = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            assert crd is not None
            name = (obj.get("metadata") or {}).get("name", "")
            raise invalid(crd, name, [Cause("FieldValueInvalid", str(exc), "spec")]) from exc
        for t in types:
            self.registry.add(t)
        names = obj["spec"]["names"]
        accepted = {k: v for k, v in names.items()}
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", f"{names['kind']}List")
        obj["status"] = {
            "acceptedNames": accepted,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "lastTransitionTime": now_rfc3339(),
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "lastTransitionTime": now_rfc3339(),
                    "message": "the initial names have been accepted",
                },
            ],
            "storedVersions": [
                v["name"] for v in obj["spec"].get("versions", []) if v.get("storage")
            ],
        }
        return obj

    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StatusError(400, "the object provided is unrecognized (must be a JSON object)")
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name:
            raise StatusError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name "
                f"on the URL ({name})",
            )
        if rtype.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise StatusError(
                400,
                "the namespace of the provided object does not match the namespace sent "
                "on the request",
            )
        current = self.store.get(self._gr(rtype), namespace, name)
        if current is None:
            raise not_found(rtype, name)
        if self.take_conflict(rtype):
            raise conflict(rtype, name)
        sent_rv = meta.get("resourceVersion")
        if not sent_rv and rtype.custom:
            raise invalid(
                rtype,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rtype, name)
        return self._commit(
            rtype, current, new, subresource=subresource, field_validation=field_validation
        )

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        content_type: str,
        subresource: str | None = None,
        field_validation: str | None = None,
    ) -> dict[str, Any]:
        current = self.store.get(self._gr(rtype), namespace, name)
        if current is None:
            raise not_found(rtype, name)
        base = self._present(rtype, current)
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(base, body)
            elif content_type == "application/merge-patch+json":
                patched = merge_patch(base, body)
            elif content_type == "application/strategic-merge-patch+json":
                if rtype.custom:
                    raise StatusError(
                        415,
                        "strategic merge patch is not supported for custom resources; "
                        "use merge patch or JSON patch",
                        reason="UnsupportedMediaType",
                    )
                patched = strategic_merge_patch(base, body)
            else:
                raise StatusError(
                    415,
                    f"the body of the request was in an unknown format - accepted media "
                    "types include: application/json-patch+json, application/merge-patch+json, "
                    f"application/strategic-merge-patch+json (got {content_type})",
                    reason="UnsupportedMediaType",
                )
        except PatchError as exc:
            raise StatusError(exc.code, str(exc)) from exc
        if not isinstance(patched, dict):
            raise StatusError(
                400, "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        if self.take_conflict(rtype):
            raise conflict(rtype, name)
        meta = patched.setdefault("metadata", {})
        if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise conflict(rtype, name)
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = namespace
        return self._commit(
            rtype, current, patched, subresource=subresource, field_validation=field_validation
        )

    def _commit(
        self,
        rtype: ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str | None,
        field_validation: str | None,
    ) -> dict[str, Any]:
        if subresource == "status":
            merged = copy.deepcopy(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif rtype.has_status and rtype.custom:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        new = self._validate(rtype, new, field_validation=field_validation)
        meta = new["metadata"]
        for frozen in ("uid", "creationTimestamp", "deletionTimestamp", "namespace"):
            if frozen in current["metadata"]:
                meta[frozen] = current["metadata"][frozen]
        new["apiVersion"] = current.get("apiVersion", rtype.api_version)
        new["kind"] = rtype.kind
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if "generation" in current["metadata"]:
            meta["generation"] = current["metadata"]["generation"]
            ignored = ("metadata", "status", "apiVersion", "kind")
            before = {k: v for k, v in current.items() if k not in ignored}
            after = {k: v for k, v in new.items() if k not in ignored}
            if before != after:
                meta["generation"] += 1
        if new == current:
            # A no-op write does not advance resourceVersion nor emit a watch event.
            return self._present(rtype, current)
        self._check_size(rtype, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._present(rtype, self._remove(rtype, new))
        return self._present(rtype, self.store.write(self._gr(rtype), new, type_="MODIFIED"))

    def _remove(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        gr = self._gr(rtype)
        meta = obj["metadata"]
        if rtype.plural == "namespaces" and not rtype.group:
            # Simplification: namespace contents go at once (no Terminating phase).
            for (group, plural), bucket in list(self.store.objects.items()):
                for (ns, _child), child in list(bucket.items()):
                    if ns == meta["name"]:
                        self.store.write((group, plural), child, type_="DELETED")
        if rtype.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
            for child in list(self.store.bucket((group, plural)).values()):
                self.store.write((group, plural), child, type_="DELETED")
            self.registry.remove_group_resource(group, plural)
        return self.store.write(gr, obj, type_="DELETED")

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, body: Any
    ) -> tuple[dict[str, Any], bool]:
        """Delete; returns (response body, whether the object is fully gone)."""
        current = self.store.get(self._gr(rtype), namespace, name)
        if current is None:
            raise not_found(rtype, name)
        pre = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        if pre.get("uid") and pre["uid"] != current["metadata"].get("uid"):
            raise StatusError(
                409,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                f"meta: {current['metadata'].get('uid')}",
                details={"name": name, "kind": rtype.plural},
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"].get(
            "resourceVersion"
        ):
            raise conflict(rtype, name)
        if current["metadata"].get("finalizers"):
            marked = copy.deepcopy(current)
            marked["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            if marked != current:
                self.store.write(self._gr(rtype), marked, type_="MODIFIED")
            return self._present(rtype, marked), False
        gone = self._remove(rtype, copy.deepcopy(current))
        if rtype.returns_deleted_object:
            return self._present(rtype, gone), True
        details: dict[str, Any] = {
            "name": name,
            "kind": rtype.plural,
            "uid": gone["metadata"].get("uid"),
        }
        if rtype.group:
            details["group"] = rtype.group
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }, True
