"""Pod-metadata records in captures: format, validation, and the metadata they serve."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import (
    CapturePodMetadata,
    CaptureWriter,
    PodRecord,
    parse_capture,
)
from gadgetclient.errors import CaptureError
from gadgetwatch.commands.record import pod_records

EXEC_LINE = {"gadget": "trace_exec", "datasource": "exec", "node": "n", "data": {"args": "ls"}}


def pod(**kw: Any) -> dict[str, Any]:
    return {
        "gadgetwatchPod": 1,
        "namespace": "shop",
        "name": "web-5d4f8c7b9-x7k2p",
        "labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"},
        "owner": {"kind": "ReplicaSet", "name": "web-5d4f8c7b9"},
        "mounts": {"app": ["/data"], "nginx": ["/var/cache/nginx"]},
        **kw,
    }


def text(*values: Any) -> str:
    return "".join(json.dumps(v) + "\n" for v in values)


def test_records_are_side_records_and_serve_pod_metadata() -> None:
    capture = parse_capture(
        text({"gadgetwatchCapture": 1}, pod(), EXEC_LINE, pod(name="db-0", owner=None, mounts={}))
    )
    assert len(capture.lines) == 1  # pod records are not events: the replay never serves them
    assert [p.name for p in capture.pods] == ["web-5d4f8c7b9-x7k2p", "db-0"]
    meta = CapturePodMetadata(capture.pods)
    assert meta.volume_mounts("shop", "web-5d4f8c7b9-x7k2p", "app") == ("/data",)
    assert meta.volume_mounts("shop", "web-5d4f8c7b9-x7k2p", "sidecar") == ()
    assert meta.volume_mounts("shop", "unknown", "app") == ()
    assert meta.labels("shop", "web-5d4f8c7b9-x7k2p")["app"] == "web"
    # ReplicaSet named <deployment>-<pod-template-hash> resolves to the Deployment.
    assert meta.top_owner("shop", "ReplicaSet", "web-5d4f8c7b9") == ("Deployment", "web")
    assert meta.top_owner("shop", "StatefulSet", "db") == ("StatefulSet", "db")


def test_explicit_top_owner_wins_and_a_later_record_replaces_an_earlier() -> None:
    capture = parse_capture(
        text(
            pod(labels={"app": "old"}),
            pod(
                name="job-x-abc",
                owner={"kind": "Job", "name": "nightly-2900"},
                topOwner={"kind": "CronJob", "name": "nightly"},
            ),
            pod(labels={"app": "new"}),
        )
    )
    meta = CapturePodMetadata(capture.pods)
    assert meta.top_owner("shop", "Job", "nightly-2900") == ("CronJob", "nightly")
    assert meta.labels("shop", "web-5d4f8c7b9-x7k2p") == {"app": "new"}


def test_writer_round_trip() -> None:
    record = PodRecord(
        namespace="shop",
        name="p",
        labels={"b": "2", "a": "1"},
        annotations={"x": "y"},
        owner=("ReplicaSet", "p-1"),
        top_owner=("Deployment", "p"),
        mounts={"c": ("/m",)},
    )
    out = io.BytesIO()
    writer = CaptureWriter(out, header={"target": "t"})
    writer.write_pod(record)
    writer.write("trace_exec", "exec", "n", {"args": "ls"})
    assert writer.lines == 1
    capture = parse_capture(out.getvalue().decode())
    assert capture.pods == (record,)
    assert capture.header["target"] == "t"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (pod(gadgetwatchPod=2), "version 2 not supported"),
        (pod(extra=1), "unknown field 'extra'"),
        (pod(name=""), "`name` must be a non-empty string"),
        (pod(labels={"a": 1}), "`labels` must map strings to strings"),
        (pod(owner={"kind": "ReplicaSet"}), "`owner.name`"),
        (pod(owner="rs"), "`owner` must be {kind, name}"),
        (pod(mounts={"app": ["relative"]}), "`mounts.app` must list absolute paths"),
        (pod(mounts=["/data"]), "`mounts` must map container names"),
    ],
)
def test_bad_records_name_the_line(record: dict[str, Any], problem: str) -> None:
    with pytest.raises(CaptureError) as err:
        parse_capture(text(EXEC_LINE, record), name="cap.jsonl")
    assert problem in str(err.value)
    assert "cap.jsonl:2" in str(err.value)


def test_header_after_a_pod_record_is_an_error() -> None:
    with pytest.raises(CaptureError, match="header must be the first line"):
        parse_capture(text(pod(), {"gadgetwatchCapture": 1}))


def test_record_reads_kubectl_pod_lists(tmp_path: Path) -> None:
    """`record --pods` takes `kubectl get pods -o json`: owner, labels, mounts (token mount
    excluded), one record per pod."""
    pods = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web-5d4f8c7b9-x7k2p",
                    "namespace": "shop",
                    "labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"},
                    "ownerReferences": [
                        {"kind": "ReplicaSet", "name": "web-5d4f8c7b9", "controller": True}
                    ],
                },
                "spec": {
                    "volumes": [{"name": "kube-api-access-x1"}, {"name": "data"}],
                    "containers": [
                        {
                            "name": "app",
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data"},
                                {
                                    "name": "kube-api-access-x1",
                                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                },
                            ],
                        }
                    ],
                },
            }
        ],
    }
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(pods))
    (record,) = pod_records(path)
    assert record.owner == ("ReplicaSet", "web-5d4f8c7b9")
    assert record.mounts == {"app": ("/data",)}
    path.write_text(json.dumps({"kind": "List", "items": [{"kind": "Service"}]}))
    with pytest.raises(ValueError, match="item 0 is not a Pod"):
        pod_records(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="--pods"):
        pod_records(path)
