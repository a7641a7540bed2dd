"""Every command's help: text for each option, 2-4 real examples that parse, README lines too.

The examples at the end of each `--help` and every `gadgetwatch` command line of the README
are parsed by the real parser here, so a renamed flag or subcommand breaks this test instead
of the documentation silently going stale.
"""

from __future__ import annotations

import argparse
import re

import pytest

from gadgetwatch.cli import main
from tests.gadgetwatch.clihelp import ROOT, command_path, example_argv, parse, parsers

PARSERS = list(parsers())


def test_the_tree_has_every_command() -> None:
    paths = {path for path, _ in PARSERS}
    assert {
        "", "run", "record", "replay-server", "probe", "completion",
        "profile", "profile list", "profile show", "profile export", "profile import",
        "profile diff", "profile seccomp", "profile netpol", "profile advise",
        "rules", "rules list", "rules check", "config", "config default", "config show",
        "config docs",
    } <= paths  # fmt: skip


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[p or "gadgetwatch" for p, _ in PARSERS])
def test_help_ends_with_examples_that_parse(path: str, parser: argparse.ArgumentParser) -> None:
    examples: tuple[str, ...] = getattr(parser, "examples", ())
    assert 2 <= len(examples) <= 4, f"{path or 'gadgetwatch'}: {len(examples)} examples"
    text = parser.format_help()
    assert text.rstrip().endswith(examples[-1]), text[-300:]
    assert "examples:\n" + "".join(f"  {e}\n" for e in examples) in text
    for example in examples:
        argv = example_argv(example)
        args = parse(argv)
        # The example shows this command (or, for a group, one of its subcommands).
        assert command_path(argv).startswith(path), example
        assert getattr(args, "handler", None) is not None, f"{example}: selects no command"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[p or "gadgetwatch" for p, _ in PARSERS])
def test_every_option_and_argument_has_help(path: str, parser: argparse.ArgumentParser) -> None:
    missing = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        and (not a.help or a.help is argparse.SUPPRESS)
    ]
    assert missing == [], f"{path}: no help text for {missing}"


def test_help_goes_to_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["profile", "show", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: gadgetwatch profile show" in out
    assert "-o {table,json,yaml}, --output {table,json,yaml}" in out


# -- the README's command lines ----------------------------------------------------------------

_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
_INLINE = re.compile(r"`((?:\.venv/bin/)?gadgetwatch [^`→]+)`")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    found = []
    for block in _BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if "gadgetwatch " in line and not line.startswith(("scripts/", "sudo ig", "helm")):
                found.append(line)
    found += [m.replace("\n", " ") for m in _INLINE.findall(text)]
    found += [
        m.replace("\n", " ")
        for m in re.findall(r"`(kubectl [^`]*-- gadgetwatch [^`]+)`", text, re.S)
    ]
    return found


README_COMMANDS = readme_commands()


def test_the_readme_has_command_lines() -> None:
    assert len(README_COMMANDS) >= 12, README_COMMANDS


@pytest.mark.parametrize("line", README_COMMANDS)
def test_readme_command_lines_parse(line: str) -> None:
    """A full command line parses; a bare command name (`gadgetwatch rules list` in prose)
    names an existing command."""
    argv = example_argv(line)
    paths = {p for p, _ in PARSERS}
    if " ".join(argv) in paths:
        return
    if argv[-1] == "--help":
        assert command_path(argv) == " ".join(argv[:-1]), line
        return
    args = parse(argv)
    assert getattr(args, "handler", None) is not None, line
