"""The `Exporter` protocol: what `Delivery` needs from one alert destination.

An exporter knows how to render and transmit a batch of alerts to one destination, and nothing
about queues, retries, rate limits or shutdown deadlines: those belong to `Delivery`, which
gives every exporter its own queue and task (see the package docstring for the contract).
Keeping the protocol this small is what lets one compliance test cover every destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from detector.alerts import Alert
from exporters.config import ChannelSettings


class Exporter(Protocol):
    """One alert destination.

    `name` is unique within one agent and bounded (it is a metric label): the destination kind,
    plus the host for AlertManager members (`alertmanager@am-0:9093`).
    `channel` holds the delivery knobs `Delivery` applies for this exporter.
    """

    @property
    def name(self) -> str: ...

    @property
    def channel(self) -> ChannelSettings: ...

    async def send(self, batch: Sequence[Alert]) -> None:
        """Deliver every alert of `batch`, or raise `SendError` (transient or permanent).

        Called by one task at a time, never concurrently. Must not retry by itself.
        """
        ...

    async def healthcheck(self) -> None:
        """Return if the destination looks reachable now; raise `ExporterError` otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent; `send` is not called afterwards."""
        ...


@runtime_checkable
class Refreshing(Protocol):
    """An exporter whose destination forgets alerts unless they are re-sent (AlertManager).

    `Delivery` hands it the repeats the detector counted without alerting (`note_repeats`, no
    I/O) and, from the exporter's own task, so never concurrently with `send`, calls `refresh`
    every `refresh_interval_s` and once more on shutdown (`force=True`).
    """

    @property
    def refresh_interval_s(self) -> float: ...

    def note_repeats(self, repeats: Mapping[str, int]) -> int: ...

    async def refresh(self, *, force: bool = False) -> int: ...
