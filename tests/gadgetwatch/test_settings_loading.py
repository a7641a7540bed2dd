"""Layered configuration: precedence, env mapping, errors that name the key and a fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from gadgetclient.durations import Duration
from gadgetwatch.settings_loading import (
    ConfigError,
    deep_merge,
    env_layer,
    read_yaml_file,
    validate,
)

_CFG = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class Inner(BaseModel):
    model_config = _CFG
    learning_period: Duration = timedelta(hours=24)
    names: list[str] = []


class Root(BaseModel):
    model_config = _CFG
    profiler: Inner = Inner()
    port: int = 1


def test_env_variables_map_to_camel_case_paths() -> None:
    layer = env_layer(
        {
            "GADGETWATCH_PROFILER__LEARNING_PERIOD": "1h",
            "GADGETWATCH_PROFILER__NAMES": "[a, b]",
            "UNRELATED": "x",
            "GADGETWATCH_NOSECTION": "ignored: no section separator",
        }
    )
    assert layer == {"profiler": {"learningPeriod": "1h", "names": ["a", "b"]}}


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("profiler:\n  learningPeriod: 2h\nport: 5\n")
    data = read_yaml_file(f)
    data = deep_merge(data, env_layer({"GADGETWATCH_PROFILER__LEARNING_PERIOD": "3h"}))
    settings = validate(Root, deep_merge(data, {"port": 7}))
    assert settings.profiler.learning_period == timedelta(hours=3)
    assert settings.port == 7


def test_unknown_key_names_the_path_and_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError) as err:
        validate(Root, {"profiler": {"learningPerod": "1h"}}, source="x.yaml")
    assert err.value.problems == [
        "unknown key 'profiler.learningPerod' (did you mean 'learningPeriod'?)"
    ]
    assert str(err.value).startswith("x.yaml: unknown key")


def test_unknown_key_without_a_close_match_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        validate(Root, {"zzz": 1})
    assert err.value.problems == ["unknown key 'zzz'; valid keys here: port, profiler"]


def test_bad_value_reports_path_reason_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        validate(Root, {"port": "eighty"})
    (problem,) = err.value.problems
    assert problem.startswith("port: ")
    assert "'eighty'" in problem


def test_broken_yaml_reports_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("profiler:\n  learningPeriod: [1h\n")
    with pytest.raises(ConfigError) as err:
        read_yaml_file(f)
    assert "invalid YAML at line" in str(err.value)
    assert str(f) in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml_file(f)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (60, timedelta(seconds=60)),
    ],
)
def test_durations_are_written_the_human_way(text: object, expected: timedelta) -> None:
    assert validate(Root, {"profiler": {"learningPeriod": text}}).profiler.learning_period == (
        expected
    )


def test_a_malformed_duration_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"profiler\.learningPeriod"):
        validate(Root, {"profiler": {"learningPeriod": "10 minutes"}})
