"""Helpers for the deployment checks: render, validate against Kubernetes schemas, evaluate RBAC.

There is no kubeconform here. The installed official client (v37+) generates its models as
pydantic classes with `extra="forbid"`, strict scalar types and required fields, straight from
the API server's OpenAPI document, so `model_validate` *is* a strict schema check of a built-in
object; on top of that a round trip (`model_dump(by_alias=True)` must give back the input
exactly) rejects snake_case spellings the models also accept but the API server does not.
Custom objects are created through the stand-in API server, which validates them against our
CRDs' structural schemas with `fieldValidation=Strict`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import yaml
from kubernetes.client import models

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "gadgetwatch"
BASE = DEPLOY / "kustomize" / "base"
OVERLAY = DEPLOY / "kustomize" / "overlays" / "example"
GADGETWATCH = Path(sys.executable).with_name("gadgetwatch")

#: Kinds of other API groups the manifests use, by apiVersion prefix → model class prefix.
_MODEL_PREFIX = {
    "v1": "V1",
    "apps/v1": "V1",
    "batch/v1": "V1",
    "rbac.authorization.k8s.io/v1": "V1",
    "networking.k8s.io/v1": "V1",
    "apiextensions.k8s.io/v1": "V1",
    "policy/v1": "V1",
}


def kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl is required (Debian: apt-get install kubernetes-client)"
    return path


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <directory>` parsed into objects."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def model_for(obj: dict[str, Any]) -> type[pydantic.BaseModel] | None:
    prefix = _MODEL_PREFIX.get(obj.get("apiVersion", ""))
    if prefix is None:
        return None
    cls = getattr(models, f"{prefix}{obj.get('kind', '')}", None)
    return cls if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel) else None


def builtin_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a built-in object (empty when valid)."""
    cls = model_for(obj)
    if cls is None:
        return [f"no Kubernetes model for {obj.get('apiVersion')} {obj.get('kind')}"]
    try:
        parsed = cls.model_validate(obj)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    if parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") != obj:
        return ["object does not round-trip (a field spelled differently from the API?)"]
    return []


def is_custom(obj: dict[str, Any]) -> bool:
    return obj.get("apiVersion", "") not in _MODEL_PREFIX


def _matches(values: list[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def granted(
    objects: list[dict[str, Any]],
    *,
    sa_namespace: str,
    sa_name: str,
    verb: str,
    group: str,
    resource: str,
    namespace: str,
    name: str = "",
) -> bool:
    """Whether the RBAC objects grant the ServiceAccount this request (RBAC's own rules)."""
    by_kind: dict[tuple[str, str, str], dict[str, Any]] = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects
    }
    for binding in objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == sa_name
            and s.get("namespace") == sa_namespace
            for s in subjects
        ):
            continue
        binding_ns = binding["metadata"].get("namespace", "")
        if binding["kind"] == "RoleBinding" and binding_ns != namespace:
            continue
        ref = binding["roleRef"]
        role_ns = binding_ns if ref["kind"] == "Role" else ""
        role = by_kind.get((ref["kind"], role_ns, ref["name"]))
        if role is None:
            continue
        for rule in role.get("rules") or []:
            names = rule.get("resourceNames") or []
            if (
                _matches(rule.get("apiGroups") or [], group)
                and _matches(rule.get("resources") or [], resource)
                and _matches(rule.get("verbs") or [], verb)
                and (not names or name in names)
            ):
                return True
    return False


def grants_of(objects: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Every (verb, group, resource, resourceName) any Role/ClusterRole grants."""
    out = set()
    for o in objects:
        if o["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in o.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [""]:
                            out.add((verb, group, resource, name))
    return out


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`gadgetwatch run --check-config --config <path>` (the lead's config loader)."""
    return subprocess.run(
        [str(GADGETWATCH), "run", "--check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
