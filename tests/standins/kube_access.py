"""Authorization in the stand-in: an allow-list answering SelfSubjectAccessReviews.

The real API server asks its authorizers (RBAC) whether a user may do (verb, group, resource,
namespace); `gadgetwatch probe` asks the same question through a SelfSubjectAccessReview. Here
the answer comes from a list of (verb, group, resource, namespace) rules with `*` wildcards,
`resource` possibly `pods/portforward`, and namespace None meaning every namespace (like a
ClusterRoleBinding). Until the first rule is added everything is allowed, so tests that do not
care about RBAC need no set-up. Object names in reviews are not considered.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.standins.kube_status import StatusError

AccessRule = tuple[str, str, str, str | None]


class AccessList:
    def __init__(self) -> None:
        #: None: allow everything; otherwise only what a rule matches.
        self.rules: list[AccessRule] | None = None

    def allow(self, verb: str, group: str, resource: str, namespace: str | None) -> None:
        if self.rules is None:
            self.rules = []
        self.rules.append((verb, group, resource, namespace))

    def deny_all(self) -> None:
        self.rules = []

    def allowed(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        if self.rules is None:
            return True
        for v, g, r, ns in self.rules:
            if v not in ("*", verb) or g not in ("*", group) or r not in ("*", resource):
                continue
            if ns in (None, "", "*") or ns == namespace:
                return True
        return False

    def review(self, body: Any) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview body (raises 400/422 like the server)."""
        if not isinstance(body, dict):
            raise StatusError(400, "the object provided is unrecognized")
        spec = body.get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if attrs:
            resource = attrs.get("resource", "")
            if attrs.get("subresource"):
                resource = f"{resource}/{attrs['subresource']}"
            ok = self.allowed(
                attrs.get("verb", ""), attrs.get("group", ""), resource, attrs.get("namespace", "")
            )
        elif spec.get("nonResourceAttributes"):
            ok = self.rules is None
        else:
            raise StatusError(
                422,
                'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
                "spec.resourceAttributes: Invalid value: null: exactly one of "
                "nonResourceAttributes or resourceAttributes must be specified",
                reason="Invalid",
            )
        out = copy.deepcopy(body)
        out["apiVersion"] = "authorization.k8s.io/v1"
        out["kind"] = "SelfSubjectAccessReview"
        out.setdefault("metadata", {})["creationTimestamp"] = None
        out["status"] = {"allowed": ok}
        if ok:
            out["status"]["reason"] = "allowed by the stand-in's access list"
        return out
