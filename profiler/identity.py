"""Profile identity: which profile an event belongs to.

One profile per *workload container*: namespace + top-level owner + container name. Replicas,
restarts and rollouts of one Deployment therefore share one profile, which is what lets a profile
survive a rollout (the predecessors keyed profiles by ReplicaSet and lost them on every release).

Without Kubernetes (plain `ig daemon` host) the workload is the container name plus its image.
"""

from __future__ import annotations

from dataclasses import dataclass


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
