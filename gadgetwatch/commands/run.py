"""`gadgetwatch run`: the agent. Flags cover the settings people change most; the rest is YAML.

Flags are the last configuration layer (defaults < `--config` YAML < `GADGETWATCH_*`
environment < flags). `--check-config` validates the result and exits: 0 when it is usable,
2 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gadgetwatch.settings_loading import ConfigError, set_path


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the agent: IG streams -> profiles and rules -> alerts",
        description=(
            "Run the agent. Without an exporter flag or configured exporter, alerts go to "
            "stdout as JSON lines and logs to stderr."
        ),
    )
    p.add_argument("--config", type=Path, help="YAML configuration file")
    p.add_argument("--check-config", action="store_true", help="validate the configuration, exit")
    src = p.add_argument_group("event source")
    src.add_argument("--target", help="IG endpoint: unix:///PATH, tcp://HOST:PORT or k8s://[NS]")
    src.add_argument("--replay", type=Path, metavar="CAPTURE", help="replay a capture file")
    src.add_argument(
        "--replay-rate", type=float, metavar="N", help="replay pace, events/s (default: max)"
    )
    prof = p.add_argument_group("profiles")
    prof.add_argument("--learning-period", metavar="DURATION", help="e.g. 24h, 10m")
    prof.add_argument("--profiles-dir", type=Path, help="directory store for profiles")
    det = p.add_argument_group("detection")
    det.add_argument("--bindings", type=Path, metavar="FILE", help="RuntimeRuleAlertBinding YAML")
    det.add_argument("--exceptions", type=Path, metavar="FILE", help="RuntimeAlertException YAML")
    det.add_argument(
        "--guards", type=Path, metavar="FILE", help="RuntimeGuard YAML (or a directory)"
    )
    out = p.add_argument_group("alert destinations (each enables its exporter)")
    out.add_argument("--stdout", action="store_true", help="JSON lines on stdout")
    out.add_argument(
        "--syslog", metavar="URL", help="udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT"
    )
    out.add_argument("--webhook", metavar="URL", help="HTTP(S) URL receiving alerts as JSON")
    out.add_argument(
        "--alertmanager",
        metavar="URL",
        action="append",
        help="AlertManager base URL; repeat for an HA pair",
    )
    ops = p.add_argument_group("operations")
    ops.add_argument("--metrics-address", metavar="HOST:PORT", help="/metrics, /healthz, /readyz")
    ops.add_argument("--no-metrics", action="store_true", help="do not serve metrics")
    ops.add_argument("--node-name", help="this node's name (in a cluster)")
    ops.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, ~/.kube/config)")
    ops.add_argument("--summary", action="store_true", help="print a summary on stderr at exit")
    p.set_defaults(handler=_run)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer made of the flags that were given."""
    o: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        set_path(o, path.split("."), value)

    if args.target:
        put("gadgetclient.target", args.target)
    if args.learning_period:
        put("profiler.learningPeriod", args.learning_period)
    if args.profiles_dir:
        put("profiler.store", "directory")
        put("profiler.directory", str(args.profiles_dir))
    if args.bindings:
        put("detector.bindingsFile", str(args.bindings))
    if args.exceptions:
        put("detector.exceptionsFile", str(args.exceptions))
    if args.guards:
        put("detector.guardsFile", str(args.guards))
    if args.stdout:
        put("exporters.stdout.enabled", True)
    if args.syslog:
        url = urlsplit(args.syslog)
        if url.scheme not in ("udp", "tcp", "tls") or not url.hostname:
            raise ConfigError([f"--syslog: expected udp|tcp|tls://HOST:PORT, got {args.syslog!r}"])
        put("exporters.syslog.enabled", True)
        put("exporters.syslog.transport", url.scheme)
        put("exporters.syslog.host", url.hostname)
        if url.port:
            put("exporters.syslog.port", url.port)
    if args.webhook:
        put("exporters.http.enabled", True)
        put("exporters.http.url", args.webhook)
    if args.alertmanager:
        put("exporters.alertmanager.enabled", True)
        put("exporters.alertmanager.urls", list(args.alertmanager))
    if args.metrics_address:
        put("metrics.address", args.metrics_address)
    if args.no_metrics:
        put("metrics.enabled", False)
    if args.node_name:
        put("kubernetes.nodeName", args.node_name)
    if args.kubeconfig:
        put("kubernetes.kubeconfig", args.kubeconfig)
    return o


def _run(args: argparse.Namespace) -> int:
    from gadgetclient.errors import CaptureError
    from gadgetwatch.agent import Agent, AgentError, summary_lines
    from gadgetwatch.config import load_settings

    try:
        settings = load_settings(
            config_file=args.config, environ=os.environ, overrides=flag_overrides(args)
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.replay is not None and not args.replay.is_file():
        print(f"--replay: no such file: {args.replay}", file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK", file=sys.stderr)
        return 0
    agent = Agent(
        settings, replay=args.replay, replay_rate=args.replay_rate, environ=dict(os.environ)
    )
    try:
        code = asyncio.run(agent.run())
    except (AgentError, CaptureError) as exc:
        # A bad capture names its file and line (`CaptureError.where`): one line, no traceback.
        print(f"gadgetwatch: {exc}", file=sys.stderr)
        code = 1
    if args.summary:
        print("\n".join(summary_lines(agent)), file=sys.stderr)
    return code
