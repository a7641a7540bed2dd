"""`gadgetwatch probe`: check the IG target, Kubernetes access and RBAC, CRDs and exporters.

On a terminal each check is shown on stderr as it completes (a gadget may take seconds to
start); the table (or JSON/YAML) goes to stdout at the end, and the READY / NOT READY verdict
to stderr, so `-o json` output stays machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from gadgetwatch.clikit import Progress, add_command, add_output_flag, add_quiet_flag, print_data


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "probe",
        help="check that everything the agent needs is reachable and permitted",
        description=(
            "Check the IG target (reachable, version, each gadget starts), Kubernetes access, "
            "every RBAC permission the agent needs, the CRDs, and each configured exporter. "
            "Exit code 0 means ready."
        ),
        examples=[
            "gadgetwatch probe --target unix:///var/run/ig/ig.socket",
            "gadgetwatch probe --config /etc/gadgetwatch/config.yaml -o json",
            "gadgetwatch probe --target tcp://127.0.0.1:8888 --quiet",
        ],
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument("--target", help="IG endpoint (overrides the configuration)")
    add_output_flag(p)
    add_quiet_flag(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gadgetwatch.config import load_settings
    from gadgetwatch.probing import Check, Verdict, check_to_dict, probe, render_table

    overrides: dict[str, Any] = {}
    if args.target:
        overrides = {"gadgetclient": {"target": args.target}}
    settings = load_settings(config_file=args.config, environ=os.environ, overrides=overrides)
    progress = Progress(quiet=args.quiet)
    done = 0

    def report(check: Check) -> None:
        nonlocal done
        done += 1
        progress.note(
            f"[{done}] {check.verdict.value.upper():4} {check.area} {check.name}: {check.detail}"
        )

    try:
        checks = asyncio.run(probe(settings, report))
    finally:
        progress.close()
    print_data(args.output, [check_to_dict(c) for c in checks], lambda: render_table(checks))
    failed = [c for c in checks if c.verdict is Verdict.FAIL]
    print(
        f"{'NOT READY' if failed else 'READY'}: {len(checks)} checks, {len(failed)} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0
