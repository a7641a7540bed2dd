"""The exporters' configuration: camelCase keys, human durations, YAML round trip, validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from exporters.config import ExportersSettings, MetricsSettings


def test_yaml_keys_and_durations() -> None:
    doc = yaml.safe_load(
        """
        syslog: {enabled: true, transport: tls, port: 6514, facility: authpriv}
        http:
          enabled: true
          url: https://hook.example/x
          batchMaxDelay: 250ms
          retryMaxBackoff: 1m
          headerFiles: {Authorization: /run/token}
        alertmanager: {enabled: true, urls: ["http://am:9093"], resolveAfter: 2h}
        healthcheckInterval: 10s
        """
    )
    s = ExportersSettings.model_validate(doc)
    assert s.http.batch_max_delay == timedelta(milliseconds=250)
    assert s.http.retry_max_backoff == timedelta(minutes=1)
    assert s.alertmanager.resolve_after == timedelta(hours=2)
    assert s.syslog.facility == "authpriv"
    assert s.healthcheck_interval == timedelta(seconds=10)


def test_default_round_trips_through_yaml() -> None:
    default = ExportersSettings()
    dumped = yaml.safe_dump(default.model_dump(mode="json", by_alias=True))
    assert ExportersSettings.model_validate(yaml.safe_load(dumped)) == default
    assert MetricsSettings().port == 9090


@pytest.mark.parametrize(
    "doc",
    [
        {"syslog": {"transprt": "tcp"}},
        {"syslog": {"facility": "local9"}},
        {"syslog": {"appName": "has space"}},
        {"http": {"url": "ftp://x"}},
        {"alertmanager": {"urls": ["am:9093"]}},
        {"alertmanager": {"extraLabels": {"bad-name": "x"}}},
        {"http": {"queueSize": 0}},
    ],
)
def test_invalid_values_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExportersSettings.model_validate(doc)


def test_metrics_address() -> None:
    assert MetricsSettings(address="127.0.0.1:0").port == 0
    assert MetricsSettings(address="[::]:9100").host == "::"
    with pytest.raises(ValidationError):
        MetricsSettings(address="nowhere")


def test_secrets_do_not_show() -> None:
    s = ExportersSettings.model_validate(
        {
            "http": {"headers": {"Authorization": "Bearer hunter2"}},
            "alertmanager": {"password": "pw1"},
        }
    )
    assert "hunter2" not in repr(s)
    assert "pw1" not in repr(s)
