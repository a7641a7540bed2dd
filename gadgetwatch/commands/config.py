"""`gadgetwatch config default|show|docs`: look at the configuration without running anything."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "config", help="print the default or effective configuration, or its reference docs"
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    actions.add_parser("default", help="the built-in defaults as YAML").set_defaults(
        handler=_default
    )
    show = actions.add_parser("show", help="the effective configuration (file + environment)")
    show.add_argument("--config", type=Path, help="YAML configuration file")
    show.set_defaults(handler=_show)
    docs = actions.add_parser("docs", help="the Markdown reference (docs/configuration.md)")
    docs.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    docs.set_defaults(handler=_docs)


def _default(args: argparse.Namespace) -> int:
    from gadgetwatch.config import Settings, dump_settings

    sys.stdout.write(yaml.safe_dump(dump_settings(Settings()), sort_keys=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    from gadgetwatch.config import dump_settings, load_settings
    from gadgetwatch.settings_loading import ConfigError

    try:
        settings = load_settings(config_file=args.config, environ=os.environ)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(dump_settings(settings), sort_keys=False))
    return 0


def _docs(args: argparse.Namespace) -> int:
    from gadgetwatch.config import Settings
    from gadgetwatch.config_docs import render

    text = render(Settings)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
