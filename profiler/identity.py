"""Profile identity: which profile an event belongs to.

One profile per *workload container*: namespace + top-level owner + container name. Replicas,
restarts and rollouts of one Deployment therefore share one profile, which is what lets a profile
survive a rollout (the predecessors keyed profiles by ReplicaSet and lost them on every release).

Without Kubernetes (plain `ig daemon` host) the workload is the container name plus its image.

`workload_key` is the one identity function: the learner, the detector and the agent's pod
cache (`gadgetwatch.k8s.PodCache`, through `owner_heuristic`) all go through it, in a cluster
and in host or replay mode alike, so a CronJob's runs share one profile with or without a pod
cache. `peer_key` applies the same rules to the peer of a TCP connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gadgetclient.events import Container, PeerIdentity

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

    In Kubernetes: namespace + top-level owner + container name. IG's ``k8s.owner`` already
    holds the top-level owner when IG could walk the owner chain (see
    `gadgetclient.events.Container`); a direct owner (captures from other producers) is
    resolved through `pod_metadata.top_owner` (the pod cache's exact lookup) and, where that
    cannot answer, through `owner_heuristic`; a pod for which IG sent no owner is resolved
    from its name and labels (`pod_owner`). One function for every path, so a workload keeps
    one identity with or without a pod cache.

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
    labels = container.pod_labels
    kind, name = container.owner_kind, container.owner_name
    if not kind or not name:
        kind, name = pod_owner(container.pod, labels)
    else:
        resolved = pod_metadata.top_owner(container.namespace, kind, name)
        kind, name = owner_heuristic(*resolved, labels) if resolved == (kind, name) else resolved
    return WorkloadKey(container.namespace, kind, name, container.container)


#: A CronJob names its Jobs ``<cronjob>-<scheduled time in minutes since the epoch>``
#: (kube-controller-manager, cronjob controller: ``getJobName``).
_CRONJOB_RUN = re.compile(r"^(?P<cronjob>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)-(?P<minutes>\d{8,10})$")
#: Scheduled times a CronJob run name may carry: 2001-09-09 (10^9 s) to 2100-01-01, in minutes.
#: Outside it, a digit suffix is a version or an id, not a schedule.
_CRONJOB_MINUTES = (1_000_000_000 // 60, 4_102_444_800 // 60)


def cronjob_of_job(job: str) -> str:
    """The CronJob a Job name says it was created by, or "" when it does not look like a run."""
    match = _CRONJOB_RUN.match(job)
    if match is None:
        return ""
    low, high = _CRONJOB_MINUTES
    return match.group("cronjob") if low <= int(match.group("minutes")) <= high else ""


def owner_heuristic(
    kind: str, name: str, pod_labels: Sequence[tuple[str, str]] | Mapping[str, str] = ()
) -> tuple[str, str]:
    """The top-level owner a *direct* owner implies, from names and labels alone.

    ReplicaSet ``web-5d4f8`` of a pod labelled ``pod-template-hash=5d4f8`` -> Deployment
    ``web``; Job ``report-29384710`` -> CronJob ``report`` (`cronjob_of_job`). Everything else
    is its own top-level owner. Used when no pod cache answers (host and replay modes), and by
    the pod cache until its exact lookup returns.
    """
    if kind == "ReplicaSet":
        labels = dict(pod_labels)
        template_hash = labels.get("pod-template-hash", "")
        if template_hash and name.endswith("-" + template_hash):
            return "Deployment", name[: -len(template_hash) - 1]
    elif kind == "Job":
        cronjob = cronjob_of_job(name)
        if cronjob:
            return "CronJob", cronjob
    return kind, name


def pod_owner(
    pod: str, pod_labels: Sequence[tuple[str, str]] | Mapping[str, str]
) -> tuple[str, str]:
    """A pod's top-level owner from its name and the labels its controller sets.

    For pods IG sent without owner (its owner lookup failed) and for the peers of TCP
    connections (IG names the peer pod, not its owner). The controllers' own labels decide:
    ``pod-template-hash`` (Deployment), ``statefulset.kubernetes.io/pod-name`` (StatefulSet),
    ``controller-revision-hash`` with ``pod-template-generation`` (DaemonSet), ``job-name``
    (Job, then CronJob by `cronjob_of_job`). A pod without them is its own workload (``Pod``).
    """
    labels = dict(pod_labels)
    template_hash = labels.get("pod-template-hash", "")
    marker = f"-{template_hash}-"
    if template_hash and marker in pod:
        return "Deployment", pod[: pod.rindex(marker)]
    if labels.get("statefulset.kubernetes.io/pod-name") == pod and "-" in pod:
        return "StatefulSet", pod.rsplit("-", 1)[0]
    if "controller-revision-hash" in labels and "pod-template-generation" in labels and "-" in pod:
        return "DaemonSet", pod.rsplit("-", 1)[0]
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name", "")
    if job:
        return owner_heuristic("Job", job)
    return "Pod", pod


@dataclass(frozen=True, slots=True, order=True)
class PeerKey:
    """The identity of a TCP peer, stable across pod restarts and rescheduling.

    ``kind`` is a top-level owner kind (Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod)
    for a pod, ``Service`` for a Service, ``Address`` for an address IG could not name (a
    node, a host-network pod, anything outside the cluster); then ``name`` is the address.
    """

    kind: str
    namespace: str
    name: str

    def display(self) -> str:
        if self.kind == ADDRESS_KIND:
            return f"address {self.name}"
        return f"{self.kind} {self.namespace}/{self.name}"


#: `PeerKey.kind` of a peer IG gave no Kubernetes identity for.
ADDRESS_KIND = "Address"


def peer_key(peer: PeerIdentity, address: str) -> PeerKey:
    """The stable identity of a connection's peer, from IG's enrichment of the endpoint.

    IG names the peer *pod* (``k8s.kind: pod``), whose name changes with every restart; its
    owner comes from the pod's name and labels (`pod_owner`, the same rules as for the
    event's own container). A Service is its namespace and name. Without a name from IG the
    identity is the address itself, in canonical form (an IPv4-mapped IPv6 address becomes
    the IPv4 address), which is stable for nodes and fixed infrastructure.
    """
    if peer.kind == "pod" and peer.name:
        kind, name = pod_owner(peer.name, peer.labels)
        return PeerKey(kind, peer.namespace, name)
    if peer.kind == "svc" and peer.name:
        return PeerKey("Service", peer.namespace, peer.name)
    return PeerKey(ADDRESS_KIND, "", canonical_address(address))


def canonical_address(address: str) -> str:
    """``::ffff:10.0.0.1`` -> ``10.0.0.1``; IPv6 compressed; anything unparsable unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def image_repository(image: str) -> str:
    """``docker.io/library/nginx:1.25@sha256:…`` -> ``docker.io/library/nginx``."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image = image[:colon]
    return image
