"""A bindings source with no valid binding never silently turns detection off (issue 10,
item 8): at start-up it is an error naming the file; at run time the last good set stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.stats import DetectorStats
from gadgetwatch.cli import main
from tests.detector.builders import binding_yaml, exec_ev, make_detector, ruleset, run
from tests.e2e.scenario import CAPTURE

#: One binding whose only rule does not exist: parsed, with zero valid rules.
BROKEN = binding_yaml("R9999", name="typo")


def test_a_bindings_file_without_a_valid_binding_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(BROKEN)
    code = main(
        ["run", "--replay", str(CAPTURE), "--bindings", str(bindings), "--profiles-dir",
         str(tmp_path / "profiles")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0
    assert f"{bindings}: no valid binding" in err
    assert "R9999" in err
    assert not (tmp_path / "profiles").exists()  # nothing started


@pytest.mark.parametrize("text", ["", "kind: Something\n", "{{{"])
def test_an_empty_or_unparseable_bindings_file_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    bindings = tmp_path / "bindings.yaml"
    bindings.write_text(text)
    assert main(["run", "--replay", str(CAPTURE), "--bindings", str(bindings)]) != 0
    assert "no valid binding" in capsys.readouterr().err


def test_at_run_time_a_broken_update_keeps_the_last_good_set() -> None:
    stats = DetectorStats()
    d = make_detector(stats=stats)
    d.update_rules("cluster", ruleset(binding_yaml("R1000"), source="cluster"))
    assert [a[0] for a in run(d, [exec_ev("/dev/shm/a", t=1)])] == ["R1000"]
    d.update_rules("cluster", ruleset(BROKEN, source="cluster"))
    assert stats.rulesets_rejected["cluster"] == 1
    assert [a[0] for a in run(d, [exec_ev("/dev/shm/b", t=2)])] == ["R1000"]
    # Removing every binding on purpose (no errors) is applied: the built-in binding returns.
    d.update_rules("cluster", ruleset("", source="cluster"))
    assert stats.rulesets_rejected["cluster"] == 1
    assert d.ruleset.bindings == ()
