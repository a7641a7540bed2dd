"""Cyclic garbage collector thresholds for the agent process (and each worker process).

The agent's per-event objects (typed events, slot tuples, memo keys) die by reference counting,
so they never reach the cyclic collector. What does count against CPython's generation-0
threshold (net container allocations, default 700) is what stays alive for a while: events
queued in the pipeline's batches and the growth of the intern tables, profiles and memos. At
16k events/s that started a young collection every few hundred events, each one walking the
batches in flight again, and promoted them into older generations that full collections then
walked as well. The agent creates no reference cycles on the event path, so collecting less
often frees nothing later that matters; what it saves was measured with
`benchmarks/bench_pipeline.py` (see `docs/gadgetclient.md`).
"""

from __future__ import annotations

import gc

#: Net container allocations before a young collection: ~70x CPython's 700, i.e. a few batches
#: of events in flight plus cache growth, instead of part of one batch.
GEN0_THRESHOLD = 50_000
#: Young collections per middle one (CPython: 10): middle collections walk everything the
#: young ones promoted, mostly batches that are already processed and gone.
GEN1_THRESHOLD = 20
#: Middle collections per full one (CPython: 10). CPython also waits until a quarter of the
#: long-lived objects are new, so a steady agent (profiles learned) rarely collects fully.
GEN2_THRESHOLD = 100


def tune_gc() -> None:
    """Set the agent's collector thresholds (once, before the event loop starts)."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


__all__ = ["GEN0_THRESHOLD", "GEN1_THRESHOLD", "GEN2_THRESHOLD", "tune_gc"]
