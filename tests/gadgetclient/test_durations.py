"""One duration type, one validation: every spelling of a negative or ISO duration is rejected
in every layer, and what `config show` prints is what the loader accepts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gadgetclient.durations import format_duration, parse_duration, to_duration
from gadgetwatch.config import Settings, dump_settings, load_settings
from gadgetwatch.settings_loading import ConfigError

REJECTED = ["-300", "-5m", "-PT5M", "PT5M", "P1D", "-0.5", "5 minutes", "nan", "inf", "", "1e400"]


@pytest.mark.parametrize("text", REJECTED)
def test_flags_reject_negative_iso_and_unknown_forms(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", REJECTED)
def test_environment_rejects_them(text: str) -> None:
    with pytest.raises(ConfigError, match="learningPeriod"):
        load_settings(environ={"GADGETWATCH_PROFILER__LEARNING_PERIOD": text})


@pytest.mark.parametrize("value", ["-300", "-5m", "-PT5M", "PT5M", "-1.5", "true", "[1]"])
def test_yaml_files_reject_them(tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"detector:\n  cooldown: {value}\n")
    with pytest.raises(ConfigError, match="cooldown"):
        load_settings(config_file=path, environ={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("300", timedelta(minutes=5)), (300, timedelta(minutes=5)), ("1h30m", timedelta(minutes=90)),
     (0.25, timedelta(milliseconds=250)), ("0", timedelta(0))],
)  # fmt: skip
def test_accepted_forms(value: object, expected: timedelta) -> None:
    assert to_duration(value) == expected


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_what_is_printed_loads_back_unchanged(value: timedelta) -> None:
    assert to_duration(format_duration(value)) == value


def test_config_show_output_is_accepted_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("profiler:\n  learningPeriod: 1.0015\ndetector:\n  cooldown: 90\n")
    settings = load_settings(config_file=path, environ={})
    shown = dump_settings(settings)
    assert shown["profiler"]["learningPeriod"] == "1.0015s"
    assert shown["detector"]["cooldown"] == "90s"
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(shown))
    assert load_settings(config_file=again, environ={}) == settings
    assert Settings.model_validate(shown) == settings
