"""`-o table|json|yaml` on every command that prints data, through one printer.

For each command and format: JSON and YAML put exactly one document on stdout (nothing else;
notes go to stderr) with the field names of the files and alerts; the table has its header.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from gadgetwatch.cli import main
from gadgetwatch.clikit import render_table
from profiler.dirstore import DirectoryStore
from profiler.documents import to_document
from tests.gadgetwatch.clihelp import CAPTURE
from tests.profiler.test_cli import completed

REF = "staging/deployment-web-nginx"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    root = tmp_path / "profiles"
    store = DirectoryStore(root)
    store.create_sync(completed())
    other = completed()
    other.entries.add_exec("/bin/sh", ("/bin/sh", "-c", "id; echo 'hi there'"))
    other.key = other.key.__class__("prod", "Deployment", "web", "nginx")
    store.create_sync(other)
    return root


def _check_list(data: Any) -> None:
    assert [(p["namespace"], p["name"]) for p in data] == [
        ("prod", "deployment-web-nginx"),
        ("staging", "deployment-web-nginx"),
    ]
    assert data[1]["workload"] == {"kind": "Deployment", "name": "web", "container": "nginx"}
    assert data[1]["phase"] == "completed"
    assert data[1]["entries"] == 9


def _check_show(data: Any) -> None:
    data["metadata"].pop("resourceVersion")  # the store's, not in the in-memory profile
    assert data == json.loads(json.dumps(to_document(completed())))


def _check_diff(data: Any) -> None:
    assert data["before"] == REF
    assert data["after"] == "prod/deployment-web-nginx"
    assert data["added"]["execs"] == [
        {"path": "/bin/sh", "args": ["/bin/sh", "-c", "id; echo 'hi there'"]}
    ]
    assert data["removed"]["execs"] == []
    assert {c["field"] for c in data["changed"]} == {"workload"}


def _check_advise(data: Any) -> None:
    assert data["securityContext"]["runAsNonRoot"] is True
    assert {e["setting"] for e in data["evidence"]} >= {"runAsNonRoot", "capabilities"}


def _check_rules(data: Any) -> None:
    ids = [r["id"] for r in data]
    assert "R0001" in ids
    assert "R1000" in ids
    assert {"id", "name", "severity", "profileDependency", "eventKinds"} <= set(data[0])


def _check_config(data: Any) -> None:
    assert data["profiler"]["learningPeriod"] == "24h"
    assert data["metrics"]["address"] == "0.0.0.0:9090"


def _check_probe(data: Any) -> None:
    assert data[0]["area"] == "ig"
    assert data[0]["result"] == "fail"
    assert {"area", "check", "result", "detail"} == set(data[0])


#: (argv after `gadgetwatch`, expected exit code, table header start, data check)
CASES: dict[str, tuple[list[str], int, str, Callable[[Any], None]]] = {
    "profile list": (["profile", "list"], 0, "NAMESPACE  NAME", _check_list),
    "profile show": (["profile", "show", REF], 0, "Profile:    staging/", _check_show),
    "profile diff": (
        ["profile", "diff", REF, "prod/deployment-web-nginx"],
        1,
        "~ workload: staging/Deployment/web/nginx -> prod/Deployment/web/nginx",
        _check_diff,
    ),
    "profile advise": (["profile", "advise", REF], 0, "capabilities: {", _check_advise),
    "rules list": (["rules", "list"], 0, "ID     SEVERITY  PROFILE", _check_rules),
    "config show": (["config", "show"], 0, "KEY  ", _check_config),
    "config default": (["config", "default"], 0, "KEY  ", _check_config),
    "probe": (["probe"], 1, "AREA ", _check_probe),
}


@pytest.mark.parametrize("fmt", ["table", "json", "yaml"])
@pytest.mark.parametrize("case", list(CASES))
def test_output_formats(
    case: str,
    fmt: str,
    pdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, code, header, check = CASES[case]
    for name in [n for n in os.environ if n.startswith("GADGETWATCH_")]:
        monkeypatch.delenv(name)
    if argv[0] == "profile":
        argv = [*argv, "--profiles-dir", str(pdir)]  # after the verb, as people type it
    if argv[0] == "probe":
        argv = [*argv, "--target", f"unix://{tmp_path}/nothing.sock", "--quiet"]
        monkeypatch.setenv("GADGETWATCH_KUBERNETES__MODE", "off")  # host mode: no cluster here
        monkeypatch.setenv("GADGETWATCH_GADGETCLIENT__CONNECT_TIMEOUT", "300ms")  # nothing there
    assert main(["--log-level", "error", *argv, "-o", fmt]) == code
    out, err = capsys.readouterr()
    if fmt == "table":
        assert out.startswith(header), out[:200]
        return
    data = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    check(data)
    if fmt == "yaml":
        assert not out.lstrip().startswith(("{", "[")), "block YAML, not JSON"
    if case == "probe":
        assert "NOT READY" in err  # the verdict is on stderr, not in the data


def test_profile_show_prints_args_as_typed(pdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "show", "prod/deployment-web-nginx", "--profiles-dir", str(pdir)]) == 0
    out = capsys.readouterr().out
    assert """  exec /bin/sh: /bin/sh -c 'id; echo '"'"'hi there'"'"''""" in out
    assert "['" not in out


def test_rules_list_filters_by_id_and_rejects_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "r1000", "-o", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["R1000"]
    assert main(["rules", "list", "R9999"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "gadgetwatch rules: no such rule: R9999 (see 'gadgetwatch rules list')\n"


def test_config_show_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "exporters:\n  http:\n    enabled: true\n    url: http://127.0.0.1:1/x\n"
        "    headers: {Authorization: Bearer SECRET-MARKER}\n"
    )
    for fmt in ("table", "json", "yaml"):
        assert main(["config", "show", "--config", str(config), "-o", fmt]) == 0
        out, err = capsys.readouterr()
        assert "SECRET-MARKER" not in out + err
        assert "REDACTED" in out


def test_one_table_printer() -> None:
    assert render_table(("A", "LONGER"), [("x", "1"), ("yyyy", "2")]) == (
        "A     LONGER\nx     1\nyyyy  2"
    )
    assert render_table(("A", "B"), []) == "A  B"


def test_probe_json_against_a_live_target_has_nothing_else_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.gadgetwatch.clihelp import replay_server

    with replay_server(tmp_path) as address:
        code = main(["--log-level", "error", "probe", "--target", address, "-o", "json"])
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0, err
    assert rows[0]["check"] == address
    assert rows[0]["result"] == "ok"
    assert {r["check"].split(" @ ")[0] for r in rows if r["area"] == "gadget"} >= {"trace_exec"}
    assert err.strip().splitlines()[-1].startswith("READY:")
    assert CAPTURE.is_file()
