"""Alerts dropped at shutdown make the run incomplete (issue 10, item 10): exit code 3 and a
summary line an automated caller can act on, instead of exit code 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from gadgetwatch.agent import EXIT_INCOMPLETE
from gadgetwatch.cli import main
from tests.e2e.scenario import CAPTURE
from tests.exporters.helpers import free_port


def test_alerts_not_delivered_by_the_deadline_fail_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on the webhook's port: every alert waits in its queue until shutdown.
    monkeypatch.setenv("GADGETWATCH_PIPELINE__SHUTDOWN_DEADLINE", "500ms")
    code = main(
        ["run", "--replay", str(CAPTURE), "--summary", "--profiles-dir", str(tmp_path),
         "--learning-period", "5m", "--webhook", f"http://127.0.0.1:{free_port()}/hook"]
    )  # fmt: skip
    err = capsys.readouterr().err
    summary = err[err.index("gadgetwatch summary") :]
    assert code == EXIT_INCOMPLETE == 3, summary
    assert "INCOMPLETE: " in summary
    assert "alert delivery(ies) dropped" in summary
    assert "complete: yes" not in summary


def test_a_complete_run_exits_0_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--replay", str(CAPTURE), "--summary", "--profiles-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    assert "complete: yes" in err
