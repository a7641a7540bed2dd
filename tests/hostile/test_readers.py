"""Every reader and every human output against the hostile corpus.

A reader is (name, function reading a path, the error type that is its clear answer). Adding a
reader to the product means adding it to `READERS`; the tests below then prove it rejects YAML
bombs, deep nesting, oversized, truncated and binary input with its own error, never a
traceback, a hang or a memory blow-up. Outputs (`OUTPUTS`) are CLI commands that print file
content for a person: none may pass a control or bidi character through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector.bindings import API_VERSION as BINDING_API
from detector.errors import RuleSourceError
from detector.rules import default_catalogue
from detector.ruleset import load_files
from gadgetclient.capture import read_capture
from gadgetclient.errors import CaptureError
from gadgetclient.pathnorm import normalise_exec_path
from gadgetwatch.cli import main
from gadgetwatch.config import load_settings
from gadgetwatch.settings_loading import ConfigError
from profiler.dirstore import DirectoryStore
from profiler.errors import ProfilerError
from profiler.exporting import read_documents
from tests.detector.builders import binding_yaml, exec_ev, make_detector
from tests.hostile.corpus import HOSTILE_FILES, HOSTILE_NAMES


@dataclass(frozen=True)
class Reader:
    name: str
    read: Callable[[Path], Any]
    #: The reader's own "this input is unusable" error.
    error: type[Exception] | tuple[type[Exception], ...]
    #: A YAML reader: the alias bomb and deep nesting must be reported as such.
    yaml: bool = True


def _rules(path: Path) -> Any:
    ruleset = load_files([path], catalogue=default_catalogue())
    if ruleset.errors:
        raise RuleSourceError("; ".join(str(p) for p in ruleset.errors), source=str(path))
    return ruleset


READERS: list[Reader] = [
    Reader("config", lambda p: load_settings(config_file=p, environ={}), ConfigError),
    Reader("bindings and exceptions", _rules, RuleSourceError),
    Reader(
        "profile in the directory store",
        lambda p: DirectoryStore(p.parent).read_file(p),
        ProfilerError,
    ),
    Reader(
        "profile import", lambda p: read_documents(p.read_bytes(), source=str(p)), ProfilerError
    ),
    Reader("capture", read_capture, CaptureError, yaml=False),
    Reader(
        "plain ig json", lambda p: read_capture(p, gadget="trace_exec"), CaptureError, yaml=False
    ),
]

#: Corpus entries that are legitimate for some readers (an empty config is the defaults).
_MAY_SUCCEED = {"empty", "scalar", "list-top", "escape-sequences", "bidi", "nul-bytes"}


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.name)
@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_every_reader_answers_hostile_input_with_its_own_error(
    tmp_path: Path, reader: Reader, case: str
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(HOSTILE_FILES[case])
    try:
        reader.read(path)
    except reader.error as exc:
        message = str(exc)
        assert message, "an error must say what is wrong"
        if reader.yaml and case == "alias-bomb":
            assert "alias" in message
        if reader.yaml and case.startswith("deep-") and case != "deep-json":
            assert "nested deeper" in message
        if reader.yaml and case == "huge":
            assert "bytes, more than the limit" in message
    else:
        assert case in _MAY_SUCCEED, f"{reader.name} accepted {case}"


_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _bindings_with_escapes(tmp_path: Path) -> Path:
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"apiVersion: {BINDING_API}\nkind: RuntimeRuleAlertBinding\n"
        'metadata: {name: "x\\e]0;pwned\\a\\u202e"}\n'
        'spec:\n  rules:\n  - ruleName: "evil\\e[31mred\\u202egnp.exe"\n'
    )
    return path


#: Commands that print what files hold for a person, with the file as their last argument.
OUTPUTS: list[list[str]] = [
    ["rules", "check"],
    ["config", "show", "--config"],
    ["run", "--check-config", "--config"],
    ["profile", "show"],
]


@pytest.mark.parametrize("command", OUTPUTS, ids=" ".join)
@pytest.mark.parametrize(
    "case", ["escape-sequences", "bidi", "invalid-utf8", "nul-bytes", "evil-binding"]
)
def test_human_output_escapes_control_and_bidi_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], case: str
) -> None:
    if case == "evil-binding":
        path = _bindings_with_escapes(tmp_path)
    else:
        path = tmp_path / f"{case}.yaml"
        path.write_bytes(HOSTILE_FILES[case])
    code = main([*command, str(path)])
    out, err = capsys.readouterr()
    assert code != 0 or case in ("escape-sequences", "bidi")
    assert _UNSAFE.search(out) is None, out
    assert _UNSAFE.search(err) is None, err


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


#: Lone surrogates never reach the detector: the decoder reads IG's bytes with "replace" (a
#: capture's "\ud800" goes through the wire encoding, too).
_DECODABLE = [n for n in HOSTILE_NAMES if not any(0xD800 <= ord(c) < 0xE000 for c in n)]


@pytest.mark.parametrize("name", _DECODABLE)
def test_alerts_carry_hostile_event_strings_escaped(name: str) -> None:
    """The alert is every exporter's input: no raw control or bidi character may reach it."""
    detector = make_detector(binding_yaml("R1000"))
    path = f"/dev/shm/{name}"
    if normalise_exec_path(path) != path:
        # `..` components name another file once normalised (`/dev/shm/..` is `/dev`): the
        # hostile string still reaches the alert, as the process name and an argument.
        path = "/dev/shm/payload"
    (alert,) = detector.evaluate([exec_ev(path, name, t=1, comm=name)])
    for text in _strings(alert.to_dict()):
        assert _UNSAFE.search(text) is None, text
