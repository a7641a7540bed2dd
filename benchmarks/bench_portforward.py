"""The `k8s://` path at a busy node's rate: is the port-forward bridge the bottleneck?

    .venv/bin/python benchmarks/bench_portforward.py [--rate 16000] [--seconds 8]

A `k8s://` target reaches each IG pod through `gadgetclient.k8s.Bridge`: a local TCP listener
whose connections are pumped, by two Python threads, into a `pods/portforward` WebSocket of the
official client. Here the API server is the project's stand-in (`tests/standins`, in this
process, forwarding to a unix socket) and IG is the grpc-go stand-in (`tests/igfixture`, another
process) sending trace_exec events at `--rate`. The same stream is received directly over the
unix socket and through the bridge, with the native transport; printed per path: events/s
received, events lost (IG-side seq gaps and drops), and this process's CPU µs/event (through
the bridge that includes the stand-in API server's side of the WebSocket, which a real cluster
runs elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gadgetclient.config import GadgetClientSettings  # noqa: E402
from gadgetclient.source import GadgetSource  # noqa: E402
from gadgetclient.stats import LossReason  # noqa: E402
from tests import igfixture  # noqa: E402
from tests.gadgetclient.test_h2_conformance import _exec_capture  # noqa: E402
from tests.standins.fixtures import make_kube_api  # noqa: E402

#: Distinct events in the fixture's file; `-loops` repeats them for the run's length.
DISTINCT = 2000


def _cluster(kube: Any, address: str) -> None:
    kube.add(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "gadget", "namespace": "ig", "labels": {"k8s-app": "gadget"}},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "gadget"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "gadget"}},
                    "spec": {"containers": [{"name": "gadget", "image": "ig"}]},
                },
            },
        }
    )
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "gadget-a", "namespace": "ig", "labels": {"k8s-app": "gadget"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "gadget", "image": "ig"}]},
            "status": {"phase": "Running"},
        }
    )
    kube.set_portforward_backend("ig", "gadget-a", address)


def measure(target: str, events_dir: Path, rate: int, loops: int, api: Any = None) -> str:
    with igfixture.running(
        events_dir,
        listen=f"unix:{events_dir}/ig.sock",
        args=["-rate", str(rate), "-loops", str(loops)],
    ) as fx:
        if api is not None:
            _cluster(api[0], fx.target)
        settings = GadgetClientSettings(
            target=target if api else fx.target, gadgets=("trace_exec",)
        )
        source = GadgetSource(settings, k8s_api_client=api[1] if api else None)
        got = 0

        def on_batch(batch: Any) -> None:
            nonlocal got
            got += len(batch)

        t, c = time.perf_counter(), time.process_time()
        asyncio.run(source.run(on_batch=on_batch))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    stats = source.stats
    lost = sum(stats.lost.values())
    gaps = stats.lost.get(("trace_exec", LossReason.SEQ_GAP), 0)
    return (
        f"{got / wall:8.0f} ev/s  received {got}/{DISTINCT * loops}  lost {lost} "
        f"(seq gaps {gaps})  CPU {cpu / max(got, 1) * 1e6:.1f} µs/event"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=16_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    loops = max(1, int(args.rate * args.seconds) // DISTINCT)
    with tempfile.TemporaryDirectory(prefix="gwpf-", dir="/tmp") as d:
        events_dir = Path(d)
        igfixture.write_events(events_dir, _exec_capture(DISTINCT))
        print(f"trace_exec at {args.rate} events/s for {args.seconds:.0f} s, native transport")
        print(f"  unix socket direct : {measure('', events_dir, args.rate, loops)}", flush=True)
        kube = make_kube_api()
        try:
            via = measure("k8s://ig", events_dir, args.rate, loops, (kube, kube.api_client()))
        finally:
            kube.stop()
        print(f"  k8s:// port-forward: {via}")


if __name__ == "__main__":
    main()
