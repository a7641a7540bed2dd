"""`gadgetwatch console`: serve the web console (alerts, profiles, health; docs/console.md).

Prints ``listening http(s)://HOST:PORT`` once serving (port 0 picks a free one, and the line
names it), then serves until Ctrl-C or SIGTERM. Authentication is required: a token file, a
``user:password`` file, or ``--insecure-no-auth`` on a loopback address only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sqlite3
import ssl
import sys
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from gadgetwatch.clikit import UserError, add_command, duration_arg

log = structlog.get_logger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_DATABASE = "gadgetwatch-console.db"


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "console",
        help="serve the web console for alerts and profiles",
        description=(
            "Serve the web console: alerts received from agents' webhook exporters "
            "(POST /api/v1/alerts, kept in SQLite), profiles from the directory store or the "
            "cluster, agent health. See docs/console.md."
        ),
        examples=[
            "gadgetwatch console --token-file console-token --profiles-dir demo-profiles",
            "gadgetwatch console --listen 0.0.0.0:8443 --token-file /etc/console/token "
            "--tls-cert-file tls.crt --tls-key-file tls.key --in-cluster",
            "gadgetwatch console --insecure-no-auth --profiles-dir demo-profiles",
        ],
    )
    net = p.add_argument_group("serving")
    net.add_argument("--listen", default=DEFAULT_LISTEN, help="HOST:PORT (default: %(default)s)")
    net.add_argument("--tls-cert-file", type=Path, metavar="FILE", help="serve HTTPS with this")
    net.add_argument("--tls-key-file", type=Path, metavar="FILE", help="key of --tls-cert-file")
    auth = p.add_argument_group("authentication (one of them is required)")
    auth.add_argument("--token-file", type=Path, metavar="FILE", help="the console token (people)")
    auth.add_argument(
        "--basic-auth-file", type=Path, metavar="FILE", help="user:password lines (people)"
    )
    auth.add_argument(
        "--ingest-token-file",
        type=Path,
        metavar="FILE",
        help="token agents send to POST /api/v1/alerts (default: the console token)",
    )
    auth.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="no authentication at all (only on a loopback --listen; for a laptop demo)",
    )
    data = p.add_argument_group("alerts")
    data.add_argument(
        "--database", default=DEFAULT_DATABASE, metavar="FILE", help="SQLite file (%(default)s)"
    )
    data.add_argument(
        "--retention-max-age",
        type=duration_arg,
        default=30 * 86400.0,
        metavar="DURATION",
        help="delete alerts received longer ago (default: 30d)",
    )
    data.add_argument(
        "--retention-max-alerts",
        type=int,
        default=1_000_000,
        metavar="N",
        help="keep at most this many alerts, oldest deleted first (default: %(default)s)",
    )
    src = p.add_argument_group("profiles and exceptions")
    src.add_argument("--profiles-dir", metavar="DIR", help="directory profile store")
    src.add_argument("--kubeconfig", metavar="FILE", help="use the cluster through this kubeconfig")
    src.add_argument("--in-cluster", action="store_true", help="use the cluster (in-cluster)")
    src.add_argument(
        "--api-server", metavar="URL", help="API server URL (overrides the kubeconfig's)"
    )
    src.add_argument(
        "--exceptions",
        choices=["auto", "cluster", "file"],
        default="auto",
        help="'Allow this' writes to the cluster or offers a file (auto: cluster when one is "
        "configured)",
    )
    p.add_argument(
        "--agent-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="an agent's /metrics URL for the Health page (repeatable)",
    )
    p.add_argument(
        "--agent-metrics-dns",
        action="append",
        default=[],
        metavar="URL",
        help="a /metrics URL whose host name resolves to every agent (a headless Service); "
        "each address is scraped (repeatable)",
    )
    p.set_defaults(handler=run)


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_state(args: argparse.Namespace) -> Any:
    from gadgetwatch.console.app import ConsoleState
    from gadgetwatch.console.security import Auth, AuthConfigError, read_token, read_users
    from gadgetwatch.console.store import AlertStore

    host, _ = _listen(args.listen)
    try:
        token = read_token(args.token_file) if args.token_file else ""
        users = read_users(args.basic_auth_file) if args.basic_auth_file else {}
        ingest = read_token(args.ingest_token_file) if args.ingest_token_file else ""
    except AuthConfigError as exc:
        raise UserError(str(exc)) from None
    if args.insecure_no_auth:
        if token or users:
            raise UserError("--insecure-no-auth contradicts --token-file/--basic-auth-file")
        if not _loopback(host):
            raise UserError(
                f"--insecure-no-auth is only allowed on a loopback address, not {host!r}"
            )
    elif not token and not users:
        raise UserError(
            "authentication is required: give --token-file or --basic-auth-file "
            "(or --insecure-no-auth on a loopback address)"
        )
    elif not (ingest or token):
        raise UserError("agents need a token: give --ingest-token-file or --token-file")
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        raise UserError("--tls-cert-file and --tls-key-file go together")
    auth = Auth(
        token=token,
        users=users,
        ingest_token=ingest,
        disabled=args.insecure_no_auth,
        secure_cookie=bool(args.tls_cert_file),
    )
    cluster = bool(args.kubeconfig or args.in_cluster or args.api_server)
    api_client: Any = None
    profiles: Any = None
    if cluster:
        from profiler.k8s_store import KubernetesStore, api_client_from

        api_client = api_client_from(
            kubeconfig=args.kubeconfig or "", api_server=args.api_server or ""
        )
    if cluster and not args.profiles_dir:
        from profiler.k8s_store import KubernetesStore

        profiles = KubernetesStore(api_client, threads=2)
    elif args.profiles_dir:
        from profiler.dirstore import DirectoryStore

        directory = Path(args.profiles_dir).expanduser()
        if directory.exists() and not directory.is_dir():
            raise UserError(f"--profiles-dir {args.profiles_dir}: not a directory")
        profiles = DirectoryStore(directory)
    if args.exceptions == "cluster" and not cluster:
        raise UserError("--exceptions cluster needs --kubeconfig, --in-cluster or --api-server")
    kube_api = api_client if args.exceptions != "file" and cluster else None
    if args.retention_max_alerts < 0:
        raise UserError("--retention-max-alerts: expected 0 (no limit) or more")
    store = AlertStore(
        args.database, max_age_s=args.retention_max_age, max_alerts=args.retention_max_alerts
    )
    return ConsoleState(
        store=store,
        auth=auth,
        profiles=profiles,
        kube_api=kube_api,
        agent_metrics=tuple(args.agent_metrics),
        agent_discovery=tuple(args.agent_metrics_dns),
    )


def _ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert_file, args.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"--tls-cert-file/--tls-key-file: {exc}") from None
    return context


async def serve(args: argparse.Namespace) -> int:
    from gadgetwatch.console.app import build_app

    state = build_state(args)
    context = _ssl(args)
    host, port = _listen(args.listen)
    if state.auth.disabled:
        log.warning(
            "console authentication is OFF: anyone who can reach the address can read alerts "
            "and write exceptions",
            listen=args.listen,
        )
        print(
            "WARNING: --insecure-no-auth: the console has NO authentication "
            f"(bound to {host} only)",
            file=sys.stderr,
        )
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    try:
        await runner.setup()
    except sqlite3.Error as exc:
        raise UserError(f"--database {args.database}: {exc}") from None
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if context else "http"
    print(f"listening {scheme}://{shown}:{bound}", flush=True)
    log.info("console serving", url=f"{scheme}://{shown}:{bound}", database=args.database)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
