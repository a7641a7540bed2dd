"""ProfilerSettings: durations the human way, camelCase keys, round trip, bad values refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pydantic
import pytest
import yaml

from profiler.config import ProfilerSettings, RolloutPolicy
from profiler.dirstore import DirectoryStore
from profiler.identity import WorkloadKey
from tests.profiler.helpers import T0, container, exec_, learner


def test_defaults_round_trip_through_yaml() -> None:
    default = ProfilerSettings()
    text = yaml.safe_dump(default.model_dump(mode="json", by_alias=True))
    assert ProfilerSettings.model_validate(yaml.safe_load(text)) == default
    assert default.learning_period == timedelta(hours=24)
    assert default.rollout_policy is RolloutPolicy.RELEARN


def test_human_durations_and_camel_case() -> None:
    s = ProfilerSettings.model_validate({"learningPeriod": "2h30m", "updatePeriod": "500ms"})
    assert s.learning_period == timedelta(hours=2, minutes=30)
    assert s.update_period == timedelta(milliseconds=500)


@pytest.mark.parametrize(
    "data",
    [
        {"learningPerod": "1h"},
        {"maxBytes": 2_000_000},
        {"collapsePrefixes": [{"prefix": "etc", "threshold": 5}]},
        {"collapsePrefixes": [{"prefix": "/a", "threshold": 5}, {"prefix": "/a", "threshold": 6}]},
        {"rolloutPolicy": "sometimes"},
    ],
)
def test_bad_values_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ProfilerSettings.model_validate(data)


async def test_run_flushes_on_stop(store: DirectoryStore) -> None:
    lrn = learner(store, attached_at_ns=T0)
    bare = container(owner=("", ""), pod="debug", labels=(), template_hash="")
    lrn.observe([exec_(bare, T0 + 1, "/bin/a")])
    stop = asyncio.Event()
    stop.set()
    await lrn.run(stop)
    assert await store.get(WorkloadKey("shop", "Pod", "debug", "nginx")) is not None
