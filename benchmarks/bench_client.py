"""Client-side cost of consuming IG streams: gRPC receive, decode, typed mapping.

    .venv/bin/python benchmarks/bench_client.py [--events 40000] [--repeat 3]

A server process streams pre-encoded payloads of one layout over a unix socket (as fast as it
can); a separate client process measures its own CPU time (`time.process_time`, so a slow server
does not distort it) per event and its wall-clock rate, for:

  (a) gRPC receive only            (b) receive + decode to dict
  (c) receive + typed events       (d) decode alone from recorded payloads, no gRPC:
                                       dict, typed via the dict (the record path) and typed
                                       straight from the slots (`slot_mapping.SlotMapper`)

(c) is what `GadgetSource` does when no raw records are wanted: payload -> slots -> typed event.
Every figure is the median of `--repeat` runs, all in one invocation.

for a trace_exec-like layout (IG sends the whole eBPF struct: a ~7 KB static container with
args[5120] and four paths[512]) and a trace_open-like one (~1 KB). Receive-side variants: the
asyncio API vs the sync API, `GRPC_POLL_STRATEGY` (set per client process, since gRPC reads it
at import) and channel options (`OPTION_SETS`). Layouts come from
`examples/webshop-intrusion.capture.jsonl` through the replay server's encoder, so they are the
layouts the replay server serves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTURE = ROOT / "examples" / "webshop-intrusion.capture.jsonl"
GADGETS = {"exec": "trace_exec", "open": "trace_open"}
#: Receive-side channel option sets tried for (a), by name.
OPTION_SETS: dict[str, list[tuple[str, Any]]] = {
    "default": [],
    # A larger initial stream window / read chunk: fewer WINDOW_UPDATE round trips and reads.
    "window": [
        ("grpc.http2.lookahead_bytes", 8 << 20),
        ("grpc.experimental.tcp_read_chunk_size", 1 << 20),
    ],
    # No BDP probing pings (their work is done by the same client threads).
    "nobdp": [("grpc.http2.bdp_probe", 0)],
}


def _layout(kind: str) -> tuple[Any, list[bytes]]:
    from gadgetclient.capture import read_capture
    from gadgetclient.replay import compile_gadget

    capture = read_capture(CAPTURE)
    gadget = GADGETS[kind]
    lines = [line for line in capture.lines if line.gadget == gadget]
    compiled = compile_gadget(gadget, lines, version="0.55.1")
    payloads = [p.payload for p in compiled.packets]
    return compiled.info, payloads


def serve(sock: str, kind: str, count: int) -> None:
    """Server process: GadgetInfo, then `count` payloads, for every RunGadget call."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from gadgetclient.wire import gadget_info_to_proto
    from protos import gadget_service_pb2 as pb
    from protos import gadget_service_pb2_grpc as pb_grpc

    info, payloads = _layout(kind)
    info_bytes = gadget_info_to_proto(info).SerializeToString()
    events = [
        pb.GadgetEvent(type=0, seq=i + 1, payload=payloads[i % len(payloads)], dataSourceID=0)
        for i in range(count)
    ]

    class Servicer(pb_grpc.GadgetManagerServicer):  # type: ignore[misc]
        def RunGadget(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
            next(request_iterator)
            yield pb.GadgetEvent(type=4, payload=info_bytes)
            yield from events

    server = grpc.server(ThreadPoolExecutor(4))
    pb_grpc.add_GadgetManagerServicer_to_server(Servicer(), server)
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def client(sock: str, kind: str, mode: str, api: str, opts: str = "default") -> dict[str, float]:
    """Client process: run one stream to its end and report CPU µs/event and events/s."""
    import grpc

    from gadgetclient.decoding import GadgetDecoder
    from gadgetclient.slot_mapping import SlotMapper
    from gadgetclient.wire import parse_gadget_info, run_request
    from protos import gadget_service_pb2_grpc as pb_grpc

    mapper = SlotMapper()
    decoder: GadgetDecoder | None = None
    n = 0
    options = [("grpc.max_receive_message_length", 64 << 20), *OPTION_SETS[opts]]
    req = run_request(image=GADGETS[kind], params={}, log_level=4, timeout_ns=0)

    def handle(ev: Any) -> None:
        nonlocal decoder, n
        if ev.type == 4:
            decoder = GadgetDecoder(parse_gadget_info(ev.payload))
            return
        n += 1
        if mode == "a":
            _ = ev.payload
            return
        assert decoder is not None
        ds = decoder.by_id[ev.dataSourceID]
        if mode == "c":
            to_event = mapper.for_decoder(ds)
            for slots in ds.elements(ev.payload):
                to_event(slots, "")
        else:
            ds.decode(ev.payload)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if api == "sync":
        import threading

        done = threading.Event()

        def reqs() -> Any:
            yield req
            done.wait()

        with grpc.insecure_channel(f"unix://{sock}", options=options) as ch:
            for ev in pb_grpc.GadgetManagerStub(ch).RunGadget(reqs()):
                handle(ev)
            done.set()
    else:
        import asyncio

        async def run() -> None:
            stop = asyncio.Event()

            class Reqs:
                sent = False

                def __aiter__(self) -> Any:
                    return self

                async def __anext__(self) -> Any:
                    if not self.sent:
                        self.sent = True
                        return req
                    await stop.wait()
                    raise StopAsyncIteration

            async with grpc.aio.insecure_channel(f"unix://{sock}", options=options) as ch:
                async for ev in pb_grpc.GadgetManagerStub(ch).RunGadget(Reqs()):
                    handle(ev)
                stop.set()

        asyncio.run(run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"events": n, "cpu_us": cpu / n * 1e6, "rate": n / wall}


def decode_only(kind: str, count: int) -> dict[str, float]:
    """(d): decode recorded payloads in a loop, no gRPC: dict, typed via dict, typed direct."""
    from gadgetclient.decoding import GadgetDecoder
    from gadgetclient.mapping import RecordMapper
    from gadgetclient.slot_mapping import SlotMapper

    info, payloads = _layout(kind)
    ds = GadgetDecoder(info).by_id[0]
    mapper = RecordMapper()
    to_event = SlotMapper().for_decoder(ds)
    out: dict[str, float] = {}
    for label in ("dict", "via_dict", "typed"):
        cpu0 = time.process_time()
        for i in range(count):
            payload = payloads[i % len(payloads)]
            if label == "typed":
                for slots in ds.elements(payload):
                    to_event(slots, "")
            elif label == "via_dict":
                for r in ds.decode(payload):
                    mapper.map(ds.name, r, "")
            else:
                ds.decode(payload)
        cpu = time.process_time() - cpu0
        out[label] = cpu / count * 1e6
    out["container_bytes"] = float(
        len(info.data_sources[0].fields)
        and max(f.offs + f.size for f in info.data_sources[0].fields if f.payload_index == 0)
    )
    return out


def _run_client(
    sock: str, kind: str, mode: str, api: str, poll: str | None, opts: str = "default"
) -> dict[str, float]:
    env = dict(os.environ)
    if poll:
        env["GRPC_POLL_STRATEGY"] = poll
    out = subprocess.run(
        [sys.executable, __file__, "--client", sock, kind, mode, api, opts],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _fig(r: dict[str, float]) -> str:
    return f"{r['cpu_us']:7.1f} µs/event {r['rate']:9.0f} ev/s"


#: Receive variants of (a): (label, api, poll strategy, option set).
VARIANTS = (
    ("aio", "aio", None, "default"),
    ("sync", "sync", None, "default"),
    ("aio+poll", "aio", "poll", "default"),
    ("sync+poll", "sync", "poll", "default"),
    ("aio+window", "aio", None, "window"),
    ("aio+nobdp", "aio", None, "nobdp"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--serve", nargs=3, metavar=("SOCK", "KIND", "COUNT"))
    parser.add_argument("--client", nargs=5, metavar=("SOCK", "KIND", "MODE", "API", "OPTS"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    if args.client:
        print(json.dumps(client(*args.client)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    print(
        f"events per run: {args.events}; median of {args.repeat} runs; "
        "CPU µs/event of the client process; events/s wall; load "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    for kind in ("exec", "open"):
        sock = str(tmp / f"{kind}.sock")
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", sock, kind, str(args.events)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        try:
            d = _median([decode_only(kind, args.events) for _ in range(args.repeat)])
            print(
                f"\n== {GADGETS[kind]}-like layout (static container {int(d['container_bytes'])} B)"
            )
            results: dict[str, dict[str, float]] = {}
            for label, api, poll, opts in VARIANTS:
                runs = [_run_client(sock, kind, "a", api, poll, opts) for _ in range(args.repeat)]
                results[label] = _median(runs)
                print(f"(a) receive only      [{label:10}] {_fig(results[label])}")
            best = min(results, key=lambda k: results[k]["cpu_us"])
            _, api, poll, opts = next(v for v in VARIANTS if v[0] == best)
            rounds = [
                (
                    _run_client(sock, kind, "a", api, poll, opts),
                    _run_client(sock, kind, "b", api, poll, opts),
                    _run_client(sock, kind, "c", api, poll, opts),
                )
                for _ in range(args.repeat)
            ]
            a, b, c = (_median([r[i] for r in rounds]) for i in range(3))
            print(f"(a) receive only      [{best:10}] {_fig(a)}  (again, next to b and c)")
            print(f"(b) receive + dict    [{best:10}] {_fig(b)}")
            print(f"(c) receive + typed   [{best:10}] {_fig(c)}")
            print(f"    (c)-(a) = {c['cpu_us'] - a['cpu_us']:+.1f} µs/event (goal <= 15)")
            print(
                f"(d) decode only, no gRPC: dict {d['dict']:.1f} µs/event; typed via dict "
                f"{d['via_dict']:.1f}; typed {d['typed']:.1f} µs/event = "
                f"{1e6 / d['typed']:.0f} ev/s (goal <= 10 µs)"
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
