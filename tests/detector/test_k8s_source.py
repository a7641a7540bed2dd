"""`ClusterRulesSource` against the stand-in API server (real HTTP, the official client)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from detector import bindings, custom_rules
from detector.k8s_source import ClusterRulesSource
from detector.rules import default_catalogue
from detector.ruleset import RuleSet
from detector.stats import DetectorStats
from tests.detector.builders import exec_ev, make_detector, run
from tests.standins.fixtures import KubeApi


def binding(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": bindings.API_VERSION,
        "kind": "RuntimeRuleAlertBinding",
        "metadata": {"name": name},
        "spec": {"rules": list(rules)},
    }


class Updates:
    """Collects rule sets and lets a test wait for a condition on the latest one."""

    def __init__(self) -> None:
        self.latest = RuleSet()
        self.changed = asyncio.Condition()

    def __call__(self, ruleset: RuleSet) -> None:
        self.latest = ruleset
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, predicate: Any) -> RuleSet:
        async with asyncio.timeout(10):
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self.latest))
        return self.latest


async def test_lists_watches_and_reports_invalid_bindings(kube_api: KubeApi) -> None:
    kube_api.add(binding("good", {"ruleID": "R1000"}))
    updates = Updates()
    stats = DetectorStats()
    source = ClusterRulesSource(
        kube_api.api_client(),
        catalogue=default_catalogue(),
        on_update=updates,
        stats=stats,
        watch_timeout_s=30,
    )
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(10):
            await source.synced.wait()
        assert [b.name for b in source.ruleset.bindings] == ["good"]

        # An invalid binding arrives by watch: reported precisely, the good one stays.
        kube_api.add(binding("bad", {"ruleName": "No such rule"}))
        rs = await updates.wait(lambda r: any(p.document.endswith("bad") for p in r.problems))
        assert [(b.name, len(b.rules)) for b in rs.bindings] == [("bad", 0), ("good", 1)]
        [problem] = rs.problems
        assert str(problem) == (
            "cluster: RuntimeRuleAlertBinding bad: spec.rules[0].ruleName: error: unknown rule "
            "'No such rule'; see `gadgetwatch rules list`"
        )
        # The source emits the Event before it publishes the rule set that reports it.
        [event] = kube_api.objects("events", "default")
        assert event["involvedObject"]["name"] == "bad"
        assert event["reason"] == "InvalidRuntimeRuleAlertBinding"
        assert event["type"] == "Warning"
        assert "unknown rule 'No such rule'" in event["message"]

        # An exception added in a namespace, and the good binding deleted.
        kube_api.add(
            {
                "apiVersion": "gadgetwatch.io/v1",
                "kind": "RuntimeAlertException",
                "metadata": {"name": "quiet", "namespace": "shop"},
                "spec": {"silenceRules": ["R1000"]},
            }
        )
        rs = await updates.wait(lambda r: len(r.exceptions) == 1)
        kube_api.delete("runtimerulealertbindings", "good")
        rs = await updates.wait(lambda r: [b.name for b in r.bindings] == ["bad"])
        assert rs.exceptions[0].namespace == "shop"

        # The detector takes the cluster's rule set like any other source.
        detector = make_detector(None, builtin_default_binding=False)
        detector.update_rules("cluster", rs)
        assert run(detector, [exec_ev("/dev/shm/x")]) == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert stats.load_errors == {}


async def test_guards_are_watched_and_invalid_ones_get_an_event(kube_api: KubeApi) -> None:
    updates = Updates()
    stats = DetectorStats()
    source = ClusterRulesSource(
        kube_api.api_client(),
        catalogue=default_catalogue(),
        on_update=updates,
        stats=stats,
        watch_timeout_s=30,
    )
    task = asyncio.create_task(source.run())
    guard = {
        "apiVersion": "gadgetwatch.io/v1",
        "kind": "RuntimeGuard",
        "metadata": {"name": "token", "namespace": "shop"},
        "spec": {"resources": [{"execs": ["/dev/shm/x"], "fromSource": [{"path": "/bin/ok"}]}]},
    }
    try:
        async with asyncio.timeout(10):
            await source.synced.wait()
        kube_api.add(guard)
        rs = await updates.wait(lambda r: len(r.guards) == 1)
        assert (rs.guards[0].namespace, rs.guards[0].name) == ("shop", "token")
        detector = make_detector(None, builtin_default_binding=False)
        detector.update_rules("cluster", rs)
        # No binding at all: the guard alone alerts (the test exec's parent is "init").
        assert run(detector, [exec_ev("/dev/shm/x")]) == [("R3000", "high", 1)]

        # A guard the agent refuses (a relative path the schema cannot see) gets an Event.
        bad = {**guard, "metadata": {"name": "bad", "namespace": "shop"}}
        bad["spec"] = {"resources": [{"paths": ["etc/shadow"]}]}
        kube_api.add(bad)
        rs = await updates.wait(lambda r: any(p.document.endswith("bad") for p in r.problems))
        assert [g.name for g in rs.guards] == ["token"]
        events = [
            e for e in kube_api.objects("events", "shop") if e["reason"] == "InvalidRuntimeGuard"
        ]
        assert [e["involvedObject"]["name"] for e in events] == ["bad"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def runtime_rule(name: str, rule_id: str, match: str) -> dict[str, Any]:
    return {
        "apiVersion": custom_rules.API_VERSION,
        "kind": "RuntimeRule",
        "metadata": {"name": name},
        "spec": {
            "id": rule_id,
            "name": f"Rule {name}",
            "severity": "high",
            "match": {"exec": match},
            "message": '"exec " + text.safe(event.exec_path)',
            "key": "[event.exec_path]",
        },
    }


async def test_runtime_rules_are_watched_bound_and_invalid_ones_get_an_event(
    kube_api: KubeApi,
) -> None:
    updates = Updates()
    stats = DetectorStats()
    source = ClusterRulesSource(
        kube_api.api_client(),
        catalogue=default_catalogue(),
        on_update=updates,
        stats=stats,
        watch_timeout_s=30,
    )
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(10):
            await source.synced.wait()
        # The binding arrives first and names a rule that does not exist yet: an error, then
        # the rule arrives and the same binding resolves (the whole set is re-parsed).
        kube_api.add(binding("custom", {"ruleID": "C0001"}))
        await updates.wait(lambda r: any("unknown rule 'C0001'" in p.message for p in r.problems))
        kube_api.add(runtime_rule("nc", "C0001", 'path.basename(event.exec_path) == "nc"'))
        rs = await updates.wait(lambda r: [len(b.rules) for b in r.bindings] == [1])
        assert [r.id for r in rs.rules] == ["C0001"]
        assert rs.rules[0].source == "cluster"
        detector = make_detector(None, builtin_default_binding=False)
        detector.update_rules("cluster", rs)
        assert run(detector, [exec_ev("/bin/nc"), exec_ev("/bin/ls")]) == [("C0001", "high", 1)]

        # A rule that does not compile: located error, a Warning event, the good rule stays.
        kube_api.add(runtime_rule("broken", "C0002", "event.exec_path.startsWith("))
        rs = await updates.wait(lambda r: any(p.document.endswith("broken") for p in r.problems))
        assert [r.id for r in rs.rules] == ["C0001"]
        [problem] = [p for p in rs.problems if p.document.endswith("broken")]
        assert "spec.match.exec" in str(problem)
        assert "expression line 1, column" in str(problem)
        events = [
            e for e in kube_api.objects("events", "default") if e["reason"] == "InvalidRuntimeRule"
        ]
        assert [e["involvedObject"]["name"] for e in events] == ["broken"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
