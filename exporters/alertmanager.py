"""The AlertManager exporter: Prometheus AlertManager API v2 (`POST /api/v2/alerts`).

AlertManager identifies an alert by its label set: identical labels update one alert (its
annotations and `endsAt`), different labels make a new alert, and notifications are grouped by
the labels the route's `group_by` names. The predecessors put pid, comm, uid and the process
tree depth into labels, so one incident became dozens of alerts that never grouped. Here:

- labels (identity and grouping, all bounded by the cluster's own objects):
  `alertname` (the rule name in CamelCase, e.g. `UnexpectedProcessLaunched`), `rule_id`,
  `severity`, `namespace`, `workload_kind`, `workload_name`, `pod`, `container`, `node`, plus
  the configured `extraLabels`. Empty values are left out (AlertManager treats empty as absent).
  Never per-process values: a repeat of the same rule in the same container updates one alert;
- annotations (free text, may change between repeats): `summary`, `description` (the alert
  message), `fix_suggestion`, `process` (comm, pid, exe, arguments), `count` (occurrences this
  alert stands for), `fingerprint`, `first_seen`, `last_seen`, `container_id`, `image`,
  `mitre_technique`, `profile`;
- `startsAt` = first occurrence, `endsAt` = last occurrence + `resolveAfter` (the alert resolves
  by itself when the behaviour stops); `generatorURL` from the configured template.

Label and annotation values go through `safe_text` (control characters escaped, bounded), and
label names are fixed identifiers, so no alert content can violate AlertManager's label rules.

One exporter instance per configured URL (`build_exporters`): each member of an HA pair gets
every alert through its own queue, so a dead member delays nothing for the other. Auth: basic
(`username` + `password`/`passwordFile`) or bearer (`bearerToken`/`bearerTokenFile`); TLS with a
CA bundle. Health: `GET /-/healthy`.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from detector.alerts import Alert, format_time, safe_text
from exporters.config import AlertManagerSettings
from exporters.encoding import clean_text, dumps
from exporters.errors import ExporterError, SendError
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
    k = alert.kubernetes
    candidates = {
        "alertname": alertname(alert),
        "rule_id": alert.rule.id,
        "severity": alert.rule.severity.label,
        "namespace": k.namespace,
        "workload_kind": k.workload_kind,
        "workload_name": k.workload_name,
        "pod": k.pod,
        "container": k.container,
        "node": k.node,
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
        "first_seen": format_time(alert.dedup.first_seen_ns or alert.time_ns),
        "last_seen": format_time(alert.dedup.last_seen_ns or alert.time_ns),
        "container_id": alert.runtime.container_id,
        "image": alert.runtime.image,
        "mitre_technique": alert.rule.mitre_technique,
        "profile": "" if profile is None else f"{profile.name} ({profile.status})",
    }
    return {name: _annotation_value(v) for name, v in candidates.items() if v}


def payload(alert: Alert, *, settings: AlertManagerSettings) -> dict[str, Any]:
    """One element of the `POST /api/v2/alerts` array."""
    first_ns = alert.dedup.first_seen_ns or alert.time_ns
    last_ns = alert.dedup.last_seen_ns or alert.time_ns
    ends_ns = last_ns + int(settings.resolve_after.total_seconds() * 1e9)
    item: dict[str, Any] = {
        "labels": alert_labels(alert, extra=settings.extra_labels),
        "annotations": alert_annotations(alert),
        "startsAt": format_time(first_ns),
        "endsAt": format_time(ends_ns),
    }
    if settings.generator_url:
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
            item["generatorURL"] = settings.generator_url.format_map(quoted)
        except (KeyError, ValueError, IndexError):
            item["generatorURL"] = settings.generator_url
    return item


class AlertManagerExporter:
    def __init__(self, settings: AlertManagerSettings, *, url: str, name: str) -> None:
        self._name = name
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

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        body = dumps([payload(a, settings=self._settings) for a in batch])
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
