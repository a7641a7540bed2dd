"""Per-exporter alert rate limit with a single, visible announcement.

A workload that misbehaves in a loop can raise thousands of distinct alerts a minute (each a
new dedup key). A receiver such as a chat webhook or a ticketing system should not be flooded,
but the people behind it must know that alerts are being held back. So the limiter admits up to
`per_minute` alerts in a fixed one-minute window; the first alert over the limit is *replaced*
by one "limit reached" system alert, and the rest of the window is dropped. Every alert not
delivered is counted by `Delivery` (`reason="rate_limit"`), so the metrics show the exact loss.

The window is wall-clock based (an injectable monotonic clock), not event time: the limit
protects a receiver in real time, while dedup and cooldowns (detector) run on event time.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable

from detector.alerts import Alert, AlertKind, KubernetesInfo, RuleId, RuleInfo, Severity

#: The fixed window. One minute is the unit users configure (`maxAlertsPerMinute`).
WINDOW_S = 60.0

#: Rule identity of the exporters' "limit reached" announcement: a system rule id (`GW…`) like
#: the detector's `GW0001`, so it validates against docs/alert.schema.json like every alert.
LIMIT_RULE = RuleInfo(
    id=RuleId("GW0002"),
    name="Exporter alert limit reached",
    severity=Severity.HIGH,
    tags=("system", "delivery", "rate_limit"),
)


class Admission(enum.Enum):
    PASS = enum.auto()
    #: Over the limit for the first time in this window: send the announcement instead.
    ANNOUNCE = enum.auto()
    DROP = enum.auto()


class RateLimiter:
    """Fixed one-minute windows; the window starts at the first alert after the last one ended."""

    __slots__ = ("_clock", "_count", "_window_start", "per_minute")

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._window_start = -WINDOW_S
        self._count = 0

    def admit(self) -> Admission:
        now = self._clock()
        if now - self._window_start >= WINDOW_S:
            self._window_start = now
            self._count = 0
        self._count += 1
        if self._count <= self.per_minute:
            return Admission.PASS
        if self._count == self.per_minute + 1:
            return Admission.ANNOUNCE
        return Admission.DROP

    @property
    def window_remaining_s(self) -> float:
        return max(0.0, WINDOW_S - (self._clock() - self._window_start))


def limit_reached_alert(
    *, exporter: str, per_minute: int, remaining_s: float, trigger: Alert, time_ns: int
) -> Alert:
    """The system alert that stands for the alerts held back in one window."""
    message = (
        f"The {exporter} exporter reached its limit of {per_minute} alerts per minute; "
        f"alerts in the next {remaining_s:.0f} s are dropped and counted in "
        f'gadgetwatch_exporter_alerts_dropped_total{{exporter="{exporter}",reason="rate_limit"}}'
    )
    return Alert(
        rule=LIMIT_RULE,
        message=message,
        fix_suggestion=(
            "Look for the workload raising the alerts (metric gadgetwatch_detector_alerts_total "
            "by rule) and tune its rule bindings or exceptions, or raise maxAlertsPerMinute."
        ),
        time_ns=time_ns,
        kubernetes=KubernetesInfo(node=trigger.kubernetes.node),
        event={
            "type": "limit",
            "scope": f"exporter:{exporter}",
            "limit": per_minute,
            "windowSeconds": WINDOW_S,
            "windowRemainingSeconds": round(remaining_s, 3),
        },
        kind=AlertKind.SYSTEM,
        # One fingerprint per exporter (its announcements stand for one recurring condition),
        # in the same 16-hex-digit form as the detector's fingerprints.
        fingerprint=hashlib.blake2b(
            f"GW0002\0{exporter}".encode("utf-8", "backslashreplace"), digest_size=8
        ).hexdigest(),
        cluster=trigger.cluster,
    )
