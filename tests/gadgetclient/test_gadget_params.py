"""Gadget params set on purpose, and a replay server that honours them like IG.

Each test runs the real client (`GadgetSource`) against the replay server over gRPC on a unix
socket, and reads what the server was asked (`run_params`) and what came back (raw records as
`ig run -o json` would print them, and typed events).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.gadget_params import (
    DEFAULT_PARAMS,
    UNRESOLVED_PREFIX,
    params_table,
    plan_params,
)
from gadgetclient.replay import GADGET_PARAMS
from gadgetclient.replay_params import effective, recorded, shaping
from gadgetclient.source import GadgetSource, RawRecord
from tests.gadgetclient.conftest import settings_for

EBPF = "operator.oci.ebpf."


def _proc(comm: str, pid: int, mntns: int = 4026532001) -> dict[str, Any]:
    return {
        "comm": comm,
        "pid": pid,
        "tid": pid,
        "mntns_id": mntns,
        "creds": {"uid": 0, "gid": 0},
        "parent": {"comm": "sh", "pid": 1, "tid": 1},
    }


def _runtime() -> dict[str, Any]:
    return {"containerId": "c1", "containerName": "app", "runtimeName": "containerd"}


def _exec(comm: str, pid: int, exe: str, args: str, *, error: str = "") -> dict[str, Any]:
    return {
        "args": args,
        "cwd": "/srv",
        "error": error,
        "exepath": exe,
        "file": exe,
        "parent_exepath": "/bin/sh",
        "proc": _proc(comm, pid),
        "runtime": _runtime(),
        "timestamp_raw": 1_700_000_000_000_000_000 + pid,
        "upper_layer": False,
    }


def _open(path: str, pid: int, *, error: str = "") -> dict[str, Any]:
    return {
        "error": error,
        "fd": 0 if error else 3,
        "flags": "O_RDONLY",
        "fname": path.rsplit("/", 1)[-1],
        "fpath": path,
        "mode": "----------",
        "proc": _proc("app", pid),
        "runtime": _runtime(),
        "timestamp_raw": 1_700_000_000_000_000_000 + pid,
    }


def _tcp(kind: str, pid: int, *, error: str = "") -> dict[str, Any]:
    return {
        "dst": {"addr": "10.0.0.9", "port": 5432, "proto": "TCP", "version": 4},
        "error": error,
        "proc": _proc("app", pid),
        "runtime": _runtime(),
        "src": {"addr": "10.0.0.5", "port": 40000 + pid, "proto": "TCP", "version": 4},
        "timestamp_raw": 1_700_000_000_000_000_000 + pid,
        "type": kind,
    }


def _cap(cap: str, pid: int, *, mntns: int = 4026532001, audit: int = 1) -> dict[str, Any]:
    return {
        "audit": audit,
        "cap": cap,
        "capable": True,
        "kstack": "[0]do_syscall_64; [1]entry_SYSCALL_64",
        "proc": _proc("app", pid, mntns),
        "runtime": _runtime(),
        "syscall": "SYS_SETUID",
        "timestamp_raw": 1_700_000_000_000_000_000 + pid,
    }


def _dns(pid: int) -> dict[str, Any]:
    return {
        "cwd": "/srv",
        "exepath": "/usr/bin/curl",
        "name": "example.com.",
        "proc": _proc("curl", pid),
        "qr": "Q",
        "qtype": "A",
        "runtime": _runtime(),
        "timestamp_raw": 1_700_000_000_000_000_000 + pid,
    }


DATASOURCE = {
    "trace_exec": "exec",
    "trace_open": "open",
    "trace_tcp": "tracetcp",
    "trace_dns": "dns",
    "trace_capabilities": "capabilities",
}

RECORDS: dict[str, list[dict[str, Any]]] = {
    "trace_exec": [
        _exec("nginx", 10, "/usr/sbin/nginx", "nginx\u00a0-g\u00a0daemon off;"),
        _exec("x", 11, "/dev/shm/x", "./x"),
        _exec("curl", 12, "/usr/bin/curl", "curl", error="ENOENT"),
    ],
    "trace_open": [
        _open("/etc/nginx/nginx.conf", 20),
        _open("/etc/shadow", 21, error="EACCES"),
    ],
    "trace_tcp": [
        _tcp("connect", 30),
        _tcp("accept", 31),
        _tcp("connect", 32, error="ECONNREFUSED"),
    ],
    "trace_dns": [_dns(40)],
    "trace_capabilities": [
        _cap("CAP_SETUID", 50),
        _cap("CAP_SETUID", 51),  # same container, same capability
        _cap("CAP_SETUID", 52, mntns=4026532999),  # another container
        _cap("CAP_NET_RAW", 53, audit=0),
    ],
}


def _capture(
    gadgets: tuple[str, ...] = tuple(RECORDS), header: dict[str, Any] | None = None
) -> Capture:
    lines = [CaptureLine(g, DATASOURCE[g], "", record) for g in gadgets for record in RECORDS[g]]
    return Capture(tuple(lines), header=header or {})


async def _run(
    replay_factory: Any,
    sock_path: Path,
    gadget: str,
    params: dict[str, str] | None = None,
    **server_kw: Any,
) -> tuple[Any, GadgetSource, list[dict[str, Any]], list[Any]]:
    server, address = await replay_factory(
        server_kw.pop("capture", None) or _capture((gadget,)),
        listen=f"unix://{sock_path}",
        **server_kw,
    )
    source = GadgetSource(settings_for(address, (gadget,), params=params or {}))
    raws: list[RawRecord] = []
    events: list[Any] = []
    await source.run(on_batch=events.extend, on_raw=raws.append)
    return server, source, [r.data for r in raws], events


# -- what the agent asks for ---------------------------------------------------------------


@pytest.mark.parametrize("gadget", sorted(DEFAULT_PARAMS))
async def test_a_default_run_sends_the_documented_params(
    replay_factory: Any, sock_path: Path, gadget: str
) -> None:
    server, source, _, _ = await _run(replay_factory, sock_path, gadget)
    expected = {p.key: p.value for p in DEFAULT_PARAMS[gadget]}
    assert server.run_params == [(gadget, expected)]
    assert source.degraded_params() == {}
    assert not source.stats.params_unsupported


def test_the_table_asks_for_paths_and_no_kernel_stacks() -> None:
    sent = {g: {p.key: p.value for p in ps} for g, ps in DEFAULT_PARAMS.items()}
    for gadget in ("trace_exec", "trace_open", "trace_dns"):
        assert sent[gadget][EBPF + "paths"] == "true"
    assert sent["trace_capabilities"][EBPF + "collect-kstack"] == "false"
    # Every default is one the replay server's (IG v0.55's) gadget declares.
    for gadget, params in sent.items():
        assert set(params) <= set(GADGET_PARAMS[gadget]), gadget


async def test_user_params_override_the_defaults_and_say_what_is_lost(
    replay_factory: Any, sock_path: Path
) -> None:
    with capture_logs() as logs:
        server, source, raws, events = await _run(
            replay_factory, sock_path, "trace_exec", {EBPF + "paths": "false"}
        )
    assert server.run_params == [
        ("trace_exec", {EBPF + "paths": "false", EBPF + "ignore-failed": "true"})
    ]
    # IG leaves the path fields empty: executables are unresolved, never argv[0].
    assert {r["exepath"] for r in raws} == {""}
    assert [e.path for e in events] == [UNRESOLVED_PREFIX + "nginx", UNRESOLVED_PREFIX + "./x"]
    assert source.stats.unresolved[("trace_exec", "exepath")] == 2
    degraded = source.degraded_params()["trace_exec"]
    assert degraded["overridden"] == [EBPF + "paths"]
    assert "exepath" in degraded["emptyFields"]
    assert {"R0001", "R1000"} <= set(degraded["degradedRules"])
    warnings = [e for e in logs if e["event"] == "gadget runs without params gadgetwatch relies on"]
    assert len(warnings) == 1
    assert warnings[0]["overridden"] == [EBPF + "paths"]
    unresolved = [e for e in logs if e["event"].startswith("exec events arrive without exepath")]
    assert len(unresolved) == 1  # once, not once per event
    assert "R0001" in unresolved[0]["degraded_rules"]


async def test_an_older_ig_without_the_param_degrades_visibly(
    replay_factory: Any, sock_path: Path
) -> None:
    """A server whose trace_exec does not declare `paths`: the key is not sent, the events come
    without exepath, and the loss is logged, counted and reported for /readyz."""
    with capture_logs() as logs:
        server, source, _, events = await _run(
            replay_factory,
            sock_path,
            "trace_exec",
            gadget_params={"trace_exec": (EBPF + "ignore-failed",)},
        )
    assert server.run_params == [("trace_exec", {EBPF + "ignore-failed": "true"})]
    assert all(e.path.startswith(UNRESOLVED_PREFIX) for e in events)
    assert source.stats.params_unsupported == {("trace_exec", EBPF + "paths"): 1}
    assert source.degraded_params()["trace_exec"]["unsupported"] == [EBPF + "paths"]
    assert any(
        e["event"] == "gadget runs without params gadgetwatch relies on"
        and e["unsupported"] == [EBPF + "paths"]
        for e in logs
    )


def test_plan_keeps_user_keys_only_where_declared() -> None:
    plan = plan_params(
        "trace_tcp",
        {EBPF + "connect-only": "true", EBPF + "paths": "true"},
        [EBPF + "connect-only", EBPF + "accept-only", EBPF + "failure-only"],
    )
    assert plan.sent == {
        EBPF + "accept-only": "false",
        EBPF + "failure-only": "false",
        EBPF + "connect-only": "true",
    }
    assert plan.user_keys == {EBPF + "connect-only"}
    assert [p.key for p in plan.overridden] == [EBPF + "connect-only"]
    # A server that reports no params gets everything (IG ignores unknown keys).
    assert plan_params("trace_exec", {}, None).sent == {
        EBPF + "paths": "true",
        EBPF + "ignore-failed": "true",
    }


# -- the replay server honours each param like IG ------------------------------------------


async def test_paths_false_empties_the_path_fields_of_exec_open_and_dns(
    replay_factory: Any, sock_path: Path
) -> None:
    off = {EBPF + "paths": "false"}
    _, _, execs, _ = await _run(replay_factory, sock_path, "trace_exec", off)
    assert {(r["exepath"], r["cwd"], r["parent_exepath"], r["file"]) for r in execs} == {
        ("", "", "", "")
    }
    _, _, opens, open_events = await _run(replay_factory, sock_path, "trace_open", off)
    assert {r["fpath"] for r in opens} == {""}
    # The raw names remain, in normal form: without `paths` IG sends no cwd, so a relative name
    # is joined to / (gadgetclient.pathnorm; a relative spelling never escapes a path rule).
    assert {e.path for e in open_events} == {"/nginx.conf", "/shadow"}
    _, _, dns, _ = await _run(replay_factory, sock_path, "trace_dns", off)
    assert (dns[0]["exepath"], dns[0]["cwd"], dns[0]["name"]) == ("", "", "example.com.")


async def test_paths_true_keeps_them(replay_factory: Any, sock_path: Path) -> None:
    _, _, execs, events = await _run(replay_factory, sock_path, "trace_exec")
    assert [r["exepath"] for r in execs] == ["/usr/sbin/nginx", "/dev/shm/x"]
    assert [e.path for e in events] == ["/usr/sbin/nginx", "/dev/shm/x"]


@pytest.mark.parametrize(("value", "errors"), [("true", ["", ""]), ("false", ["", "", "ENOENT"])])
async def test_ignore_failed_filters_failed_execs(
    replay_factory: Any, sock_path: Path, value: str, errors: list[str]
) -> None:
    _, _, raws, _ = await _run(
        replay_factory, sock_path, "trace_exec", {EBPF + "ignore-failed": value}
    )
    assert [r["error"] for r in raws] == errors


@pytest.mark.parametrize(("value", "paths"), [("true", ["/etc/shadow"]), ("false", None)])
async def test_failed_sends_only_failed_opens(
    replay_factory: Any, sock_path: Path, value: str, paths: list[str] | None
) -> None:
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_open", {EBPF + "failed": value})
    assert [r["fpath"] for r in raws] == (paths or ["/etc/nginx/nginx.conf", "/etc/shadow"])


@pytest.mark.parametrize(
    ("param", "kept"),
    [
        ("connect-only", [("connect", ""), ("connect", "ECONNREFUSED")]),
        ("accept-only", [("accept", "")]),
        ("failure-only", [("connect", "ECONNREFUSED")]),
    ],
)
async def test_tcp_filters(
    replay_factory: Any, sock_path: Path, param: str, kept: list[tuple[str, str]]
) -> None:
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_tcp", {EBPF + param: "true"})
    assert [(r["type"], r["error"]) for r in raws] == kept


async def test_tcp_default_sends_every_direction(replay_factory: Any, sock_path: Path) -> None:
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_tcp")
    assert len(raws) == 3


async def test_capabilities_defaults_unique_and_no_kstack(
    replay_factory: Any, sock_path: Path
) -> None:
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_capabilities")
    # unique: one event per (container, capability); collect-kstack=false: no stacks.
    assert [(r["cap"], r["proc"]["pid"]) for r in raws] == [
        ("CAP_SETUID", 50),
        ("CAP_SETUID", 52),
        ("CAP_NET_RAW", 53),
    ]
    assert {r["kstack"] for r in raws} == {""}


async def test_capabilities_with_igs_defaults_and_audit_only(
    replay_factory: Any, sock_path: Path
) -> None:
    ig_defaults = {EBPF + "unique": "false", EBPF + "collect-kstack": "true"}
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_capabilities", ig_defaults)
    assert len(raws) == 4
    assert all(r["kstack"] for r in raws)
    audit = {**ig_defaults, EBPF + "audit-only": "true"}
    _, _, raws, _ = await _run(replay_factory, sock_path, "trace_capabilities", audit)
    assert [r["cap"] for r in raws] == ["CAP_SETUID", "CAP_SETUID", "CAP_SETUID"]


async def test_a_client_asking_for_what_the_recording_lacks_is_warned(
    replay_factory: Any, sock_path: Path
) -> None:
    """The capture says trace_exec was recorded without paths: a client asking for paths gets a
    warning naming the param, and the capture as it is."""
    stripped = [
        {**r, "exepath": "", "cwd": "", "parent_exepath": "", "file": ""}
        for r in RECORDS["trace_exec"][:2]
    ]
    capture = Capture(
        tuple(CaptureLine("trace_exec", "exec", "", r) for r in stripped),
        header={"params": {"trace_exec": {EBPF + "paths": "false"}}},
    )
    with capture_logs() as logs:
        _, _, raws, _ = await _run(replay_factory, sock_path, "trace_exec", capture=capture)
    warnings = [e for e in logs if e["event"] == "replay params differ from the recording"]
    assert len(warnings) == 1
    assert warnings[0]["params"] == [EBPF + "paths=true"]
    assert warnings[0]["recorded"] == [EBPF + "paths=false"]
    assert len(raws) == 2


def test_shaping_is_identity_for_the_recordings_own_params() -> None:
    for gadget in DATASOURCE:
        have = recorded(gadget, {})
        assert shaping(gadget, have, have).identity
    # IG's own defaults on a full recording change trace_exec (paths off, failed execs dropped).
    want = effective("trace_exec", {})
    assert want == {"paths": "false", "ignore-failed": "true"}
    shape = shaping("trace_exec", want, recorded("trace_exec", {}))
    assert not shape.identity
    assert shape.apply(RECORDS["trace_exec"][2]) is None
    assert shape.apply(RECORDS["trace_exec"][0])["exepath"] == ""


def test_the_docs_show_the_table_as_the_code_has_it() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gadgetclient.md").read_text()
    assert params_table() in doc
