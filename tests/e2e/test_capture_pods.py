"""A capture's pod records drive R0002 `ignoreMounts` and R1004 offline (issue 21).

`gadgetwatch run --replay` (its own process, real gRPC to the in-process replay server) of a
capture built with the scenario's IG record generator: container `app` of the web pod execs from
its `/data` volume, container `nginx` opens files under its `/var/cache/nginx` volume and
outside it. The same capture is replayed with and without its pod record, so the difference in
alerts is exactly what the pod metadata contributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detector.bindings import API_VERSION as BINDING_API
from tests.e2e.harness import GADGETWATCH, Proc
from tests.e2e.scenario import APP, MIN, NGINX, SEC, T0, WEB_POD, ex

BINDINGS = f"""\
apiVersion: {BINDING_API}
kind: RuntimeRuleAlertBinding
metadata: {{name: mounts}}
spec:
  rules:
  - ruleID: R0002
    parameters: {{ignoreMounts: true}}
  - ruleID: R1004
"""

POD_RECORD = {
    "gadgetwatchPod": 1,
    "namespace": "shop",
    "name": WEB_POD,
    "labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"},
    "owner": {"kind": "ReplicaSet", "name": "web-5d4f8c7b9"},
    "mounts": {"app": ["/data"], "nginx": ["/var/cache/nginx"]},
}


def write_capture(path: Path, *, pods: bool) -> None:
    g = ex.Gen()
    # Learning (period 1 minute): nginx reads its configuration.
    g.exec_(APP, T0 + SEC, exe="/usr/local/bin/gunicorn", args=["gunicorn"], pid=1,
            pcomm="containerd-shim", ppid=9, cwd="/app")  # fmt: skip
    g.open_(NGINX, T0 + SEC, comm="nginx", pid=1, path="/etc/nginx/nginx.conf")
    # After learning.
    t = T0 + 2 * MIN
    g.exec_(APP, t, exe="/data/tools/run.sh", args=["/data/tools/run.sh"], pid=50,
            pcomm="gunicorn", ppid=1, cwd="/app")  # fmt: skip
    g.open_(NGINX, t + SEC, comm="nginx", pid=1, path="/var/cache/nginx/proxy/1/00")
    g.open_(NGINX, t + 2 * SEC, comm="nginx", pid=1, path="/etc/passwd")
    lines = [line for _, _, line in sorted(g.lines, key=lambda x: (x[0], x[1]))]
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"gadgetwatchCapture": 1, "startedAt": ex._fmt(T0)}) + "\n")
        if pods:
            out.write(json.dumps(POD_RECORD) + "\n")
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


async def replay(tmp_path: Path, env: dict[str, str], *, pods: bool) -> list[tuple[str, str]]:
    capture = tmp_path / f"pods-{pods}.capture.jsonl"
    write_capture(capture, pods=pods)
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(BINDINGS)
    proc = await Proc.start(
        "agent",
        [
            GADGETWATCH,
            "run",
            "--no-metrics",
            "--replay",
            str(capture),
            "--learning-period",
            "1m",
            "--profiles-dir",
            str(tmp_path / f"profiles-{pods}"),
            "--bindings",
            str(bindings),
        ],
        env=env,
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    alerts: list[dict[str, Any]] = [json.loads(line) for line in proc.stdout]
    return sorted((a["rule"]["id"], a["message"]) for a in alerts)


async def test_pod_records_supply_volume_mounts_to_the_rules(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with_pods = await replay(tmp_path, env, pods=True)
    without = await replay(tmp_path, env, pods=False)
    exec_from_mount = [a for a in with_pods if a[0] == "R1004"]
    assert len(exec_from_mount) == 1
    assert "/data/tools/run.sh" in exec_from_mount[0][1]
    assert [a[1] for a in with_pods if a[0] == "R0002"] == [
        "Unexpected file access: /etc/passwd by nginx (pid 1)"
    ]
    # Without the record the agent knows no mounts: no R1004, and the cache file alerts.
    assert [a[0] for a in without] == ["R0002", "R0002"]
    assert any("/var/cache/nginx/proxy/1/00" in m for _, m in without)
