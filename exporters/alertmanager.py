"""The AlertManager exporter: Prometheus AlertManager API v2 (`POST /api/v2/alerts`).

AlertManager identifies an alert by its label set: identical labels update one alert (its
annotations and `endsAt`), different labels make a new alert, and notifications are grouped by
the labels the route's `group_by` names. The predecessors put pid, comm, uid and the process
tree depth into labels, so one incident became dozens of alerts that never grouped; labels of
rule + workload only (this agent's first design) made distinct findings overwrite each other.
Here (docs/exporters.md, "AlertManager"):

- labels (identity and grouping): `alertname` (the rule name in CamelCase, e.g.
  `UnexpectedProcessLaunched`), `rule_id`, `severity`, `namespace`, `workload_kind`,
  `workload_name`, `container`, `finding` (the fingerprint of the distinct finding, or
  `overflow`), `cluster` (the configured `clusterName`), `node` only for alerts without a
  namespace (host workloads and system alerts, where the node is the identity), plus the
  configured `extraLabels`. Empty values are left out (AlertManager treats empty as absent).
  Never per-process or per-pod values: a repeat of one finding, from any process or replica,
  updates one alert;
- annotations (free text, may change between repeats): `summary`, `description` (the alert
  message), `fix_suggestion`, `process` (comm, pid, exe, arguments), `count` (occurrences while
  firing), `fingerprint`, `alert_id`, `first_seen`, `last_seen`, `pod`, `node`, `container_id`,
  `image`, `mitre_technique`, `profile`; the overflow alert adds `findings`;
- `startsAt` = first occurrence (event time), `endsAt` = time of sending + `resolveAfter`, and
  a firing alert whose behaviour repeats is re-sent before it expires (`exporters.firing`);
  `generatorURL` from the configured template.

Label and annotation values go through `safe_text` (control characters escaped, bounded), and
label names are fixed identifiers, so no alert content can violate AlertManager's label rules.

One exporter instance per configured URL (`build_exporters`): each member of an HA pair gets
every alert through its own queue and keeps its own firing table, so a dead member delays
nothing for the other. Auth: basic (`username` + `password`/`passwordFile`) or bearer
(`bearerToken`/`bearerTokenFile`); TLS with a CA bundle. Health: `GET /-/healthy`.
"""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from detector.alerts import Alert, format_time, safe_text
from exporters.config import AlertManagerSettings
from exporters.encoding import clean_text, dumps
from exporters.errors import ExporterError, SendError
from exporters.firing import AlertKey, FiringTable, Group
from exporters.transport import SecretFile, classify, client_ssl, make_session

#: Longest label value. Kubernetes names are at most 253 characters; rule names are short.
MAX_LABEL_VALUE = 256
#: Longest annotation value: a command line of a few KiB stays readable in a notification.
MAX_ANNOTATION_VALUE = 4096

_WORD = re.compile(r"[A-Za-z0-9]+")


def alertname(alert: Alert) -> str:
    """`Unexpected process launched` -> `UnexpectedProcessLaunched` (the rule id if empty)."""
    words = _WORD.findall(alert.rule.name)
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name or _label_value(alert.rule.id) or "GadgetwatchAlert"


def _label_value(value: str) -> str:
    return safe_text(clean_text(value), limit=MAX_LABEL_VALUE)


def _annotation_value(value: str) -> str:
    return safe_text(clean_text(value), limit=MAX_ANNOTATION_VALUE)


def alert_labels(alert: Alert, *, extra: dict[str, str]) -> dict[str, str]:
    """The labels of the (rule, workload container) group, without `finding`."""
    k = alert.kubernetes
    candidates = {
        "alertname": alertname(alert),
        "rule_id": alert.rule.id,
        "severity": alert.rule.severity.label,
        "cluster": alert.cluster,
        "namespace": k.namespace,
        "workload_kind": k.workload_kind,
        "workload_name": k.workload_name,
        "container": k.container,
        # In Kubernetes the workload is the identity, wherever its pods run; without a
        # namespace (host workloads, system alerts) the node is.
        "node": "" if k.namespace else k.node,
    }
    out = {name: _label_value(v) for name, v in extra.items() if v}
    out.update({name: _label_value(v) for name, v in candidates.items() if v})
    return out


def alert_annotations(alert: Alert) -> dict[str, str]:
    k, p = alert.kubernetes, alert.process
    where = "/".join(x for x in (k.namespace, k.workload_name or k.pod) if x) or k.node
    summary = alert.rule.name + (f" in {where}" if where else "")
    if k.container:
        summary += f" (container {k.container})"
    process = ""
    if p.pid or p.comm or p.exe:
        parent = f", parent {p.pcomm or '?'} ({p.ppid})" if p.ppid else ""
        process = f"{p.comm or '?'} (pid {p.pid}{parent})"
        if p.exe:
            process += f" exe {p.exe}"
        if p.args:
            process += " args: " + " ".join(p.args)
    profile = alert.profile
    candidates = {
        "summary": summary,
        "description": alert.message,
        "fix_suggestion": alert.fix_suggestion,
        "process": process.strip(),
        "count": str(alert.dedup.count),
        "fingerprint": alert.fingerprint,
        "alert_id": alert.id,
        "first_seen": format_time(alert.dedup.first_seen_ns or alert.time_ns),
        "last_seen": format_time(alert.dedup.last_seen_ns or alert.time_ns),
        "pod": k.pod,
        "node": k.node,
        "container_id": alert.runtime.container_id,
        "image": alert.runtime.image,
        "mitre_technique": alert.rule.mitre_technique,
        "profile": "" if profile is None else f"{profile.name} ({profile.status})",
    }
    return {name: _annotation_value(v) for name, v in candidates.items() if v}


def generator_url(alert: Alert, template: str) -> str:
    if not template:
        return ""
    k = alert.kubernetes
    fields = {
        "rule_id": alert.rule.id,
        "namespace": k.namespace,
        "workload_name": k.workload_name,
        "pod": k.pod,
        "container": k.container,
        "fingerprint": alert.fingerprint,
    }
    quoted = {key: quote(clean_text(v), safe="") for key, v in fields.items()}
    try:
        return template.format_map(quoted)
    except (KeyError, ValueError, IndexError):
        return template


def _group(labels: Mapping[str, str]) -> Group:
    return tuple(sorted(labels.items()))


def record(
    table: FiringTable, alert: Alert, *, settings: AlertManagerSettings, now_ns: int
) -> AlertKey:
    """Enter `alert` into the firing table; returns the AlertManager alert it updates."""
    labels = alert_labels(alert, extra=settings.extra_labels)
    return table.record(
        fingerprint=_label_value(alert.fingerprint or alert.id),
        group=_group(labels),
        first_ns=alert.dedup.first_seen_ns or alert.time_ns,
        count=alert.dedup.count,
        text=_annotation_value(alert.message),
        annotations=alert_annotations(alert),
        generator_url=generator_url(alert, settings.generator_url),
        now_ns=now_ns,
    )


def render(table: FiringTable, key: AlertKey, *, now_ns: int) -> dict[str, Any]:
    """One element of the `POST /api/v2/alerts` array (with `_version` for the table)."""
    return table.item(key, now_ns=now_ns, labels=dict(key[0]))


def payload(alert: Alert, *, settings: AlertManagerSettings, now_ns: int) -> dict[str, Any]:
    """The element one alert on its own becomes (a fresh table): for tests and docs."""
    table = new_table(settings)
    item = render(table, record(table, alert, settings=settings, now_ns=now_ns), now_ns=now_ns)
    item.pop("_version")
    return item


def new_table(settings: AlertManagerSettings) -> FiringTable:
    return FiringTable(
        resolve_after_ns=int(settings.resolve_after.total_seconds() * 1e9),
        resend_interval_ns=int(settings.resend_interval.total_seconds() * 1e9),
        max_findings=settings.max_finding_alerts,
    )


class AlertManagerExporter:
    def __init__(
        self,
        settings: AlertManagerSettings,
        *,
        url: str,
        name: str,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._name = name
        #: Wall clock for `startsAt`/`endsAt` and re-sends; injectable so tests drive time.
        self._clock_ns = clock_ns
        self.table = new_table(settings)
        #: The last batch's alert ids and the alerts they updated (see `send`).
        self._last_ids: tuple[str, ...] = ()
        self._last_keys: list[AlertKey] = []
        self._settings = settings
        self._base = url.rstrip("/")
        self._url = self._base + "/api/v2/alerts"
        self._ssl: ssl.SSLContext | bool = client_ssl(
            ca_file=settings.ca_file,
            insecure=settings.insecure_skip_verify,
            exporter=name,
            field="exporters.alertmanager.caFile",
        )
        self._password_file = (
            SecretFile(settings.password_file, label="basic auth password")
            if settings.password_file is not None
            else None
        )
        self._token_file = (
            SecretFile(settings.bearer_token_file, label="bearer token")
            if settings.bearer_token_file is not None
            else None
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def channel(self) -> AlertManagerSettings:
        return self._settings

    @property
    def url(self) -> str:
        return self._base

    def _auth_headers(self) -> dict[str, str]:
        s = self._settings
        token = (
            self._token_file.read(exporter=self._name)
            if self._token_file is not None
            else (s.bearer_token.get_secret_value() if s.bearer_token is not None else "")
        )
        if token:
            return {"Authorization": f"Bearer {token}"}
        if s.username:
            password = (
                self._password_file.read(exporter=self._name)
                if self._password_file is not None
                else (s.password.get_secret_value() if s.password is not None else "")
            )
            raw = f"{s.username}:{password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = make_session(
                ssl_setting=self._ssl, timeout_s=self._settings.timeout.total_seconds()
            )
        return self._session

    @property
    def refresh_interval_s(self) -> float:
        """How often `Delivery` calls `refresh`: a tenth of the re-send interval, so a due
        re-send waits at most 10 % longer than configured."""
        return self.table.resend_ns / 1e9 / 10

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        now = self._clock_ns()
        ids = tuple(a.id for a in batch)
        if ids != self._last_ids:
            # A retry of the same batch (Delivery retries it as it is) is recorded once, so
            # counts are not inflated by failed attempts.
            self._last_keys = sorted(
                {record(self.table, a, settings=self._settings, now_ns=now) for a in batch}
            )
            self._last_ids = ids
        await self._post(self._last_keys, now)

    def note_repeats(self, repeats: Mapping[str, int]) -> int:
        """Occurrences the detector counted but did not alert (by fingerprint): their alerts
        keep firing. Returns how many were alerts firing here. Never does I/O."""
        now = self._clock_ns()
        return sum(self.table.repeat(fp, n, now_ns=now) for fp, n in repeats.items())

    async def refresh(self, *, force: bool = False) -> int:
        """Re-send the firing alerts whose behaviour repeated, when due (all with `force`).
        Returns how many alerts were re-sent; raises `SendError` like `send`."""
        if self._closed:
            return 0
        now = self._clock_ns()
        keys = self.table.due(now, force=force)
        for i in range(0, len(keys), self._settings.batch_max_alerts):
            await self._post(keys[i : i + self._settings.batch_max_alerts], now)
        return len(keys)

    async def _post(self, keys: list[AlertKey], now: int) -> None:
        items = [render(self.table, key, now_ns=now) for key in keys]
        versions = [item.pop("_version") for item in items]
        body = dumps(items)
        headers = {"Content-Type": "application/json", **self._auth_headers()}
        try:
            async with self._get_session().post(self._url, data=body, headers=headers) as resp:
                status = resp.status
                text = "" if 200 <= status < 300 else await resp.text(errors="replace")
        except TimeoutError as exc:
            raise SendError(f"{self._url} did not answer in time", exporter=self._name) from exc
        except aiohttp.ClientError as exc:
            raise SendError(f"cannot reach {self._url}: {exc}", exporter=self._name) from exc
        error = classify(status, exporter=self._name, target=self._url, body=text)
        if error is not None and not error.permanent:
            raise error
        # Delivered, or rejected for good (retrying the same content cannot help): either way
        # these alerts are no longer waiting for a re-send.
        self.table.mark_sent(keys, versions, now)
        if error is not None:
            raise error

    async def healthcheck(self) -> None:
        if self._closed:
            raise ExporterError("exporter is closed", exporter=self._name)
        url = self._base + "/-/healthy"
        try:
            async with self._get_session().get(url, headers=self._auth_headers()) as resp:
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, SendError) as exc:
            raise ExporterError(f"cannot reach {url}: {exc}", exporter=self._name) from exc
        if status != 200:
            raise ExporterError(f"{url} answered HTTP {status}", exporter=self._name)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
