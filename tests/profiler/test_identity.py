"""Workload identity: one function for the pod cache, the no-cache path and TCP peers.

What IG sends in ``k8s.owner`` (inspektor-gadget `pkg/container-collection`,
`ownerReferenceEnrichment`): the *top-level* owner, found by walking controller references
through Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob and
ReplicationController, so a CronJob's pod arrives with ``CronJob/<name>`` and a Deployment's
with ``Deployment/<name>``; when a lookup on that walk fails (RBAC, API down) IG sends no owner
at all. Captures written by other producers may carry the direct owner (ReplicaSet, Job).
"""

from __future__ import annotations

import pytest

from gadgetclient.events import Container, PeerIdentity
from profiler.identity import (
    NoPodMetadata,
    PeerKey,
    WorkloadKey,
    canonical_address,
    cronjob_of_job,
    owner_heuristic,
    peer_key,
    pod_owner,
    workload_key,
)
from tests.profiler.helpers import FakePods

JOB_LABELS = (
    ("batch.kubernetes.io/controller-uid", "0b6c3c2e"),
    ("batch.kubernetes.io/job-name", "report-gen-29384710"),
    ("controller-uid", "0b6c3c2e"),
    ("job-name", "report-gen-29384710"),
)
CRONJOB = WorkloadKey("jobs", "CronJob", "report-gen", "report")


def run_of(job: str, pod_suffix: str, *, owner: tuple[str, str]) -> Container:
    labels = tuple(
        (k, job) if k.endswith("job-name") else (k, v) for k, v in JOB_LABELS
    )  # fmt: skip
    return Container(
        namespace="jobs",
        pod=f"{job}-{pod_suffix}",
        container="report",
        owner_kind=owner[0],
        owner_name=owner[1],
        pod_labels=labels,
    )


@pytest.mark.parametrize(
    "owner",
    [
        ("CronJob", "report-gen"),  # what IG sends when its owner walk succeeds
        ("Job", "{job}"),  # a direct owner (other capture producers)
        ("", ""),  # IG's owner walk failed: no owner at all
    ],
)
def test_every_cronjob_run_is_one_workload_without_a_pod_cache(owner: tuple[str, str]) -> None:
    keys = set()
    for job, suffix in (("report-gen-29384710", "x7k2p"), ("report-gen-29384770", "q9m4z")):
        ref = (owner[0], owner[1].format(job=job))
        keys.add(workload_key(run_of(job, suffix, owner=ref), NoPodMetadata()))
    assert keys == {CRONJOB}


def test_a_resolved_pod_cache_answer_wins_an_unchanged_one_falls_back() -> None:
    # A standalone Job whose name merely looks like a CronJob run: the pod cache looked it up.
    exact = FakePods(owners={("Job", "report-gen-29384710"): ("Job", "report-gen-29384710")})
    c = run_of("report-gen-29384710", "abcde", owner=("Job", "report-gen-29384710"))
    # The cache returned the name unchanged, which is also what "not resolved" looks like, so
    # the shared heuristic applies: documented in docs/profiles.md (Workload identity).
    assert workload_key(c, exact) == CRONJOB
    resolved = FakePods(owners={("Job", "report-gen-29384710"): ("CronJob", "reports")})
    assert workload_key(c, resolved) == WorkloadKey("jobs", "CronJob", "reports", "report")


@pytest.mark.parametrize(
    ("job", "cronjob"),
    [
        ("report-gen-29384710", "report-gen"),
        ("a-16666667", "a"),  # 2001-09-09, the lower bound
        ("backup-28374650", "backup"),
        # 20,240,101 minutes since the epoch is 2008-06: a plausible schedule, so it counts.
        ("release-20240101", "release"),
        ("migrate-1", ""),
        ("migrate-123456789012", ""),  # too many digits
        ("x-99999999", ""),  # year 2160: not a schedule
        ("-29384710", ""),
        ("UPPER-29384710", ""),  # not a DNS-1123 name
    ],
)
def test_cronjob_run_names(job: str, cronjob: str) -> None:
    assert cronjob_of_job(job) == cronjob


def test_owner_heuristic() -> None:
    labels = {"pod-template-hash": "5d4f8"}
    assert owner_heuristic("ReplicaSet", "web-5d4f8", labels) == ("Deployment", "web")
    assert owner_heuristic("ReplicaSet", "web-5d4f8", {}) == ("ReplicaSet", "web-5d4f8")
    assert owner_heuristic("ReplicaSet", "solo", labels) == ("ReplicaSet", "solo")
    assert owner_heuristic("Job", "once", {}) == ("Job", "once")
    assert owner_heuristic("StatefulSet", "db", {}) == ("StatefulSet", "db")


@pytest.mark.parametrize(
    ("pod", "labels", "owner"),
    [
        ("web-5d4f8c7b9-x7k2p", {"pod-template-hash": "5d4f8c7b9"}, ("Deployment", "web")),
        ("db-0", {"statefulset.kubernetes.io/pod-name": "db-0",
                  "controller-revision-hash": "db-6b8f"}, ("StatefulSet", "db")),
        ("fluentd-8xk2p", {"controller-revision-hash": "7c9d", "pod-template-generation": "3"},
         ("DaemonSet", "fluentd")),
        ("report-gen-29384710-x7k2p", {"job-name": "report-gen-29384710"},
         ("CronJob", "report-gen")),
        ("migrate-abcde", {"batch.kubernetes.io/job-name": "migrate"}, ("Job", "migrate")),
        ("debug", {"run": "debug"}, ("Pod", "debug")),
        # A label that does not fit the name is not trusted.
        ("web-x7k2p", {"pod-template-hash": "5d4f8c7b9"}, ("Pod", "web-x7k2p")),
    ],
)  # fmt: skip
def test_pod_owner(pod: str, labels: dict[str, str], owner: tuple[str, str]) -> None:
    assert pod_owner(pod, labels) == owner


def test_peer_keys_are_stable_across_pod_restarts() -> None:
    labels = (("app", "db"), ("pod-template-hash", "6b8f9"))
    a = peer_key(PeerIdentity("pod", "db-6b8f9-aaaaa", "data", labels), "10.244.1.20")
    b = peer_key(PeerIdentity("pod", "db-6b8f9-bbbbb", "data", labels), "10.244.2.31")
    assert a == b == PeerKey("Deployment", "data", "db")
    svc = peer_key(PeerIdentity("svc", "db", "data"), "10.96.0.20")
    assert svc == PeerKey("Service", "data", "db")
    assert svc.display() == "Service data/db"
    raw = peer_key(PeerIdentity("raw"), "::ffff:10.0.0.7")
    assert raw == PeerKey("Address", "", "10.0.0.7")
    assert raw.display() == "address 10.0.0.7"
    assert peer_key(PeerIdentity(), "fd00:0:0::1") == PeerKey("Address", "", "fd00::1")


def test_canonical_address() -> None:
    assert canonical_address("::ffff:169.254.169.254") == "169.254.169.254"
    assert canonical_address("FD00:EC2::254") == "fd00:ec2::254"
    assert canonical_address("not-an-ip") == "not-an-ip"
