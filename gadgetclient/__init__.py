"""gadgetclient: Inspektor Gadget's gRPC API in, typed events out.

Public API (what the composition root uses; nothing here exposes protobuf types):

* `gadgetclient.source.GadgetSource(settings, stats=...)`: `await run(on_batch, on_raw=None)`,
  `await stop()`, `ready` (an `asyncio.Event`), `stats` (`StreamStats`);
* `gadgetclient.replay.ReplayServer(capture, listen=..., rate=None, ordered=True)`:
  `await start() -> address`, `await stop()`; ordered mode releases the payloads of all gadget
  streams in capture order (`timeline.py`); `gadgetclient.capture.read_capture(path,
  gadget=None)`, `CaptureWriter`;
* `gadgetclient.config.GadgetClientSettings`; `gadgetclient.errors.GadgetClientError` and its
  subclasses; `gadgetclient.events` (the typed events); `gadgetclient.stats.StreamStats`.

Contracts:

* A source MUST NOT let a per-event problem escape: undecodable payloads, unknown data sources,
  payloads before GadgetInfo, unknown event types and unmappable records are counted in
  `StreamStats.dropped` by (gadget, `DropReason`) and logged; `seq` gaps and IG's "lost N
  samples" logs are counted in `StreamStats.lost` by (gadget, `LossReason`).
* A source MUST raise only `GadgetClientError` subclasses, each one line: `TargetError` (bad or
  unreachable endpoint), `SessionError` (IG refused: version, gadget, params).
* Failed streams MUST be retried with exponential back-off and jitter and counted in
  `StreamStats.reconnects`; refusals are not retried.
* Decoded records MUST equal what `ig run <gadget> -o json` prints for the same payload.
* Only `k8s.py` imports `kubernetes`; only `wire.py`, `sessions.py`, `streaming.py`,
  `targets.py` and `replay.py` touch gRPC or protobuf.
"""
