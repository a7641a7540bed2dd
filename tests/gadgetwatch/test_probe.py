"""`gadgetwatch probe` against a real replay server (IG's API) and the stand-in API server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from detector.k8s_source import BINDINGS
from gadgetclient.capture import read_capture
from gadgetclient.replay import ReplayServer
from gadgetwatch.config import load_settings
from gadgetwatch.probing import Check, Verdict, probe, render_table
from profiler import documents
from tests.standins.fixtures import KubeApi

CAPTURE = Path(__file__).resolve().parents[2] / "examples" / "webshop-intrusion.capture.jsonl"


@pytest.fixture
async def ig(tmp_path: Path) -> AsyncIterator[str]:
    # Unordered: a probe runs one gadget at a time, which the ordered start barrier would hold.
    server = ReplayServer(read_capture(CAPTURE), listen=f"unix://{tmp_path}/ig.sock", ordered=False)
    address = await server.start()
    yield address
    await server.stop(0)


def _by_name(checks: list[Check]) -> dict[str, tuple[str, Verdict]]:
    return {f"{c.area}:{c.name}": (c.detail, c.verdict) for c in checks}


async def test_host_mode_probe_reports_target_gadgets_and_exporters(ig: str) -> None:
    settings = load_settings(
        overrides={
            "gadgetclient": {"target": ig, "gadgets": ["trace_exec", "trace_open"]},
            "kubernetes": {"mode": "off"},
        }
    )
    checks = await probe(settings)
    by = _by_name(checks)
    assert by[f"ig:{ig}"] == ("reachable, IG v0.55.1", Verdict.OK)
    assert by[f"gadget:trace_exec @ {ig}"][1] is Verdict.OK
    assert by[f"gadget:trace_open @ {ig}"][1] is Verdict.OK
    assert by["exporter:stdout"][1] is Verdict.OK
    assert all(c.verdict is not Verdict.FAIL for c in checks)
    table = render_table(checks)
    assert table.splitlines()[0].split() == ["AREA", "CHECK", "RESULT", "DETAIL"]


async def test_a_gadget_the_server_does_not_have_fails_with_the_servers_reason(ig: str) -> None:
    settings = load_settings(
        overrides={
            "gadgetclient": {"target": ig, "gadgets": ["trace_signal"]},
            "kubernetes": {"mode": "off"},
        }
    )
    (_, gadget, *_) = await probe(settings)
    assert gadget.verdict is Verdict.FAIL
    assert "trace_signal" in gadget.detail


async def test_unreachable_target_and_exporter_fail(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "gadgetclient": {"target": f"unix://{tmp_path}/absent.sock", "connectTimeout": "1s"},
            "kubernetes": {"mode": "off"},
            "exporters": {"alertmanager": {"enabled": True, "urls": ["http://127.0.0.1:9"]}},
        }
    )
    checks = await probe(settings)
    failed = {c.area for c in checks if c.verdict is Verdict.FAIL}
    assert failed == {"ig", "exporter"}


async def test_kubernetes_probe_lists_each_missing_permission(ig: str, kube_api: KubeApi) -> None:
    # Grant everything the agent needs except watching pods.
    for verb in ("get", "list"):
        kube_api.allow(verb, "", "pods")
    kube_api.allow("get", "apps", "replicasets")
    kube_api.allow("get", "batch", "jobs")
    kube_api.allow("*", documents.GROUP, documents.PLURAL)
    kube_api.allow("*", BINDINGS.group, BINDINGS.plural)
    kube_api.allow("*", "gadgetwatch.io", "runtimealertexceptions")
    kube_api.allow("*", "gadgetwatch.io", "runtimeguards")
    kube_api.allow("*", "gadgetwatch.io", "runtimerules")
    kube_api.allow("create", "", "events")
    kube_api.allow("create", "authorization.k8s.io", "selfsubjectaccessreviews")
    kube_api.allow("get", "apiextensions.k8s.io", "customresourcedefinitions")
    kube_api.allow("get", "", "services", "default")
    kube_api.allow("get", "", "endpoints", "default")
    settings = load_settings(
        overrides={
            "gadgetclient": {"target": ig, "gadgets": ["trace_exec"]},
            "kubernetes": {"mode": "on", "apiServer": kube_api.url, "nodeName": "node-a"},
        }
    )
    checks = await probe(settings)
    failed = [c.name for c in checks if c.verdict is Verdict.FAIL]
    assert failed == ["watch pods"]
    crds = [c for c in checks if c.area == "crd"]
    assert crds
    assert all(c.verdict is Verdict.OK for c in crds)


async def test_probe_shows_the_params_each_gadget_gets_and_whether_ig_declares_them(
    ig: str,
) -> None:
    settings = load_settings(
        overrides={
            "gadgetclient": {"target": ig, "gadgets": ["trace_exec", "trace_capabilities"]},
            "kubernetes": {"mode": "off"},
        }
    )
    by = _by_name(await probe(settings))
    detail, verdict = by[f"gadget:trace_exec params @ {ig}"]
    assert verdict is Verdict.OK
    assert detail == "paths=true (declared), ignore-failed=true (declared)"
    detail, verdict = by[f"gadget:trace_capabilities params @ {ig}"]
    assert (detail, verdict) == (
        "collect-kstack=false (declared), unique=true (declared)",
        Verdict.OK,
    )
    # The start check runs the gadget with those params.
    assert by[f"gadget:trace_exec @ {ig}"][1] is Verdict.OK


async def test_probe_warns_when_an_older_ig_lacks_a_param_and_names_the_rules(
    tmp_path: Path,
) -> None:
    server = ReplayServer(
        read_capture(CAPTURE),
        listen=f"unix://{tmp_path}/old.sock",
        ordered=False,
        gadget_params={"trace_exec": ("operator.oci.ebpf.ignore-failed",)},
    )
    address = await server.start()
    try:
        settings = load_settings(
            overrides={
                "gadgetclient": {"target": address, "gadgets": ["trace_exec"]},
                "kubernetes": {"mode": "off"},
            }
        )
        by = _by_name(await probe(settings))
    finally:
        await server.stop(0)
    detail, verdict = by[f"gadget:trace_exec params @ {address}"]
    assert verdict is Verdict.WARN
    assert "paths: NOT declared" in detail
    assert "empty: cwd, exepath, parent_exepath" in detail
    assert "degraded rules: R0001, R1000, R1004, R1005" in detail
    assert server.run_params[-1] == ("trace_exec", {"operator.oci.ebpf.ignore-failed": "true"})
