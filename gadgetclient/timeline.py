"""`ReplayTimeline`: one clock for every concurrently running replay run, in capture order.

A capture is one chronological timeline: its lines interleave the gadgets in the order IG
delivered them. Live IG streams are near real time, so a client sees exec, open, tcp, ... events
of the same second together. A replay that let each `RunGadget` stream go as fast as it can
would not: one stream can be minutes of event time ahead of another, and a consumer whose clock
is event time (the profiler's learning period, rolling windows) then sees time jump. The
timeline restores the capture's order across streams:

* every packet carries its capture position (the index of its line in the capture);
* a run may send its next packet only when no other *active* run has an earlier pending
  packet (`turn`); a run holds its turn until its write has been handed to gRPC, then announces
  its next position (`pass_on`), which lets the run with the earliest packet start its write
  behind it on the same connection, so the transport carries payloads in capture order while
  writes of different streams overlap (waiting for each write to complete before releasing the
  next capped a replay at ~4-5k payloads/s whatever the CPU); runs that end (exhausted,
  stopped, timed out) `leave`;
* the run holding the turn keeps it, without waiting or waking anyone, for all its consecutive
  packets that are still earliest (`grant`: a run of capture lines of the same gadget, e.g. a
  DNS query and its response): the others' pending positions cannot move while they wait, so
  the bound computed when the turn was taken stays valid until a run joins (which resets it).
  The clock costs one task switch per change of gadget, not per packet;
* start: runs `join` and wait until every gadget of the capture has a run, bounded by
  `start_wait` (a client that runs only some gadgets still gets its events after that, with
  one log line naming the gadgets that never came); later runs (a reconnect, the next
  advise_seccomp window) join at the playhead: they get the packets from the current position;
* flush-on-stop packets (advise_seccomp's arrays) are delivered at their capture position and
  consumed once (`take`), like a map that each flush drains;
* `rate` paces the *total* packets per second across runs;
* when the last active run leaves, the timeline rewinds: the next client replays the capture
  from the start, as with an unordered server.

Everything here runs on the server's event loop; no locks are needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

import structlog

log = structlog.get_logger(__name__)

#: Pending position of a run with nothing more to send (it blocks nobody).
DONE = 1 << 62
#: Default bound (seconds) on the start barrier: every gadget of a client that runs them all
#: starts within milliseconds of the first; five seconds absorbs a slow client without making a
#: client that runs only some gadgets wait long.
DEFAULT_START_WAIT = 5.0


class ReplayTimeline:
    """The shared clock of an ordered replay server (see the module docstring)."""

    def __init__(
        self,
        gadgets: Collection[str],
        *,
        start_wait: float = DEFAULT_START_WAIT,
        rate: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gadgets = frozenset(gadgets)
        self.start_wait = start_wait
        self.rate = rate if rate and rate > 0 else None
        self._monotonic = monotonic
        #: The playhead: the capture position after the last packet released.
        self.position = 0
        #: Packets released in this session (for pacing).
        self.released = 0
        self._pending: dict[object, int] = {}
        self._waiters: dict[object, asyncio.Future[None]] = {}
        self._arrived: set[str] = set()
        self._open: asyncio.Event | None = None
        self._started_at = 0.0
        self._taken: set[tuple[str, int]] = set()
        #: The run holding the turn and the earliest pending position of every other run when
        #: it took it: its packets up to that bound are earliest (`grant`).
        self._holder: object | None = None
        self._bound = -1

    # -- membership --------------------------------------------------------------------------

    async def join(self, run: object, gadget: str, first: int) -> None:
        """Register `run` (its first pending position is `first`) and pass the start barrier."""
        self._pending[run] = first
        self._holder = None  # the newcomer may be earlier than the holder's bound
        self._arrived.add(gadget)
        if self._open is None:
            self._open = asyncio.Event()
        if self._open.is_set():
            return
        if self._arrived >= self.gadgets:
            self._start()
            return
        try:
            await asyncio.wait_for(self._open.wait(), self.start_wait)
        except TimeoutError:
            if not self._open.is_set():
                log.warning(
                    "ordered replay: not every gadget of the capture has a run, "
                    "proceeding with those present",
                    missing=sorted(self.gadgets - self._arrived),
                    present=sorted(self._arrived),
                    waited_s=self.start_wait,
                )
                self._start()

    def _start(self) -> None:
        assert self._open is not None
        self._started_at = self._monotonic()
        self._open.set()

    def leave(self, run: object) -> None:
        """`run` ended (or stops): it no longer holds anyone back. The last one rewinds."""
        self._pending.pop(run, None)
        if run is self._holder:
            self._holder = None
        waiter = self._waiters.pop(run, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._pending:
            self._rewind()
        else:
            self._wake()

    def _rewind(self) -> None:
        self.position = 0
        self.released = 0
        self._arrived.clear()
        self._open = None
        self._holder = None
        self._taken.clear()

    @property
    def active(self) -> int:
        return len(self._pending)

    # -- ordering ----------------------------------------------------------------------------

    async def turn(self, run: object, position: int) -> bool:
        """Wait until `run` may send the packet at `position`; False when it left meanwhile.

        The run keeps the turn until it calls `pass_on` or `turn` again (or `leave`), so its
        write is started before any later packet is released.
        """
        if self.grant(run, position):
            return True
        pending = self._pending
        if run not in pending:
            return False
        pending[run] = position
        if self._holder is run:
            self._holder = None
        self._wake()
        while position > min(pending.values()):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[run] = waiter
            try:
                await waiter
            finally:
                if self._waiters.get(run) is waiter:
                    del self._waiters[run]
            if run not in pending:
                return False
        self._holder = run
        self._bound = min((p for r, p in pending.items() if r is not run), default=DONE)
        if position >= self.position:
            self.position = position + 1
        self.released += 1
        return True

    def grant(self, run: object, position: int) -> bool:
        """The turn for `run`'s next packet without waiting, if it holds the turn and the packet
        is still earliest; False means: call `turn`."""
        if run is not self._holder or position > self._bound:
            return False
        self._pending[run] = position
        if position >= self.position:
            self.position = position + 1
        self.released += 1
        return True

    def pass_on(self, run: object, position: int) -> None:
        """`run` is about to hand its granted packet to gRPC; its next one is at `position`
        (`DONE`: none). If that is no longer the earliest, the run with the earliest packet is
        woken now: it starts its write after ours (the event loop runs it once we yield)."""
        pending = self._pending
        if run not in pending:
            return
        pending[run] = position
        if run is self._holder:
            if position <= self._bound:
                return  # still earliest: keep the turn, wake nobody
            self._holder = None
        self._wake()

    def _wake(self) -> None:
        if not self._waiters:
            return
        low = min(self._pending.values())
        for run, waiter in list(self._waiters.items()):
            if self._pending.get(run) == low and not waiter.done():
                waiter.set_result(None)

    def pace_delay(self) -> float:
        """Seconds to wait before the packet just granted, so the total rate is `rate`."""
        if self.rate is None:
            return 0.0
        due = self._started_at + (self.released - 1) / self.rate
        return max(0.0, due - self._monotonic())

    def finish(self, run: object) -> None:
        """`run` has nothing more to send but stays open (a held run): it blocks nobody."""
        if run in self._pending:
            self._pending[run] = DONE
            if run is self._holder:
                self._holder = None
            self._wake()

    def taken(self, gadget: str, position: int) -> bool:
        return (gadget, position) in self._taken

    def take(self, gadget: str, position: int) -> bool:
        """Claim a flush-on-stop packet; False when another run of the gadget already sent it."""
        key = (gadget, position)
        if key in self._taken:
            return False
        self._taken.add(key)
        return True


__all__ = ["DEFAULT_START_WAIT", "DONE", "ReplayTimeline"]
