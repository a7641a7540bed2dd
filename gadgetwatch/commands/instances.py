"""`gadgetwatch instances list|show|remove`: IG's headless gadget instances, like `kubectl
gadget list` / `delete`, over any target (unix, tcp, k8s).

Headless instances keep tracing while no client is attached (docs/gadgetclient.md "Sessions and
instances"). The agent's own instances are named `<headless.namePrefix>-<gadget>`; `remove` is
how an operator (or the chart's pre-delete hook) stops them. On a `k8s://` target every node is
asked and rows carry the node.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from gadgetwatch.clikit import add_command, add_output_flag, dump, render_table
from gadgetwatch.settings_loading import ConfigError


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "instances",
        help="list, show or remove IG's headless gadget instances",
        description=(
            "Headless gadget instances on the IG target (IG v0.33+): the agent's own "
            "(`gadgetclient.headless`) and those users started with `kubectl gadget run --detach`."
        ),
        examples=[
            "gadgetwatch instances --target unix:///var/run/ig/ig.socket list",
            "gadgetwatch instances --target k8s://gadget -o yaml show gadgetwatch-trace_exec",
            "gadgetwatch instances --config /etc/gadgetwatch/config.yaml remove --mine",
        ],
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument("--target", help="IG endpoint (overrides the configuration)")
    add_output_flag(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = add_command(
        actions,
        "list",
        help="every instance",
        examples=["gadgetwatch instances list", "gadgetwatch instances -o json list"],
    )
    ls.set_defaults(handler=_run)
    show = add_command(
        actions,
        "show",
        help="one instance, with its params",
        examples=[
            "gadgetwatch instances show gadgetwatch-trace_exec",
            "gadgetwatch instances -o json show 0123456789abcdef0123456789abcdef",
        ],
    )
    show.add_argument("ref", metavar="ID|NAME", help="instance id or name")
    show.set_defaults(handler=_run)
    rm = add_command(
        actions,
        "remove",
        help="stop and remove instances",
        examples=[
            "gadgetwatch instances remove shop-exec,shop-dns",
            "gadgetwatch instances --target k8s://gadget remove --mine",
        ],
    )
    rm.add_argument(
        "refs", metavar="ID|NAME[,...]", nargs="?", default="", help="instance ids or names"
    )
    rm.add_argument(
        "--mine",
        action="store_true",
        help="the agent's own headless instances (from gadgetclient.headless.namePrefix and "
        "gadgets); those that do not exist are skipped (the chart's pre-delete hook)",
    )
    rm.set_defaults(handler=_run)
    p.set_defaults(handler=_run)


def own_instance_names(settings: Any) -> list[str]:
    """Names of the agent's headless instances under this configuration (advise_seccomp runs
    in rolling windows, never as an instance)."""
    from gadgetclient.instances import instance_name
    from gadgetclient.sessions import gadget_name
    from gadgetclient.source import SECCOMP_GADGET

    names = [gadget_name(g) for g in settings.gadgets]
    return [instance_name(settings.headless.name_prefix, g) for g in names if g != SECCOMP_GADGET]


def _row(node: str, inst: Any) -> dict[str, Any]:
    created = (
        dt.datetime.fromtimestamp(inst.created_ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds")
        if inst.created_ns
        else ""
    )
    return {
        "node": node,
        "id": inst.id,
        "name": inst.name,
        "image": inst.image,
        "status": inst.status,
        "message": inst.message,
        "created": created,
        "tags": list(inst.tags),
        "params": inst.param_dict,
    }


def render(rows: list[dict[str, Any]], fmt: str, *, columns: tuple[str, ...]) -> str:
    """Rows as a table (the given columns), JSON or YAML (every field)."""
    if fmt != "table":
        return dump(rows, fmt).rstrip("\n")
    headers = [c.upper() for c in columns]
    return render_table(headers, [[str(r[c]) or "-" for c in columns] for r in rows])


async def _act(args: argparse.Namespace, settings: Any) -> int:
    from gadgetclient.errors import SessionError
    from gadgetclient.instances import instance_clients

    columns = ("node", "id", "name", "image", "status", "created")
    async with instance_clients(settings.gadgetclient) as clients:
        if args.action == "list":
            rows = [_row(c.connection.endpoint.node, i) for c in clients for i in await c.list()]
            print(render(rows, args.output, columns=columns))
            return 0
        refs = [args.ref] if args.action == "show" else [r for r in args.refs.split(",") if r]
        mine = args.action == "remove" and args.mine
        if mine:
            refs += own_instance_names(settings.gadgetclient)
        if not refs:
            print("remove: name instances (ID|NAME[,...]) or give --mine", file=sys.stderr)
            return 2
        rows = []
        for ref in refs:
            found = False
            for client in clients:
                try:
                    inst = await client.resolve(ref)
                except SessionError as exc:
                    if "not found" in str(exc):
                        continue
                    raise
                found = True
                if args.action == "remove":
                    await client.remove(inst.id)
                rows.append(_row(client.connection.endpoint.node, inst))
            if not found and not (mine and ref not in args.refs.split(",")):
                print(f"gadget {ref} not found", file=sys.stderr)
                return 1
        if args.action == "remove":
            for r in rows:
                print(
                    f"removed {r['name']} ({r['id']})" + (f" on {r['node']}" if r["node"] else "")
                )
            return 0
        if args.output == "table":
            for r in rows:
                for key, value in r.items():
                    if key == "params":
                        print("params:")
                        for k, v in sorted(value.items()):
                            print(f"  {k}={v}")
                    else:
                        print(f"{key}: {value}")
            return 0
        print(render(rows, args.output, columns=columns))
        return 0


def _run(args: argparse.Namespace) -> int:
    from gadgetclient.errors import GadgetClientError
    from gadgetwatch.config import load_settings

    overrides: dict[str, Any] = {}
    if args.target:
        overrides = {"gadgetclient": {"target": args.target}}
    try:
        settings = load_settings(config_file=args.config, environ=os.environ, overrides=overrides)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        return asyncio.run(_act(args, settings))
    except GadgetClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
