"""The agent's environment layer as a deployment uses it: `GADGETWATCH_<SECTION>__<KEY>`."""

from __future__ import annotations

import pytest

from tests.e2e.harness import GADGETWATCH, Proc


@pytest.mark.parametrize("mode", ["on", "off", "auto"])
async def test_kubernetes_mode_words_from_the_environment(env: dict[str, str], mode: str) -> None:
    """`on`/`off` are YAML 1.1 booleans; from the environment they must stay the words the
    setting documents (`GADGETWATCH_KUBERNETES__MODE=on` used to fail: "got True")."""
    proc = await Proc.start(
        "check-config",
        [GADGETWATCH, "run", "--check-config"],
        env={
            **env,
            "GADGETWATCH_KUBERNETES__MODE": mode,
            "GADGETWATCH_KUBERNETES__API_SERVER": "http://127.0.0.1:1",
        },
    )
    try:
        assert await proc.wait_exit() == 0, proc.tail()
    finally:
        await proc.stop()
    assert proc.stderr[-1] == "configuration OK"
