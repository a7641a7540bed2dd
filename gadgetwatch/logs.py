"""Logging: structlog, one JSON object per line on stderr, rate-limited per message.

Domain code logs a constant message plus fields (``log.error("payload undecodable",
gadget=..., reason=...)``) and never worries about floods: the `RateLimiter` processor lets
through at most `burst` records per (logger, level, message) per `window` seconds and then
reports how many it held back, so a hostile workload cannot turn the agent's log into a denial
of service while no message disappears without a trace.

Choice (README, development section): structlog, because it gives structured JSON with
contextvars binding and a test helper (`structlog.testing.capture_logs`) without extra glue.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog

from gadgetclient.textsafety import redact_urls

#: Records per message per window before suppression starts. 20 keeps a burst of distinct
#: failures readable; the window of 60 s matches a typical alerting scrape period.
DEFAULT_BURST = 20
DEFAULT_WINDOW_S = 60.0


class RateLimiter:
    """A structlog processor that drops repeats of one message beyond a budget, and says so."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self._state: dict[tuple[str, str, str], list[float]] = {}
        self.suppressed_total = 0

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        key = (str(event_dict.get("logger", "")), method, str(event_dict.get("event", "")))
        now = self.clock()
        state = self._state.get(key)
        if state is None or now - state[0] >= self.window_s:
            held = int(state[2]) if state else 0
            self._state[key] = [now, 1.0, 0.0]
            if held:
                event_dict["suppressed_before"] = held
            return event_dict
        state[1] += 1
        if state[1] > self.burst:
            state[2] += 1
            self.suppressed_total += 1
            raise structlog.DropEvent
        return event_dict

    def take_held_back(self) -> list[tuple[str, str, str, int]]:
        """(logger, level, message, count) of every message with records held back since its
        last report; the counts restart at zero, so each held-back record is reported once."""
        out = []
        for (logger_name, method, message), state in sorted(self._state.items()):
            if state[2]:
                out.append((logger_name, method, message, int(state[2])))
                state[2] = 0.0
        return out


#: The limiter of the current configuration, for `flush_held_back` at shutdown.
_active_limiter: RateLimiter | None = None


def flush_held_back() -> int:
    """Log, once per message, how many records the rate limiter held back and never reported.

    Called at shutdown: the limiter reports a held-back count with the next record of the same
    message, and at exit there is no next record. Returns the total reported.
    """
    if _active_limiter is None:
        return 0
    total = 0
    logger = structlog.get_logger(__name__)
    for logger_name, method, message, count in _active_limiter.take_held_back():
        total += count
        # A distinct constant message, so this report is never itself rate-limited away.
        logger.warning(
            "log records held back by the rate limiter",
            held_back=count,
            held_back_event=message,
            held_back_level=method,
            held_back_logger=logger_name,
        )
    return total


def _redact(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Credentials in URLs never reach the log, whichever field (or exception) carries them."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_urls(value)
        elif not isinstance(value, int | float | bool | dict | list | tuple) and value is not None:
            text = str(value)
            if "://" in text:
                event_dict[key] = redact_urls(text)
    return event_dict


def _render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(dict(event_dict), default=str).decode()


class _StderrLogger:
    """Writes each line to the *current* `sys.stderr` (or a fixed stream when given).

    Looking the stream up per call keeps logging working when `sys.stderr` is replaced after
    configuration (test capture, daemon re-exec); a closed stream never raises into the caller.
    """

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (ValueError, OSError):
            pass  # the log destination is gone; the agent keeps running

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(level: str = "info", *, stream: Any = None) -> None:
    global _active_limiter
    lvl = getattr(logging, level.upper(), logging.INFO)
    _active_limiter = RateLimiter()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _active_limiter,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=lambda *args: _StderrLogger(stream),
        cache_logger_on_first_use=False,
    )
