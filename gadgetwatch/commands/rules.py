"""`gadgetwatch rules`: the rule catalogue, and checking bindings/exceptions files.

``gadgetwatch rules list [-o json|yaml]`` prints every rule (id, name, severity, profile
dependency, event kinds, parameters, tags, MITRE) including the predecessors' rules that IG
cannot evaluate, each with the reason. ``gadgetwatch rules check FILE...`` loads bindings and
exceptions exactly as the agent does and prints every problem with its location; the exit
code is 1 when any error was found, so it fits a CI pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from detector.errors import RuleSourceError
from detector.rules import Catalogue, Rule, default_catalogue
from detector.ruleset import load_files


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "rules", help="list the rule catalogue, check bindings and exceptions files"
    )
    rules_sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    lst = rules_sub.add_parser("list", help="print the rule catalogue")
    lst.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")
    lst.set_defaults(handler=_list)
    chk = rules_sub.add_parser(
        "check", help="validate binding, exception and guard (RuntimeGuard) files"
    )
    chk.add_argument("files", nargs="+", type=Path, metavar="FILE")
    chk.set_defaults(handler=_check)
    parser.set_defaults(handler=_list, output="text")


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
    if args.output == "json":
        print(json.dumps(catalogue_to_json(catalogue), indent=2))
        return 0
    if args.output == "yaml":
        # The same document as JSON; parameter defaults (R0010's sensitive paths) read best here.
        print(yaml.safe_dump(catalogue_to_json(catalogue), sort_keys=False, width=100), end="")
        return 0
    print(f"{'ID':6} {'SEVERITY':8} {'PROFILE':8} {'EVENTS':16} NAME")
    for rule in catalogue.rules:
        kinds = ",".join(sorted(k.value for k in rule.kinds))
        print(f"{rule.id:6} {rule.severity.label:8} {rule.profile.value:8} {kinds:16} {rule.name}")
        for p in rule.parameters:
            default = list(p.default) if isinstance(p.default, tuple) else p.default
            print(f"{'':41} param {p.name} ({p.kind.value}, default {default})")
    for rule in catalogue.resource_rules:
        kinds = ",".join(sorted(k.value for k in rule.kinds))
        print(
            f"{rule.id:6} {rule.severity.label:8} {rule.profile.value:8} {kinds:16} {rule.name} "
            "(switched on by RuntimeGuard resources, not by bindings)"
        )
    print()
    print("Unavailable (IG's gadgets do not provide the data):")
    for u in catalogue.unavailable:
        print(f"{u.id:6} {u.name}: {u.reason}")
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
