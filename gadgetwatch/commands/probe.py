"""`gadgetwatch probe`: not implemented yet (placeholder so the CLI builds)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("probe", help="(not implemented yet)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    print("gadgetwatch probe: not implemented yet", flush=True)
    return 2
