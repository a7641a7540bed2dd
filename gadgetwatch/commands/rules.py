"""`gadgetwatch rules`: the rule catalogue, and checking bindings/exceptions files.

``gadgetwatch rules list [RULE...] [-o table|json|yaml]`` prints every rule (id, name,
severity, profile dependency, event kinds, parameters, tags, MITRE) including the
predecessors' rules that IG cannot evaluate, each with the reason. ``gadgetwatch rules check
FILE...`` loads bindings and exceptions exactly as the agent does and prints every problem
with its location; the exit code is 1 when any error was found, so it fits a CI pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from detector.errors import RuleSourceError
from detector.rules import Catalogue, Rule, default_catalogue
from detector.ruleset import load_files
from gadgetwatch.clikit import UserError, add_command, add_output_flag, print_data, render_table


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "rules",
        help="list the rule catalogue, check bindings and exceptions files",
        examples=[
            "gadgetwatch rules list",
            "gadgetwatch rules list R1000 R0001 -o yaml",
            "gadgetwatch rules check bindings.yaml exceptions.yaml",
        ],
    )
    rules_sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    lst = add_command(
        rules_sub,
        "list",
        help="print the rule catalogue",
        examples=[
            "gadgetwatch rules list",
            "gadgetwatch rules list -o json",
            "gadgetwatch rules list R1000 R1001",
        ],
    )
    lst.add_argument(
        "ids", nargs="*", metavar="RULE", help="only these rule IDs or aliases (default: all)"
    )
    add_output_flag(lst)
    lst.set_defaults(handler=_list)
    chk = add_command(
        rules_sub,
        "check",
        help="validate RuntimeRuleAlertBinding / RuntimeAlertException / RuntimeGuard files",
        examples=[
            "gadgetwatch rules check bindings.yaml",
            "gadgetwatch rules check bindings.yaml exceptions.yaml",
        ],
    )
    chk.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="bindings, exceptions or guards YAML"
    )
    chk.set_defaults(handler=_check)
    parser.set_defaults(handler=_list, output="table", ids=[])


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "available": True,
        "description": rule.description,
        "severity": rule.severity.label,
        "profileDependency": rule.profile.value,
        "eventKinds": sorted(k.value for k in rule.kinds),
        "tags": list(rule.tags),
        "mitre": {"tactic": rule.mitre_tactic, "technique": rule.mitre_technique},
        "parameters": [
            {
                "name": p.name,
                "type": p.kind.value,
                "default": list(p.default) if isinstance(p.default, tuple) else p.default,
                "description": p.description,
            }
            for p in rule.parameters
        ],
        "dedupKey": list(rule.dedup_key),
        "aliases": list(rule.aliases),
    }


def catalogue_to_json(catalogue: Catalogue) -> list[dict[str, Any]]:
    out = [rule_to_dict(r) for r in catalogue.rules]
    # Switched on by their own resources, never by a binding (R3000: RuntimeGuard).
    out += [{**rule_to_dict(r), "activatedBy": "RuntimeGuard"} for r in catalogue.resource_rules]
    out += [
        {
            "id": u.id,
            "name": u.name,
            "available": False,
            "reason": u.reason,
            "aliases": list(u.aliases),
        }
        for u in catalogue.unavailable
    ]
    return sorted(out, key=lambda r: str(r["id"]))


def _list(args: argparse.Namespace) -> int:
    catalogue = default_catalogue()
    data = catalogue_to_json(catalogue)
    if args.ids:
        wanted = {i.upper() for i in args.ids}
        data = [r for r in data if wanted & {str(r["id"]), *map(str, r["aliases"])}]
        unknown = sorted(wanted - {str(x) for r in data for x in (r["id"], *r["aliases"])})
        if unknown:
            raise UserError(f"no such rule: {', '.join(unknown)} (see 'gadgetwatch rules list')")

    def table() -> str:
        rows = []
        for r in data:
            if r["available"]:
                kinds = ",".join(r["eventKinds"])
                params = ",".join(p["name"] for p in r["parameters"]) or "-"
                name = r["name"]
                if r.get("activatedBy"):
                    name += f" (switched on by {r['activatedBy']} resources, not by bindings)"
                rows.append((r["id"], r["severity"], r["profileDependency"], kinds, params, name))
            else:
                rows.append(
                    (r["id"], "-", "-", "-", "-", f"{r['name']} (unavailable: {r['reason']})")
                )
        return render_table(("ID", "SEVERITY", "PROFILE", "EVENTS", "PARAMETERS", "NAME"), rows)

    print_data(args.output, data, table)
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        ruleset = load_files(args.files, catalogue=default_catalogue())
    except RuleSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in ruleset.problems:
        print(problem)
    print(
        f"{len(ruleset.bindings)} binding(s), {len(ruleset.exceptions)} exception(s), "
        f"{len(ruleset.guards)} guard(s), {len(ruleset.errors)} error(s), "
        f"{len(ruleset.problems) - len(ruleset.errors)} warning(s)"
    )
    return 1 if ruleset.errors else 0
