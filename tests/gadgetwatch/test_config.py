"""The root configuration: round trip, generated docs, flags and `run --check-config`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from gadgetwatch.cli import main
from gadgetwatch.config import Settings, dump_settings, load_settings
from gadgetwatch.config_docs import render

ROOT = Path(__file__).resolve().parents[2]


def test_default_configuration_serialises_to_yaml_and_loads_back_unchanged(tmp_path: Path) -> None:
    text = yaml.safe_dump(dump_settings(Settings()), sort_keys=False)
    f = tmp_path / "default.yaml"
    f.write_text(text)
    assert load_settings(config_file=f) == Settings()
    assert "learningPeriod: 24h" in text


def test_generated_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(Settings), "run: gadgetwatch config docs -f docs/configuration.md"


def test_environment_sits_between_file_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("profiler:\n  learningPeriod: 2h\n  updatePeriod: 30s\n")
    env = {
        "GADGETWATCH_PROFILER__LEARNING_PERIOD": "3h",
        "GADGETWATCH_PROFILER__UPDATE_PERIOD": "5s",
    }
    s = load_settings(config_file=f, environ=env, overrides={"profiler": {"learningPeriod": "4h"}})
    assert s.profiler.learning_period == timedelta(hours=4)
    assert s.profiler.update_period == timedelta(seconds=5)


def test_check_config_accepts_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text("exporters:\n  alertmanager:\n    enabled: true\n    urls: [http://am:9093]\n")
    assert main(["run", "--check-config", "--config", str(f)]) == 0
    assert "configuration OK" in capsys.readouterr().err


def test_check_config_names_an_unknown_key_and_its_closest_valid_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text("profiler:\n  learningPerod: 1h\n")
    assert main(["run", "--check-config", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: unknown key 'profiler.learningPerod' (did you mean 'learningPeriod'?)" in err


def test_flags_override_and_enable_exporters(capsys: pytest.CaptureFixture[str]) -> None:
    from gadgetwatch.cli import build_parser
    from gadgetwatch.commands.run import flag_overrides

    args = build_parser().parse_args(
        [
            "run",
            "--syslog",
            "tcp://logs.example:6514",
            "--alertmanager",
            "http://am-0:9093",
            "--alertmanager",
            "http://am-1:9093",
            "--learning-period",
            "10m",
            "--profiles-dir",
            "/tmp/p",
        ]
    )
    s = load_settings(overrides=flag_overrides(args))
    assert s.exporters.syslog.enabled
    assert (s.exporters.syslog.transport, s.exporters.syslog.host, s.exporters.syslog.port) == (
        "tcp",
        "logs.example",
        6514,
    )
    assert s.exporters.alertmanager.urls == ["http://am-0:9093", "http://am-1:9093"]
    assert s.profiler.learning_period == timedelta(minutes=10)
    assert s.profiler.directory == "/tmp/p"


def test_a_bad_flag_value_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--check-config", "--syslog", "syslog.example"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["config: --syslog: expected udp|tcp|tls://HOST:PORT, got 'syslog.example'"]


def test_missing_replay_file_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unquoted_on_off_in_yaml_means_the_kubernetes_mode(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text("kubernetes:\n  mode: on\n")
    assert load_settings(config_file=f).kubernetes.mode == "on"
    f.write_text("kubernetes:\n  mode: off\n")
    assert load_settings(config_file=f).kubernetes.mode == "off"
