"""Credentials in exporter URLs never leave the process (issue 10, item 2).

The webhook and both AlertManager URLs carry a marker as password and as query value, and
point at ports where nothing listens, so every error path (connection refused in the log,
`lastError` in /readyz, exporter names in /metrics) has a URL to print. The marker must appear
in none of them, nor in `config show` or `run --check-config`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from tests.e2e.harness import GADGETWATCH, Agent, eventually, start_replay_server
from tests.e2e.scenario import CAPTURE, LEARNING_PERIOD
from tests.e2e.test_host import write_config
from tests.exporters.helpers import free_port

SECRET = "s3cr3t-MARKER-7f1d"


def _urls() -> tuple[str, list[str]]:
    hook = f"http://alice:{SECRET}@127.0.0.1:{free_port()}/hook?token={SECRET}&x=1"
    ams = [f"http://bob:{SECRET}@127.0.0.1:{free_port()}/?key={SECRET}" for _ in range(2)]
    return hook, ams


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        GADGETWATCH,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return await proc.wait(), out.decode()


async def test_a_secret_in_exporter_urls_appears_in_no_log_metric_or_output(
    tmp_path: Path, sockdir: Path, env: dict[str, str]
) -> None:
    hook, ams = _urls()
    config = write_config(tmp_path / "gadgetwatch.yaml", alertmanager={"urls": ams})  # type: ignore[dict-item]
    doc = yaml.safe_load(config.read_text())
    doc["exporters"]["http"] = {
        "enabled": True,
        "url": hook,
        "headers": {"Authorization": f"Bearer {SECRET}"},
    }
    doc["exporters"]["alertmanager"].update(enabled=True, username="bob", password=SECRET)
    config.write_text(yaml.safe_dump(doc))

    code, shown = await _cli("config", "show", "--config", str(config), env=env)
    assert code == 0, shown
    assert SECRET not in shown
    assert "REDACTED@127.0.0.1" in shown
    code, checked = await _cli("run", "--check-config", "--config", str(config), env=env)
    assert code == 0, checked
    assert SECRET not in checked

    socket = sockdir / "ig.sock"
    server = await start_replay_server(CAPTURE, socket, env=env)
    agent: Agent | None = None
    try:
        agent = await Agent.start(
            [
                "--config", str(config),
                "--target", f"unix://{socket}",
                "--learning-period", LEARNING_PERIOD,
                "--profiles-dir", str(tmp_path / "profiles"),
            ],
            env=env,
        )  # fmt: skip
        running = agent

        async def errors_reported() -> bool:
            _, body = await running.readyz()
            details = body["checks"]["exporters"]["details"]
            return len(details) == 3 and all(d["lastError"] for d in details.values())

        await eventually(errors_reported, what="every exporter to report its error")
        _, readyz = await agent.get("/readyz")
        _, metrics = await agent.get("/metrics")
        assert SECRET.encode() not in readyz
        assert b"REDACTED" in readyz or b"127.0.0.1" in readyz
        assert SECRET.encode() not in metrics
        await agent.terminate()
    finally:
        if agent is not None:
            await agent.proc.stop()
        await server.stop()
    log = "\n".join(agent.proc.stderr + agent.proc.stdout)
    assert "connection" in log.lower() or "cannot reach" in log  # the errors were logged
    assert SECRET not in log
