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

from gadgetwatch.clikit import (
    Progress,
    UserError,
    add_command,
    add_quiet_flag,
    duration_arg,
    positive_float,
)
from gadgetwatch.settings_loading import ConfigError, set_path
from profiler.config import ProfilerSettings

#: The directory store's default, shared with `gadgetwatch profile` so both find the same files.
DEFAULT_PROFILES_DIR = ProfilerSettings().directory
#: Seconds between replay progress refreshes on a terminal.
PROGRESS_INTERVAL_S = 0.5


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "run",
        help="run the agent: IG streams -> profiles and rules -> alerts",
        description=(
            "Run the agent. Without an exporter flag or configured exporter, alerts go to "
            "stdout as JSON lines and logs to stderr. A replay (--replay) serves no metrics "
            "unless --metrics-address is given or the configuration enables them."
        ),
        examples=[
            "gadgetwatch run --target unix:///var/run/ig/ig.socket "
            "--profiles-dir /var/lib/gadgetwatch/profiles",
            "gadgetwatch run --replay examples/webshop-intrusion.capture.jsonl "
            "--profiles-dir demo-profiles --learning-period 10m --summary > alerts.jsonl",
            "gadgetwatch run --config /etc/gadgetwatch/config.yaml --check-config",
            "gadgetwatch run --target tcp://127.0.0.1:8888 --alertmanager http://127.0.0.1:9093 "
            "--metrics-address 127.0.0.1:9091",
        ],
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument("--check-config", action="store_true", help="validate the configuration, exit")
    add_quiet_flag(p)
    src = p.add_argument_group("event source")
    src.add_argument("--target", help="IG endpoint: unix:///PATH, tcp://HOST:PORT or k8s://[NS]")
    src.add_argument(
        "--headless",
        action="store_true",
        help="run the gadgets as headless IG instances that survive agent restarts (IG v0.33+)",
    )
    src.add_argument(
        "--attach",
        metavar="ID|NAME[,...]",
        help="consume headless instances someone else started (never removes them)",
    )
    src.add_argument("--replay", type=Path, metavar="CAPTURE", help="replay a capture file")
    src.add_argument(
        "--events",
        metavar="-|FILE",
        help="read IG's JSON output (`ig run/kubectl gadget run … -o json`) live from stdin "
        "(`-`) or a file instead of gRPC; EOF ends the run cleanly",
    )
    src.add_argument(
        "--gadget", default="", help="gadget that printed --events lines that do not name one"
    )
    src.add_argument(
        "--replay-rate",
        type=positive_float,
        metavar="N",
        help="replay pace, events/s (default: as fast as possible)",
    )
    prof = p.add_argument_group("profiles")
    prof.add_argument(
        "--learning-period", type=duration_arg, metavar="DURATION", help="e.g. 24h, 10m, 90s"
    )
    prof.add_argument(
        "--process-aware",
        action="store_true",
        help="profiles record which executables reached each file, DNS name and peer "
        "(profiler.processAware)",
    )
    prof.add_argument(
        "--profiles-dir",
        type=Path,
        metavar="DIR",
        help=f"directory store for profiles (default: {DEFAULT_PROFILES_DIR})",
    )
    det = p.add_argument_group("detection")
    det.add_argument("--bindings", type=Path, metavar="FILE", help="RuntimeRuleAlertBinding YAML")
    det.add_argument("--exceptions", type=Path, metavar="FILE", help="RuntimeAlertException YAML")
    det.add_argument(
        "--guards", type=Path, metavar="FILE", help="RuntimeGuard YAML (or a directory)"
    )
    det.add_argument(
        "--rules", type=Path, metavar="FILE", help="RuntimeRule YAML: CEL rules (or a directory)"
    )
    det.add_argument(
        "--rule-catalogue",
        type=Path,
        metavar="DIR",
        help="RuntimeRule directory replacing the built-in rules (deploy/rules: them in CEL)",
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
    ops.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz here (default 0.0.0.0:9090; off for --replay)",
    )
    ops.add_argument("--no-metrics", action="store_true", help="do not serve metrics")
    ops.add_argument("--node-name", help="this node's name (in a cluster)")
    ops.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig file (default: in-cluster, ~/.kube/config)"
    )
    ops.add_argument("--summary", action="store_true", help="print a summary on stderr at exit")
    p.set_defaults(handler=_run)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer made of the flags that were given."""
    o: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        set_path(o, path.split("."), value)

    if args.target:
        put("gadgetclient.target", args.target)
    if args.headless:
        put("gadgetclient.headless.enabled", True)
    if args.attach:
        refs = [r.strip() for r in args.attach.split(",") if r.strip()]
        if not refs:
            raise ConfigError(["--attach: expected ID|NAME[,...]"])
        put("gadgetclient.attach", refs)
    if args.learning_period is not None:
        put("profiler.learningPeriod", args.learning_period)
    if args.process_aware:
        put("profiler.processAware", True)
    if args.profiles_dir:
        put("profiler.store", "directory")
        put("profiler.directory", str(args.profiles_dir))
    if args.bindings:
        put("detector.bindingsFile", str(args.bindings))
    if args.exceptions:
        put("detector.exceptionsFile", str(args.exceptions))
    if args.guards:
        put("detector.guardsFile", str(args.guards))
    if args.rules:
        put("detector.rulesFile", str(args.rules))
    if args.rule_catalogue:
        put("detector.ruleCatalogueDir", str(args.rule_catalogue))
    if args.stdout:
        put("exporters.stdout.enabled", True)
    if args.syslog:
        url = urlsplit(args.syslog)
        if url.scheme not in ("udp", "tcp", "tls") or not url.hostname:
            raise ConfigError([f"--syslog: expected udp|tcp|tls://HOST:PORT, got {args.syslog!r}"])
        put("exporters.syslog.enabled", True)
        put("exporters.syslog.transport", url.scheme)
        put("exporters.syslog.host", url.hostname)
        try:
            port = url.port
        except ValueError:
            raise ConfigError([f"--syslog: bad port in {args.syslog!r}"]) from None
        if port:
            put("exporters.syslog.port", port)
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


def replay_metrics(settings: Any, args: argparse.Namespace) -> Any:
    """A replay serves metrics only when asked: by flag, or by the configuration itself.

    The demo and tests replay on machines where 0.0.0.0:9090 is often taken (it is also
    Prometheus' own default port); a replay is a batch job that nobody scrapes.
    """
    if args.replay is None or args.metrics_address or not settings.metrics.enabled:
        return settings
    if settings.metrics.model_fields_set & {"enabled", "address"}:
        return settings
    metrics = settings.metrics.model_copy(update={"enabled": False})
    return settings.model_copy(update={"metrics": metrics})


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
    if args.events is not None and args.replay is not None:
        print("--events and --replay are alternatives", file=sys.stderr)
        return 2
    if args.events not in (None, "-") and not Path(args.events).is_file():
        print(f"--events: no such file: {args.events}", file=sys.stderr)
        return 2
    settings = replay_metrics(settings, args)
    try:
        check_files(settings, replay=args.replay is not None)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    workers = settings.pipeline.workers
    if workers > 1 and (args.replay is not None or args.events is not None):
        print(
            "pipeline.workers > 1 needs a gRPC target: each worker runs its own streams, and "
            "--replay/--events have one reader (serve a capture with `gadgetwatch "
            "replay-server CAPTURE --no-ordered --listen ...` and use --target)",
            file=sys.stderr,
        )
        return 2
    if workers > 1:
        try:
            # Rules are checked once here, not found broken by N crashing workers.
            Agent(settings).check_rules()
        except AgentError as exc:
            print(f"gadgetwatch run: {exc}", file=sys.stderr)
            return 2
    if args.check_config:
        print("configuration OK", file=sys.stderr)
        return 0
    if workers > 1:
        return _supervise(settings, args)
    agent = Agent(
        settings,
        replay=args.replay,
        replay_rate=args.replay_rate,
        environ=dict(os.environ),
        events=args.events,
        events_gadget=args.gadget,
    )
    progress = Progress(quiet=getattr(args, "quiet", False))
    try:
        code = asyncio.run(_run_agent(agent, progress))
    except (AgentError, CaptureError) as exc:
        # A bad capture names its file and line (`CaptureError.where`): one line, no traceback.
        progress.close()
        print(f"gadgetwatch run: {exc}", file=sys.stderr)
        code = 1
    if args.summary:
        print("\n".join(summary_lines(agent)), file=sys.stderr)
    return code


def _supervise(settings: Any, args: argparse.Namespace) -> int:
    """`pipeline.workers` > 1: a supervisor and its worker processes (`workers.py`)."""
    from gadgetwatch.workers import Supervisor, summary_lines

    supervisor = Supervisor(settings, log_level=args.log_level)
    code = asyncio.run(supervisor.run())
    if args.summary:
        print("\n".join(summary_lines(supervisor)), file=sys.stderr)
    return code


def check_files(settings: Any, *, replay: bool = False) -> None:
    """What the configuration names exists and has the right form before anything starts."""
    from gadgetclient.errors import TargetError
    from gadgetclient.targets import parse_target

    if not replay:
        try:
            parse_target(settings.gadgetclient.target)
        except TargetError as exc:
            raise UserError(f"gadgetclient.target (--target): {exc}") from exc
    ps = settings.profiler
    directory = Path(ps.directory)
    if ps.store.value == "directory" and directory.exists() and not directory.is_dir():
        raise UserError(f"profiler.directory (--profiles-dir): not a directory: {directory}")
    for setting, value in (
        ("detector.bindingsFile (--bindings)", settings.detector.bindings_file),
        ("detector.exceptionsFile (--exceptions)", settings.detector.exceptions_file),
    ):
        if value and not Path(value).is_file():
            raise UserError(f"{setting}: no such file: {value}")


async def _run_agent(agent: Any, progress: Progress) -> int:
    """Run the agent; on a terminal, show the replay's progress while it runs."""
    if not progress.enabled or agent.replay is None:
        result: int = await agent.run()
        return result
    task = asyncio.create_task(agent.run())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=PROGRESS_INTERVAL_S)
            progress.update(replay_progress(agent, progress.elapsed()))
    finally:
        progress.close()
    result = await task
    return result


def replay_progress(agent: Any, elapsed: float) -> str:
    """`replay 1200/4000 events (30%), 3 alerts, 2.5s`: the status line of a replay."""
    received = sum(agent.stats.stream.decoded.values())
    total = agent.replay_total
    alerts = sum(agent.stats.detector.alerts.values())
    share = f" ({100 * received // total}%)" if total else ""
    shown = f"{received}/{total}" if total else str(received)
    return f"replay {shown} events{share}, {alerts} alerts, {elapsed:.1f}s"
