"""The stdout exporter: one JSON alert per line (`Alert.to_dict`), the container-native way.

Container runtimes collect stdout into the node's log pipeline (Fluent Bit, Vector, Loki
agents), which expect one JSON object per line; a line can never be split or forged by an alert
because orjson escapes newlines and control characters inside strings (see `encoding`).

Writes happen on a dedicated single thread: stdout is a pipe, and a stalled reader makes
`write` block. On the event loop that would stall detection; on the shared default executor
it could exhaust the threads that the Kubernetes client needs. With one private thread a blocked
pipe holds only this exporter, whose queue then fills and drops (counted), as for any slow
destination. A write that outlives `sendTimeout` completes later while `Delivery` retries the
batch, so stdout is at-least-once, like every exporter here.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from collections.abc import Sequence
from typing import BinaryIO

from detector.alerts import Alert
from exporters.config import StdoutSettings
from exporters.encoding import alert_json
from exporters.errors import ExporterError, SendError


class StdoutExporter:
    def __init__(
        self, settings: StdoutSettings, *, stream: BinaryIO | None = None, name: str = "stdout"
    ) -> None:
        self._name = name
        self._settings = settings
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._jobs: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._pending: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def channel(self) -> StdoutSettings:
        return self._settings

    def _writer(self, loop: asyncio.AbstractEventLoop) -> None:
        """The private writer thread: one job at a time, results handed back to the loop."""
        while (job := self._jobs.get()) is not None:
            data, fut = job
            error: Exception | None = None
            try:
                self._stream.write(data)
                self._stream.flush()
            except Exception as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, fut, error)
            except RuntimeError:  # the loop is closed: nobody waits for this write any more
                return

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        data = b"".join(alert_json(a) + b"\n" for a in batch)
        loop = asyncio.get_running_loop()
        if self._thread is None:
            # A daemon thread: a write blocked on a dead pipe must not keep the process from
            # exiting (pool executors are joined at exit).
            self._thread = threading.Thread(
                target=self._writer, args=(loop,), name=f"exporter-{self._name}", daemon=True
            )
            self._thread.start()
        # A write still blocked from an earlier, timed-out attempt keeps the thread; wait for
        # it (shielded, so our own timeout does not abandon it twice) before queueing another.
        try:
            if self._pending is not None and not self._pending.done():
                await asyncio.shield(self._pending)
            self._pending = loop.create_future()
            self._jobs.put((data, self._pending))
            await asyncio.shield(self._pending)
        except OSError as exc:
            raise SendError(
                f"cannot write to stdout: {exc.strerror or exc}", exporter=self._name
            ) from exc
        except ValueError as exc:  # write to a closed file object
            raise SendError(f"stdout is closed: {exc}", exporter=self._name) from exc

    async def healthcheck(self) -> None:
        if self._closed or self._stream.closed:
            raise ExporterError("stdout is closed", exporter=self._name)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The thread ends after its current write; a write blocked on a dead pipe must not
        # hold shutdown, so it is not joined.
        self._jobs.put(None)


def _settle(fut: asyncio.Future[None], error: Exception | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
    # Retrieve it now: a timed-out attempt may never await this future again.
    fut.exception()
