"""IG samples: capture -> replay server (IG's binary layout over gRPC) -> record, exactly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gadgetclient.capture import CAPTURE_VERSION, Capture, read_capture
from gadgetclient.events import DnsEvent, ExecEvent, TcpEvent
from gadgetclient.source import GadgetSource, RawRecord
from gadgetwatch.cli import main
from tests.gadgetclient.conftest import sample_lines, settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webshop-intrusion.capture.jsonl"


#: Params under which IG sends everything the samples hold: failed execs (gadgetwatch's default
#: `ignore-failed=true` filters them), kernel stacks and repeated capabilities (its defaults
#: `collect-kstack=false`, `unique=true` drop them). A byte-exact round trip asks for all of it.
EVERYTHING = {
    "operator.oci.ebpf.ignore-failed": "false",
    "operator.oci.ebpf.collect-kstack": "true",
    "operator.oci.ebpf.unique": "false",
}


def _key(gadget: str, datasource: str, data: Any) -> tuple[str, str, str]:
    # json.dumps without sort_keys keeps the decoder's key order: order is compared too.
    return (gadget, datasource, json.dumps(data, ensure_ascii=False))


async def _record_all(
    address: str, gadgets: tuple[str, ...], params: dict[str, str] | None = None
) -> tuple[list[RawRecord], list[Any]]:
    source = GadgetSource(settings_for(address, gadgets, params=params or {}))
    raws: list[RawRecord] = []
    events: list[Any] = []
    await source.run(on_batch=events.extend, on_raw=raws.append)
    assert not source.stats.dropped
    assert not source.stats.lost
    return raws, events


def _sorted_lines(lines: Any) -> list[tuple[str, str, str]]:
    return sorted(_key(line.gadget, line.datasource, _sorted(line.data)) for line in lines)


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data, key=lambda k: k.encode())}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


async def test_samples_round_trip_over_unix_socket(replay_factory: Any, sock_path: Path) -> None:
    lines = sample_lines()
    capture = Capture(tuple(lines))
    server, address = await replay_factory(capture, listen=f"unix://{sock_path}")
    assert server.unrepresentable == 0
    raws, events = await _record_all(address, tuple(capture.gadgets()), EVERYTHING)
    got = sorted(_key(r.gadget, r.datasource, r.data) for r in raws)
    assert got == _sorted_lines(lines)
    kinds = {type(e) for e in events}
    assert {ExecEvent, TcpEvent, DnsEvent} <= kinds


async def test_samples_round_trip_over_tcp(replay_factory: Any) -> None:
    lines = [line for line in sample_lines() if line.gadget == "trace_tcp"]
    _, address = await replay_factory(Capture(tuple(lines)), listen="tcp://127.0.0.1:0")
    raws, events = await _record_all(address, ("trace_tcp",))
    assert sorted(_key(r.gadget, r.datasource, r.data) for r in raws) == _sorted_lines(lines)
    # The 2024 layout: flat comm/pid, numeric proto.
    tcp = [e for e in events if isinstance(e, TcpEvent)]
    assert {e.proto for e in tcp} == {"TCP"}
    assert {e.process.comm for e in tcp} == {"wget", "curl"}


def test_record_command_reproduces_the_capture(tmp_path: Path, sock_path: Path) -> None:
    lines = sample_lines()
    capture_file = tmp_path / "in.jsonl"
    capture_file.write_text(
        "".join(
            json.dumps(
                {
                    "gadget": line.gadget,
                    "datasource": line.datasource,
                    "node": "",
                    "data": line.data,
                }
            )
            + "\n"
            for line in lines
        )
    )

    async def scenario() -> int:
        from gadgetclient.replay import ReplayServer

        server = ReplayServer(read_capture(capture_file), listen=f"unix://{sock_path}")
        address = await server.start()
        try:
            gadgets = ",".join(sorted({line.gadget for line in lines}))
            out = tmp_path / "out.jsonl"
            rc = await asyncio.to_thread(
                main,
                ["record", "--target", address, "--gadget", gadgets, "-o", str(out)]
                + [f"--param={k}={v}" for k, v in EVERYTHING.items()],
            )
        finally:
            await server.stop(None)
        return rc

    assert asyncio.run(scenario()) == 0
    recorded = read_capture(tmp_path / "out.jsonl")
    assert recorded.header["gadgetwatchCapture"] == CAPTURE_VERSION
    # The header says what each gadget ran with: gadgetwatch's defaults and the user's params.
    ran = recorded.header["params"]
    assert ran["trace_exec"]["operator.oci.ebpf.paths"] == "true"
    assert ran["trace_exec"]["operator.oci.ebpf.ignore-failed"] == "false"
    assert ran["trace_open"]["operator.oci.ebpf.paths"] == "true"
    assert ran["trace_dns"] == {"operator.oci.ebpf.paths": "true"}
    assert _sorted_lines(recorded.lines) == _sorted_lines(lines)
    # Lines are written with the decoder's byte-wise sorted keys, like `ig run -o json`.
    for line in recorded.lines:
        assert json.dumps(line.data) == json.dumps(_sorted(line.data))


async def test_example_capture_round_trips_and_maps(replay_factory: Any, sock_path: Path) -> None:
    capture = read_capture(EXAMPLE)
    server, address = await replay_factory(capture, listen=f"unix://{sock_path}")
    assert server.unrepresentable == 0
    # One data source per gadget: the example uses IG's real, uniform layouts.
    assert all(len(g.info.data_sources) == 1 for g in server.gadgets.values())
    raws, events = await _record_all(address, tuple(capture.gadgets()), EVERYTHING)
    assert sorted(_key(r.gadget, r.datasource, r.data) for r in raws) == _sorted_lines(
        capture.lines
    )
    execs = [e for e in events if isinstance(e, ExecEvent)]
    miner = next(e for e in execs if e.path == "/dev/shm/kworker")
    assert miner.upper_layer
    assert miner.tty
    assert miner.container.owner_name == "webshop-6f7c9d8b5d"
    assert miner.args[:3] == ("/dev/shm/kworker", "-o", "pool.supportxmr.com:3333")
    assert miner.container.labels()["app"] == "webshop"
    dns = {e.name for e in events if isinstance(e, DnsEvent)}
    assert {"api.stripe.com", "pool.supportxmr.com"} <= dns
