"""`gadgetwatch probe`: check the IG target, Kubernetes access and RBAC, CRDs and exporters."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from gadgetwatch.settings_loading import ConfigError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "probe",
        help="check that everything the agent needs is reachable and permitted",
        description=(
            "Check the IG target (reachable, version, each gadget starts), Kubernetes access, "
            "every RBAC permission the agent needs, the CRDs, and each configured exporter. "
            "Exit code 0 means ready."
        ),
    )
    p.add_argument("--config", type=Path, help="YAML configuration file")
    p.add_argument("--target", help="IG endpoint (overrides the configuration)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import orjson

    from gadgetwatch.config import load_settings
    from gadgetwatch.probing import Verdict, probe, render_table

    overrides: dict[str, Any] = {}
    if args.target:
        overrides = {"gadgetclient": {"target": args.target}}
    try:
        settings = load_settings(config_file=args.config, environ=os.environ, overrides=overrides)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    checks = asyncio.run(probe(settings))
    if args.output == "json":
        rows = [
            {"area": c.area, "check": c.name, "result": c.verdict.value, "detail": c.detail}
            for c in checks
        ]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_table(checks))
    failed = [c for c in checks if c.verdict is Verdict.FAIL]
    print(
        f"{'NOT READY' if failed else 'READY'}: {len(checks)} checks, {len(failed)} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0
