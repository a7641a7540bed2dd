"""`gadgetwatch rules`: the rule catalogue, checking rule files, importing Kubescape rules.

``gadgetwatch rules list [RULE...] [-o table|json|yaml]`` prints every rule (id, name,
severity, profile dependency, event kinds, parameters, tags, MITRE) including the
predecessors' rules that IG cannot evaluate, each with the reason; ``--rules FILE`` adds
`RuntimeRule`s (CEL) and ``--rule-catalogue DIR`` lists a CEL catalogue instead of the
built-in rules. ``gadgetwatch rules check FILE...`` loads rules, bindings, exceptions and
guards exactly as the agent does and prints every problem with its location; the exit code is
1 when any error was found, so it fits a CI pipeline. ``gadgetwatch rules import FILE``
converts Kubescape node-agent `Rules` resources into `RuntimeRule`s (YAML on stdout, checked
by compiling them) and lists the rules it could not convert, with the reason, on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from detector import kubescape_rules
from detector.errors import RuleSourceError
from detector.loading import Problem, read_yaml
from detector.rules import Catalogue, Rule, default_catalogue
from detector.ruleset import cel_catalogue, load_files, parse_documents
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
    lst.add_argument(
        "--rules", type=Path, metavar="FILE", help="also list these RuntimeRule files (or a dir)"
    )
    lst.add_argument(
        "--rule-catalogue",
        type=Path,
        metavar="DIR",
        help="list this RuntimeRule directory instead of the built-in rules (deploy/rules)",
    )
    add_output_flag(lst)
    lst.set_defaults(handler=_list)
    imp = add_command(
        rules_sub,
        "import",
        help="convert Kubescape node-agent Rules resources into RuntimeRules",
        examples=[
            "gadgetwatch rules import default-rules.yaml > kubescape-rules.yaml",
            "gadgetwatch rules import default-rules.yaml 2> left-out.txt",
        ],
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="YAML with Kubescape Rules documents")
    imp.set_defaults(handler=_import)
    chk = add_command(
        rules_sub,
        "check",
        help="validate RuntimeRule / RuntimeRuleAlertBinding / RuntimeAlertException / "
        "RuntimeGuard files",
        examples=[
            "gadgetwatch rules check bindings.yaml",
            "gadgetwatch rules check bindings.yaml exceptions.yaml",
        ],
    )
    chk.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="rules, bindings, exceptions or guards YAML",
    )
    chk.add_argument(
        "--rule-catalogue",
        type=Path,
        metavar="DIR",
        help="check against this RuntimeRule catalogue instead of the built-in rules",
    )
    chk.set_defaults(handler=_check)
    parser.set_defaults(handler=_list, output="table", ids=[], rules=None, rule_catalogue=None)


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
        "source": rule.source,
        "language": "cel" if rule.revision else "python",
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


def _catalogue(args: argparse.Namespace) -> Catalogue:
    try:
        catalogue = (
            cel_catalogue(args.rule_catalogue) if args.rule_catalogue else default_catalogue()
        )
        if args.rules:
            loaded = load_files([args.rules], catalogue=catalogue)
            for problem in loaded.problems:
                print(problem, file=sys.stderr)
            catalogue = catalogue.extended(loaded.rules)
    except RuleSourceError as exc:
        raise UserError(str(exc)) from exc
    return catalogue


def _list(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
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
        catalogue = (
            cel_catalogue(args.rule_catalogue) if args.rule_catalogue else default_catalogue()
        )
        ruleset = load_files(args.files, catalogue=catalogue)
    except RuleSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in ruleset.problems:
        print(problem)
    print(
        f"{len(ruleset.rules)} rule(s), "
        f"{len(ruleset.bindings)} binding(s), {len(ruleset.exceptions)} exception(s), "
        f"{len(ruleset.guards)} guard(s), {len(ruleset.errors)} error(s), "
        f"{len(ruleset.problems) - len(ruleset.errors)} warning(s)"
    )
    return 1 if ruleset.errors else 0


def _import(args: argparse.Namespace) -> int:
    """Converted rules as YAML on stdout, compiled first; what was left out on stderr."""
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{args.file}: cannot read: {exc}") from exc
    problems: list[Problem] = []
    docs = read_yaml(text, source=str(args.file), problems=problems)
    converted: list[dict[str, Any]] = []
    skipped: list[kubescape_rules.Skipped] = []
    for doc in docs:
        if not kubescape_rules.is_rules_document(doc.data):
            continue
        done, left = kubescape_rules.convert(doc.data)
        converted += done
        skipped += left
    if not docs or (not converted and not skipped):
        for problem in problems:
            print(problem, file=sys.stderr)
        raise UserError(f"{args.file}: no Kubescape Rules document ({kubescape_rules.GROUP})")
    # Compile what was converted, exactly as the agent will load it.
    from detector.loading import Document

    compiled = parse_documents(
        [Document(c, str(args.file)) for c in converted], catalogue=default_catalogue()
    )
    good = {str(r.id) for r in compiled.rules}
    for problem in compiled.problems:
        print(f"not imported: {problem}", file=sys.stderr)
    kept = [c for c in converted if c["spec"]["id"] in good]
    for item in skipped:
        print(f"not imported: {item.id} ({item.name}): {item.reason}", file=sys.stderr)
    print(
        f"imported {len(kept)} rule(s), left out {len(converted) - len(kept) + len(skipped)}",
        file=sys.stderr,
    )
    sys.stdout.write(yaml.safe_dump_all(kept, sort_keys=False, width=100, allow_unicode=True))
    return 0 if kept else 1
