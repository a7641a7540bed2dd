"""Profile identity: which profile an event belongs to.

One profile per *workload container*: namespace + top-level owner + container name. Replicas,
restarts and rollouts of one Deployment therefore share one profile, which is what lets a profile
survive a rollout (the predecessors keyed profiles by ReplicaSet and lost them on every release).

Without Kubernetes (plain `ig daemon` host) the workload is the container name plus its image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gadgetclient.events import Container

#: A Kubernetes namespace name: a DNS-1123 label (lower-case alphanumerics and '-', at most 63).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_namespace_name(name: str) -> bool:
    """Whether `name` is a valid namespace name. Events carry namespaces, and events are
    attacker-controlled: a store checks this before a namespace becomes a path or a URL."""
    return _NAMESPACE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True, order=True)
class WorkloadKey:
    """The identity of one profile. A tuple-like key, never a concatenated string."""

    namespace: str
    #: Top-level owner kind: Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod; "Host" outside
    #: Kubernetes.
    owner_kind: str
    #: Top-level owner name; outside Kubernetes the image name.
    owner_name: str
    container: str

    def display(self) -> str:
        """Human form, e.g. ``shop/Deployment/web/nginx``."""
        return f"{self.namespace or '-'}/{self.owner_kind}/{self.owner_name}/{self.container}"


class PodMetadata(Protocol):
    """What the agent knows about pods beyond IG's enrichment (from the node-local pod cache).

    Implemented by `gadgetwatch.k8s.PodCache` in a cluster and by `NoPodMetadata` on a host.
    Lookups are in-memory (the cache is watch-fed), so they may be called on the hot path.
    """

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        """Resolve a direct owner to the top-level one.

        Example: (ReplicaSet, web-5d4f) -> (Deployment, web).
        """
        ...

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]: ...

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]: ...

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        """Mount paths of the container's volumes (excluding the service-account token mount)."""
        ...

    def pod_ip(self, namespace: str, pod: str) -> str:
        """The pod's IP (``status.podIP``), "" when unknown or on the host network."""
        ...


class NoPodMetadata:
    """Host mode / offline: nothing beyond what IG sent. Owners resolve to themselves."""

    def top_owner(self, namespace: str, kind: str, name: str) -> tuple[str, str]:
        return kind, name

    def annotations(self, namespace: str, pod: str) -> Mapping[str, str]:
        return {}

    def labels(self, namespace: str, pod: str) -> Mapping[str, str]:
        return {}

    def volume_mounts(self, namespace: str, pod: str, container: str) -> Sequence[str]:
        return ()

    def pod_ip(self, namespace: str, pod: str) -> str:
        return ""


#: Owner kind used for profiles of plain containers (no Kubernetes).
HOST_KIND = "Host"


def workload_key(container: Container, pod_metadata: PodMetadata) -> WorkloadKey:
    """The profile identity of an event's container. The profiler, the detector and the agent
    all call this, so they always agree on which profile an event belongs to.

    In Kubernetes: namespace + top-level owner (resolved through `pod_metadata.top_owner`:
    ReplicaSet -> Deployment, Job -> CronJob; StatefulSet, DaemonSet stay) + container name; a
    pod without owner is its own workload (kind ``Pod``). When the owner lookup cannot resolve a
    ReplicaSet (no pod cache), the Deployment name is derived from the ReplicaSet name minus the
    pod's ``pod-template-hash`` suffix, so identity does not change with every rollout.

    Without Kubernetes (no namespace and no pod): kind ``Host``, the image repository without
    tag or digest as owner name (an upgrade keeps its profile, like a rollout), and the
    container name.
    """
    if not container.namespace and not container.pod:
        return WorkloadKey(
            namespace="",
            owner_kind=HOST_KIND,
            owner_name=image_repository(container.image) or container.container,
            container=container.container,
        )
    kind, name = container.owner_kind, container.owner_name
    if not kind or not name:
        return WorkloadKey(container.namespace, "Pod", container.pod, container.container)
    kind, name = pod_metadata.top_owner(container.namespace, kind, name)
    if kind == "ReplicaSet":
        template_hash = dict(container.pod_labels).get("pod-template-hash", "")
        if template_hash and name.endswith("-" + template_hash):
            kind, name = "Deployment", name[: -len(template_hash) - 1]
    return WorkloadKey(container.namespace, kind, name, container.container)


def image_repository(image: str) -> str:
    """``docker.io/library/nginx:1.25@sha256:…`` -> ``docker.io/library/nginx``."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image = image[:colon]
    return image
