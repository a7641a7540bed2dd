"""What is firing in AlertManager, and what must be (re)sent: the state behind `endsAt`.

AlertManager considers an alert resolved once its `endsAt` has passed, and identifies an alert
by its label set. Two consequences shape this table:

- **`endsAt` comes from the time of sending**, never from event time: an alert is sent with
  `endsAt = now + resolveAfter` (Prometheus does the same), so a replayed capture or a node
  with a skewed clock still produces alerts AlertManager shows. `startsAt` is the first
  occurrence (event time), clamped to now so that a clock running ahead cannot put it after
  `endsAt` (AlertManager rejects that with a 400).
- **Repeats keep an alert firing.** The detector sends one alert per finding per cooldown and
  only counts the repeats in between; those counts arrive here (`repeat`), move the finding's
  wanted end to `now + resolveAfter`, and mark its AlertManager alert dirty. A dirty alert is
  re-sent at most once per `resendInterval` (and at least twice per `resolveAfter`, so it is
  re-sent before it would expire), carrying the wanted end. So an alert stays firing exactly
  as long as its behaviour continues, plus `resolveAfter`, and then resolves by itself.

Identity (docs/exporters.md, "AlertManager"): the labels name the rule and the workload
container, plus `finding`, the fingerprint of the distinct finding (the detector's dedup key).
Every distinct finding is therefore its own alert, visible while it is active; repeats of one
finding update that alert. To keep a misbehaving workload from producing an alert storm, a
(rule, workload container) group holds at most `maxFindingAlerts` findings with alerts of their
own at a time; further distinct findings share one alert with `finding="overflow"`, whose
`findings` annotation lists them (most recent first, bounded) with their counts. A finding keeps
its alert until it expires, which frees its slot for the next new finding.

Memory is bounded: findings expire with their alerts, the overflow members of one group are
capped (`MAX_OVERFLOW_TRACKED`, the rest only counted), and expired entries are purged on every
`due` call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from detector.alerts import format_time

#: The `finding` label value of the alert that stands for a group's findings beyond the bound.
OVERFLOW = "overflow"
#: Findings listed in the overflow alert's `findings` annotation: a notification stays readable.
MAX_OVERFLOW_LISTED = 20
#: Overflow members remembered per group (with their counts); beyond, only counted, so a
#: workload producing thousands of distinct findings costs bounded memory.
MAX_OVERFLOW_TRACKED = 200
#: Longest line of the overflow list (one finding's message).
MAX_LISTED_CHARS = 256

#: Expiry scans at most this often (1 s): a scan visits every finding, and an alert that ends up
#: to a second late changes nothing AlertManager shows (it decides by `endsAt` itself).
EXPIRY_SCAN_NS = 1_000_000_000

Group = tuple[tuple[str, str], ...]
"""The labels that name one (rule, workload container): sorted (name, value) pairs."""

AlertKey = tuple[Group, str]
"""One AlertManager alert: its group and its `finding` label value."""


@dataclass(slots=True)
class Finding:
    """What one alert said about one distinct finding, and until when it is firing."""

    fingerprint: str
    group: Group
    #: The `finding` label of the AlertManager alert it belongs to (itself, or OVERFLOW).
    label: str
    #: Event time of the first occurrence while active (`startsAt`).
    first_ns: int
    #: Wanted `endsAt`: the wall time of the last occurrence + resolveAfter.
    ends_ns: int
    #: Occurrences while active (alerts' counts plus repeats).
    count: int
    #: Repeats noted since the finding's last alert: its next alert's count includes them.
    noted: int
    #: One line for the overflow list.
    text: str
    annotations: dict[str, str]
    generator_url: str


@dataclass(slots=True)
class _Sent:
    sent_ns: int


@dataclass(slots=True)
class _Overflow:
    members: OrderedDict[str, None] = field(default_factory=OrderedDict)
    #: Findings that did not fit in `members` while this overflow alert was firing.
    untracked: int = 0
    untracked_count: int = 0
    untracked_ends_ns: int = 0


class FiringTable:
    """The findings this exporter has sent to one AlertManager, by alert identity."""

    def __init__(self, *, resolve_after_ns: int, resend_interval_ns: int, max_findings: int):
        self.resolve_after_ns = resolve_after_ns
        #: A dirty alert waits at most this long for its re-send; at most half of resolveAfter,
        #: so the re-send reaches AlertManager well before the previous `endsAt`.
        self.resend_ns = max(1, min(resend_interval_ns, resolve_after_ns // 2))
        self.max_findings = max_findings
        self._findings: dict[str, Finding] = {}
        self._own: dict[Group, set[str]] = {}
        self._overflow: dict[Group, _Overflow] = {}
        self._sent: dict[AlertKey, _Sent] = {}
        #: Alerts with news not yet sent, with a change counter: a send that was rendered before
        #: a later change (a repeat during the request) leaves the alert dirty.
        self._dirty: dict[AlertKey, int] = {}
        self._changes = 0
        self._expired_at_ns = 0

    def __len__(self) -> int:
        return len(self._findings)

    def alerts_of(self, group: Group) -> int:
        """AlertManager alerts currently firing for one group (its own findings + overflow)."""
        overflow = self._overflow.get(group)
        return len(self._own.get(group, ())) + (1 if overflow is not None else 0)

    # -- input -------------------------------------------------------------------------------

    def record(
        self,
        *,
        fingerprint: str,
        group: Group,
        first_ns: int,
        count: int,
        text: str,
        annotations: dict[str, str],
        generator_url: str,
        now_ns: int,
    ) -> AlertKey:
        """An alert was raised: its finding fires until `now + resolveAfter` (at least)."""
        self._expire(now_ns)
        ends = now_ns + self.resolve_after_ns
        found = self._findings.get(fingerprint)
        if found is not None and (found.group != group or found.ends_ns <= now_ns):
            # Ended (a new firing starts), or other labels (a severity override changed).
            self._forget(found)
            found = None
        if found is not None:
            found.ends_ns = max(found.ends_ns, ends)
            # The alert's count is 1 + the repeats since the previous alert, some of which
            # were already noted here as they happened.
            found.count += max(1, count - found.noted)
            found.noted = 0
            found.text = text
            found.annotations = annotations
            found.generator_url = generator_url
            self._touch_member(found)
        else:
            own = self._own.setdefault(group, set())
            label = fingerprint if len(own) < self.max_findings else OVERFLOW
            found = Finding(
                fingerprint,
                group,
                label,
                first_ns,
                ends,
                count,
                0,
                text,
                annotations,
                generator_url,
            )
            self._findings[fingerprint] = found
            if label == OVERFLOW:
                self._add_overflow(found)
            else:
                own.add(fingerprint)
        key = (group, found.label)
        self._mark_dirty(key)
        return key

    def repeat(self, fingerprint: str, count: int, *, now_ns: int) -> bool:
        """Repeats the detector suppressed: the finding keeps firing. False if not firing."""
        found = self._findings.get(fingerprint)
        if found is None or found.ends_ns <= now_ns:
            return False
        found.ends_ns = max(found.ends_ns, now_ns + self.resolve_after_ns)
        found.count += count
        found.noted += count
        self._touch_member(found)
        self._mark_dirty((found.group, found.label))
        return True

    # -- output ------------------------------------------------------------------------------

    def due(self, now_ns: int, *, force: bool = False) -> list[AlertKey]:
        """Dirty alerts whose re-send is due (all dirty ones with `force`).

        Only alerts that reached AlertManager once: a first delivery is `Delivery`'s to retry,
        drop and count, and an alert it gave up on is not sent behind its back."""
        self._expire(now_ns)
        out = []
        for key in self._dirty:
            sent = self._sent.get(key)
            if sent is not None and (force or now_ns - sent.sent_ns >= self.resend_ns):
                out.append(key)
        return sorted(out)

    def mark_sent(self, keys: list[AlertKey], versions: list[int], now_ns: int) -> None:
        """`keys`, rendered at `versions` (from `item`), reached AlertManager at `now_ns`."""
        for key, version in zip(keys, versions, strict=True):
            self._sent[key] = _Sent(now_ns)
            if self._dirty.get(key) == version:
                del self._dirty[key]

    def item(self, key: AlertKey, *, now_ns: int, labels: dict[str, str]) -> dict[str, Any]:
        """The `POST /api/v2/alerts` element for one alert; `labels` are the group's labels.

        `_version` is for `mark_sent` and removed by the caller before sending."""
        version = self._dirty.get(key, 0)
        group, label = key
        if label != OVERFLOW:
            f = self._findings[label]
            item: dict[str, Any] = {
                "labels": {**labels, "finding": label},
                "annotations": {**f.annotations, "count": str(f.count)},
                "startsAt": format_time(min(f.first_ns, now_ns)),
                "endsAt": format_time(f.ends_ns),
                "_version": version,
            }
            if f.generator_url:
                item["generatorURL"] = f.generator_url
            return item
        overflow = self._overflow[group]
        members = [self._findings[fp] for fp in reversed(overflow.members)]
        ends = max([f.ends_ns for f in members] + [overflow.untracked_ends_ns])
        first = min([f.first_ns for f in members] or [now_ns])
        lines = [f"{f.count}× {f.text[:MAX_LISTED_CHARS]}" for f in members[:MAX_OVERFLOW_LISTED]]
        hidden = len(members) - len(lines) + overflow.untracked
        if hidden:
            lines.append(f"… and {hidden} more")
        distinct = len(members) + overflow.untracked
        latest = members[0].annotations if members else {}
        annotations = {
            name: value
            for name, value in latest.items()
            if name not in ("description", "process", "fix_suggestion", "fingerprint")
        }
        annotations.update(
            {
                "summary": f"{distinct} more distinct findings: " + latest.get("summary", ""),
                "description": (
                    f"{distinct} further distinct findings of this rule in this workload "
                    f"container, beyond the {self.max_findings} that have alerts of their own; "
                    "each is listed with its count in `findings`, most recent first."
                ),
                "findings": "\n".join(lines),
                "count": str(sum(f.count for f in members) + overflow.untracked_count),
            }
        )
        return {
            "labels": {**labels, "finding": OVERFLOW},
            "annotations": annotations,
            "startsAt": format_time(min(first, now_ns)),
            "endsAt": format_time(ends),
            "_version": version,
        }

    # -- internals ---------------------------------------------------------------------------

    def _add_overflow(self, found: Finding) -> None:
        overflow = self._overflow.setdefault(found.group, _Overflow())
        overflow.members[found.fingerprint] = None
        if len(overflow.members) > MAX_OVERFLOW_TRACKED:
            old_fp, _ = overflow.members.popitem(last=False)
            old = self._findings.pop(old_fp)
            overflow.untracked += 1
            overflow.untracked_count += old.count
            overflow.untracked_ends_ns = max(overflow.untracked_ends_ns, old.ends_ns)

    def _touch_member(self, found: Finding) -> None:
        if found.label == OVERFLOW:
            self._overflow[found.group].members.move_to_end(found.fingerprint)

    def _forget(self, found: Finding) -> None:
        del self._findings[found.fingerprint]
        if found.label == OVERFLOW:
            overflow = self._overflow.get(found.group)
            if overflow is not None:
                overflow.members.pop(found.fingerprint, None)
        else:
            self._own.get(found.group, set()).discard(found.fingerprint)
            self._drop_alert((found.group, found.label))

    def _mark_dirty(self, key: AlertKey) -> None:
        self._changes += 1
        self._dirty[key] = self._changes

    def _drop_alert(self, key: AlertKey) -> None:
        self._sent.pop(key, None)
        self._dirty.pop(key, None)

    def _expire(self, now_ns: int) -> None:
        """Forget findings whose alert has ended (their slots go to the next new findings).

        A scan of every finding, so at most once per `EXPIRY_SCAN_NS` of wall time."""
        if now_ns - self._expired_at_ns < EXPIRY_SCAN_NS:
            return
        self._expired_at_ns = now_ns
        expired = [f for f in self._findings.values() if f.ends_ns <= now_ns]
        for found in expired:
            self._forget(found)
        for group in [g for g, o in self._overflow.items() if not o.members]:
            if self._overflow[group].untracked_ends_ns <= now_ns:
                del self._overflow[group]
                self._drop_alert((group, OVERFLOW))
        for group in [g for g, own in self._own.items() if not own]:
            del self._own[group]
