"""Write the Grafana dashboard of the Helm chart (deploy/helm/gadgetwatch/files/dashboard.json).

Generated, not hand-edited, so that every panel queries a metric of docs/metrics.md (a test
checks that, and that the committed file is what this script writes). Panels: events received,
processed and lost, alerts by rule, exporter queues, sends and drops, profiles by status and
profile writes, and the agent's own CPU and memory (prometheus-client's process collector).

    .venv/bin/python scripts/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "deploy/helm/gadgetwatch/files/dashboard.json"

#: The dashboard's variables select the agent pods.
SEL = 'namespace="$namespace", pod=~"$pod"'


def rate(metric: str, by: str) -> str:
    """Per-second rate of a counter of the selected pods, summed by `by`."""
    return f"sum by ({by}) (rate({metric}{{{SEL}}}[5m]))"


def gauge(metric: str, by: str, how: str = "sum") -> str:
    return f"{how} by ({by}) ({metric}{{{SEL}}})"


#: (title, unit, [(PromQL, legend)]) per panel.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Events received / processed per second",
        "ops",
        [
            (rate("gadgetwatch_gadget_events_received_total", "gadget"), "received {{gadget}}"),
            (rate("gadgetwatch_pipeline_events_processed_total", "namespace"), "processed"),
        ],
    ),
    (
        "Events lost upstream (IG) and dropped (agent) per second",
        "ops",
        [
            (
                rate("gadgetwatch_gadget_events_lost_total", "gadget, reason"),
                "lost {{gadget}} {{reason}}",
            ),
            (
                rate("gadgetwatch_pipeline_events_dropped_total", "stage, reason"),
                "dropped {{stage}} {{reason}}",
            ),
            (
                rate("gadgetwatch_gadget_events_dropped_total", "gadget, reason"),
                "dropped {{gadget}} {{reason}}",
            ),
        ],
    ),
    (
        "Alerts by rule (per minute)",
        "short",
        [(rate("gadgetwatch_detector_alerts_total", "rule_id") + " * 60", "{{rule_id}}")],
    ),
    (
        "Alerts suppressed by rule and reason (per minute)",
        "short",
        [
            (
                rate("gadgetwatch_detector_alerts_suppressed_total", "rule_id, reason") + " * 60",
                "{{rule_id}} {{reason}}",
            ),
        ],
    ),
    (
        "Exporter queues",
        "short",
        [(gauge("gadgetwatch_exporter_queue_alerts", "exporter"), "{{exporter}}")],
    ),
    (
        "Exporter sent / dropped / failed per second",
        "ops",
        [
            (rate("gadgetwatch_exporter_alerts_sent_total", "exporter"), "sent {{exporter}}"),
            (
                rate("gadgetwatch_exporter_alerts_dropped_total", "exporter, reason"),
                "dropped {{exporter}} {{reason}}",
            ),
            (
                rate("gadgetwatch_exporter_send_failures_total", "exporter, reason"),
                "failed {{exporter}} {{reason}}",
            ),
        ],
    ),
    (
        "Exporters up",
        "short",
        [(gauge("gadgetwatch_exporter_up", "exporter", "min"), "{{exporter}}")],
    ),
    (
        "Profiles by status",
        "short",
        [(gauge("gadgetwatch_profiler_profiles", "status"), "{{status}}")],
    ),
    (
        "Profile writes by result per second",
        "ops",
        [(rate("gadgetwatch_profiler_writes_total", "result"), "{{result}}")],
    ),
    ("Agent CPU (cores)", "short", [(rate("process_cpu_seconds_total", "pod"), "{{pod}}")]),
    (
        "Agent memory (RSS)",
        "bytes",
        [(gauge("process_resident_memory_bytes", "pod", "max"), "{{pod}}")],
    ),
    (
        "Pipeline queue (batches)",
        "short",
        [(gauge("gadgetwatch_pipeline_queue_batches", "pod", "max"), "{{pod}}")],
    ),
]


def dashboard() -> dict[str, Any]:
    panels = []
    for index, (title, unit, queries) in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(queries)
                ],
            }
        )
    variable = {"type": "prometheus", "uid": "${datasource}"}
    return {
        "title": "gadgetwatch",
        "uid": "gadgetwatch-agent",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "tags": ["gadgetwatch", "security"],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "namespace",
                    "type": "query",
                    "datasource": variable,
                    "query": "label_values(gadgetwatch_pipeline_events_processed_total, namespace)",
                    "refresh": 2,
                },
                {
                    "name": "pod",
                    "type": "query",
                    "datasource": variable,
                    "query": "label_values(gadgetwatch_pipeline_events_processed_total"
                    '{namespace="$namespace"}, pod)',
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
