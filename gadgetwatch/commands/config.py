"""`gadgetwatch config default|show|docs`: look at the configuration without running anything.

`show` and `default` print the configuration as a KEY/VALUE table (dotted YAML paths), or as
YAML/JSON with the configuration file's own keys; secrets print masked, never in clear.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gadgetwatch.clikit import add_command, add_output_flag, flatten, print_data, render_table


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "config",
        help="print the default or effective configuration, or its reference docs",
        examples=[
            "gadgetwatch config show --config /etc/gadgetwatch/config.yaml",
            "gadgetwatch config default -o yaml > config.yaml",
            "gadgetwatch config docs -f docs/configuration.md",
        ],
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    default = add_command(
        actions,
        "default",
        help="the built-in defaults (a starting point for a configuration file)",
        examples=["gadgetwatch config default", "gadgetwatch config default -o yaml > config.yaml"],
    )
    add_output_flag(default)
    default.set_defaults(handler=_default)
    show = add_command(
        actions,
        "show",
        help="the effective configuration (defaults, file, environment)",
        examples=[
            "gadgetwatch config show",
            "gadgetwatch config show --config /etc/gadgetwatch/config.yaml -o yaml",
        ],
    )
    show.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    add_output_flag(show)
    show.set_defaults(handler=_show)
    docs = add_command(
        actions,
        "docs",
        help="the Markdown reference (docs/configuration.md)",
        examples=["gadgetwatch config docs", "gadgetwatch config docs -f docs/configuration.md"],
    )
    docs.add_argument(
        "-f", "--file", type=Path, metavar="FILE", help="write to this file instead of stdout"
    )
    docs.set_defaults(handler=_docs)


def _print(fmt: str, data: dict[str, Any]) -> None:
    print_data(fmt, data, lambda: render_table(("KEY", "VALUE"), flatten(data)))


def _default(args: argparse.Namespace) -> int:
    from gadgetwatch.config import Settings, dump_settings

    _print(args.output, dump_settings(Settings()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from gadgetwatch.config import dump_settings, load_settings

    settings = load_settings(config_file=args.config, environ=os.environ)
    _print(args.output, dump_settings(settings))
    return 0


def _docs(args: argparse.Namespace) -> int:
    from gadgetwatch.config import Settings
    from gadgetwatch.config_docs import render

    text = render(Settings)
    if args.file:
        args.file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
