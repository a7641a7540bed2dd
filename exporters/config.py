"""The `exporters` and `metrics` configuration sections.

The composition root nests `ExportersSettings` under `exporters` and `MetricsSettings` under
`metrics`, and hands them, validated and frozen, to `build_exporters` / `Delivery` and to
`MetricsServer`. Nothing in this package reads the environment by itself: secrets come from
files named here, or from environment variables that the composition root resolves and passes in
(`build_exporters(..., environ=...)`).

Every exporter section shares the delivery knobs of `ChannelSettings` (queue bound, batching,
retries, rate limit): `Delivery` reads them from `exporter.channel`, so one exporter's settings
never influence another's queue.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from gadgetclient.config import SETTINGS_CONFIG
from gadgetclient.durations import Duration

#: RFC 5424 §6.2.1 facility names, in code order (the index is the facility code).
FACILITIES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip

Facility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
]  # fmt: skip


class ChannelSettings(BaseModel):
    """How `Delivery` queues, batches, retries and limits alerts for one exporter."""

    model_config = SETTINGS_CONFIG

    enabled: bool = False
    """Deliver alerts to this destination."""

    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    """Alerts waiting for this exporter. 1000 rides out a destination outage of several minutes
    at a realistic alert rate (a few per second at most after deduplication) and caps memory at
    a few MiB; beyond it the newest alerts are dropped and counted (`reason="queue_full"`)."""

    batch_max_alerts: int = Field(default=100, ge=1, le=10_000)
    """Most alerts handed to one `send`. Larger batches amortise the per-request cost when a
    burst of alerts arrives; the destination's own limits cap it (AlertManager accepts arrays)."""

    batch_max_delay: Duration = Field(default=timedelta(0), ge=timedelta(0))
    """Longest time a partial batch waits for more alerts. 0 sends what is queued at once: an
    alert should reach a person quickly, batching only what is already waiting."""

    send_timeout: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    """Upper bound on one `send` attempt, on top of the exporter's own timeouts, so a peer that
    accepts a connection and never answers cannot hold the queue forever."""

    retry_initial_backoff: Duration = Field(default=timedelta(milliseconds=500), gt=timedelta(0))
    """Wait before the first retry of a transient failure; doubled on each further failure."""

    retry_max_backoff: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    """Longest wait between retries: a destination that comes back is used again within this
    time, without hammering one that stays down."""

    retry_max_attempts: int = Field(default=0, ge=0)
    """Attempts for one batch before it is dropped (`reason="retries_exhausted"`); 0 retries
    for as long as the agent runs, so an outage loses only what exceeds `queueSize`."""

    max_alerts_per_minute: int = Field(default=0, ge=0)
    """Alerts admitted per one-minute window; 0 means unlimited. When the limit is reached one
    "limit reached" alert is sent instead, and the rest of the window is dropped and counted
    (`reason="rate_limit"`)."""


class StdoutSettings(ChannelSettings):
    """One JSON alert per line on standard output (`Alert.to_dict`)."""

    model_config = SETTINGS_CONFIG


SyslogTransport = Literal["udp", "tcp", "tls"]


class SyslogSettings(ChannelSettings):
    """RFC 5424 messages over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS (RFC 5425)."""

    model_config = SETTINGS_CONFIG

    host: str = "localhost"
    """Syslog server host name or address."""

    port: int = Field(default=514, ge=1, le=65535)
    """Server port: 514 is the registered port for UDP and plain TCP; use 6514 for TLS."""

    transport: SyslogTransport = "udp"
    """`udp` (fire and forget), `tcp` (octet-counted frames) or `tls` (RFC 5425)."""

    facility: Facility = "local0"
    """Facility in the PRI value. `local0` is site-assignable, so receivers can route the agent's
    alerts apart from system logs."""

    app_name: str = "gadgetwatch"
    """APP-NAME field (at most 48 printable ASCII characters)."""

    hostname: str = ""
    """HOSTNAME field; empty uses the alert's node name, then this machine's host name."""

    enterprise_id: int = Field(default=32473, ge=1)
    """Private enterprise number in the structured-data ids (`alert@<id>`). 32473 is the number
    RFC 5612 reserves for documentation; set your organisation's own number if it has one."""

    max_message_bytes: int = Field(default=8192, ge=480, le=65_000)
    """Longest message sent, in bytes; longer ones are shortened (arguments first, then the
    message text) with a visible marker. 8192 is rsyslog's default `maxMessageSize`, and fits
    a UDP datagram; RFC 5426 only guarantees 480 bytes over IPv4."""

    connect_timeout: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    """Time allowed to open the TCP/TLS connection."""

    ca_file: Path | None = None
    """PEM CA bundle that signed the server's certificate (TLS); none uses the system store."""

    cert_file: Path | None = None
    """Client certificate for mutual TLS (PEM), with `keyFile`."""

    key_file: Path | None = None
    """Client private key for mutual TLS (PEM)."""

    server_name: str = ""
    """Name to verify in the server's certificate instead of `host` (TLS)."""

    insecure_skip_verify: bool = False
    """Accept any server certificate (TLS). For tests only: it allows interception."""

    batch_max_alerts: int = Field(default=64, ge=1, le=10_000)
    """Frames written with one `write` on TCP/TLS (UDP sends one datagram per alert)."""

    @field_validator("app_name")
    @classmethod
    def _app_name_ascii(cls, value: str) -> str:
        if not value or len(value) > 48 or not all(33 <= ord(c) <= 126 for c in value):
            raise ValueError("must be 1-48 printable ASCII characters without spaces")
        return value


class HttpSettings(ChannelSettings):
    """A webhook: alerts POSTed as JSON, one per request or batched."""

    model_config = SETTINGS_CONFIG

    url: str = ""
    """Receiver URL (http or https)."""

    method: Literal["POST", "PUT"] = "POST"
    """HTTP method of each request."""

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra request headers. Values are treated as secrets: never logged or printed."""

    header_files: dict[str, Path] = Field(default_factory=dict)
    """Headers whose value is read from a file (trailing newline removed), e.g.
    `Authorization: /var/run/secrets/webhook/token`. Re-read when the file changes, so a rotated
    token is picked up without a restart."""

    header_env: dict[str, str] = Field(default_factory=dict)
    """Headers whose value comes from an environment variable (header -> variable name),
    resolved once at start by the composition root."""

    ca_file: Path | None = None
    """PEM CA bundle for an https receiver; none uses the system store."""

    insecure_skip_verify: bool = False
    """Accept any server certificate. For tests only: it allows interception."""

    timeout: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    """Time allowed for one request, connection included."""

    batch_max_alerts: int = Field(default=1, ge=1, le=10_000)
    """1 posts each alert as one JSON object; more posts `{"alerts": [...]}` with up to this
    many alerts."""

    batch_max_delay: Duration = Field(default=timedelta(seconds=1), ge=timedelta(0))
    """Longest time a partial batch waits for more alerts (only when `batchMaxAlerts` > 1)."""

    max_alerts_per_minute: int = Field(default=1000, ge=0)
    """Alerts posted per one-minute window (0 = unlimited). 1000 protects a receiver from a
    flood (a misbehaving workload) while never limiting a healthy cluster."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class AlertManagerSettings(ChannelSettings):
    """Prometheus AlertManager, API v2. Every URL gets every alert (an HA pair)."""

    model_config = SETTINGS_CONFIG

    urls: list[str] = Field(default_factory=list)
    """Base URLs, e.g. `http://alertmanager-operated.monitoring:9093`. Each gets its own queue,
    so a dead member of an HA pair never delays the other."""

    resolve_after: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    """How long an alert stays firing after its behaviour was last seen. `endsAt` is computed
    from the time of sending (`now + resolveAfter`, as Prometheus does), never from event time,
    so replayed or clock-skewed alerts are still shown; repeats re-send the alert before it
    expires. 1 h matches the detector's default cooldown."""

    resend_interval: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    """A firing alert whose behaviour repeated is re-sent (new `endsAt` and count) at most this
    often, and at least twice per `resolveAfter`. 1 min is Prometheus' own resend delay."""

    max_finding_alerts: int = Field(default=10, ge=1, le=1000)
    """Distinct findings of one rule in one workload container that get an AlertManager alert
    of their own at a time (label `finding`); further ones share one `finding="overflow"`
    alert listing them with their counts. 10 shows every finding of a real incident while
    bounding a misbehaving workload to 11 alerts per rule (docs/exporters.md)."""

    generator_url: str = ""
    """`generatorURL` of each alert. `{rule_id}`, `{namespace}`, `{workload_name}`, `{pod}`,
    `{container}` and `{fingerprint}` are replaced (URL-quoted)."""

    extra_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every alert, e.g. `cluster: prod-eu`, for routing."""

    username: str = ""
    """Basic auth user name."""

    password: SecretStr | None = None
    """Basic auth password (prefer `passwordFile`); never logged or printed."""

    password_file: Path | None = None
    """File holding the basic auth password."""

    bearer_token: SecretStr | None = None
    """Bearer token (prefer `bearerTokenFile`); never logged or printed."""

    bearer_token_file: Path | None = None
    """File holding the bearer token; re-read when it changes."""

    ca_file: Path | None = None
    """PEM CA bundle for https AlertManagers; none uses the system store."""

    insecure_skip_verify: bool = False
    """Accept any server certificate. For tests only."""

    timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    """Time allowed for one request, connection included."""

    batch_max_alerts: int = Field(default=64, ge=1, le=10_000)
    """Alerts per `POST /api/v2/alerts` (the API takes an array)."""

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must start with http:// or https://")
        return value

    @field_validator("extra_labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                raise ValueError(f"{name!r} is not a valid label name")
        return value


OtlpProtocol = Literal["grpc", "http"]


class OtlpSettings(ChannelSettings):
    """OpenTelemetry (OTLP) logs: one log record per alert, to a collector or any OTLP backend.

    The endpoint keys follow the Kubescape operator chart's `otelCollector` block (host, port,
    insecure, headers), so a cluster that already runs a collector for Kubescape can point the
    agent at the same one."""

    model_config = SETTINGS_CONFIG

    host: str = ""
    """Collector host name or address, e.g. `otel-collector.monitoring`."""

    port: int = Field(default=4317, ge=1, le=65535)
    """Collector port: 4317 is OTLP/gRPC's registered port; OTLP/HTTP listens on 4318."""

    protocol: OtlpProtocol = "grpc"
    """`grpc` (OTLP/gRPC, `LogsService/Export`) or `http` (OTLP/HTTP protobuf, `POST /v1/logs`)."""

    insecure: bool = False
    """Plain text (no TLS), as the chart's `otelCollector.endpoint.insecure`: for a collector
    on the node or in the cluster network only."""

    ca_file: Path | None = None
    """PEM CA bundle that signed the collector's certificate; none uses the system store."""

    cert_file: Path | None = None
    """Client certificate for mutual TLS (PEM), with `keyFile`."""

    key_file: Path | None = None
    """Client private key for mutual TLS (PEM)."""

    server_name: str = ""
    """Name to verify in the collector's certificate instead of `host`."""

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra request headers (gRPC metadata), e.g. a backend's API key. Values are secrets:
    never logged or printed."""

    headers_dir: Path | None = None
    """A directory whose every file is one header: the file name is the header name, its
    content the value (a mounted Kubernetes Secret). Re-read when a file changes."""

    timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    """Time allowed for one export call (the collector's own default exporter timeout)."""

    service_name: str = "gadgetwatch"
    """`service.name` of the resource: how backends group the agent's records."""

    resource_attributes: dict[str, str] = Field(default_factory=dict)
    """Extra resource attributes on every record, e.g. `deployment.environment.name: prod`."""

    export_metrics: bool = False
    """Also push the agent's own metrics (the instruments of `/metrics`) to the collector, every
    `metricsInterval`, with the same endpoint, TLS and headers. Off: Prometheus scraping is
    the primary source, and one agent per node pushing doubles the series if both are used."""

    metrics_interval: Duration = Field(default=timedelta(seconds=60), ge=timedelta(seconds=1))
    """Time between metric pushes: 60 s is the OpenTelemetry SDK's default export interval."""

    batch_max_alerts: int = Field(default=64, ge=1, le=10_000)
    """Log records per export call. 64 alerts encode to a few tens of KiB, far below gRPC's
    default 4 MiB message limit even with long command lines."""

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        # A host name or address only: a scheme, path or `user@` here would be sent as part of
        # the gRPC target and could carry credentials into logs.
        if value and not re.fullmatch(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]", value):
            raise ValueError("must be a host name or address (no scheme, port, path or user)")
        return value

    @field_validator("headers")
    @classmethod
    def _metadata_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
        return value


class ExportersSettings(BaseModel):
    """Alert destinations. With none enabled, alerts go to stdout as JSON lines."""

    model_config = SETTINGS_CONFIG

    stdout: StdoutSettings = StdoutSettings()
    """One JSON alert per line on standard output."""

    syslog: SyslogSettings = SyslogSettings()
    """RFC 5424 syslog over UDP, TCP or TLS."""

    http: HttpSettings = HttpSettings()
    """JSON webhook."""

    alertmanager: AlertManagerSettings = AlertManagerSettings()
    """Prometheus AlertManager (API v2)."""

    otlp: OtlpSettings = OtlpSettings()
    """OpenTelemetry logs over OTLP/gRPC or OTLP/HTTP."""

    close_timeout: Duration = Field(default=timedelta(seconds=2), gt=timedelta(0))
    """Time allowed to close each exporter's connections after the queues are drained."""

    healthcheck_interval: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    """How often an unhealthy exporter's destination is probed again (readiness recovers
    without waiting for the next alert)."""


class ListenerSettings(BaseModel):
    """A section with an `address` to listen on (`host:port`; an empty host means
    `default_host`): one validation and one split for every listener of the agent."""

    model_config = SETTINGS_CONFIG

    #: The host an address like `:9090` listens on.
    default_host: ClassVar[str] = "0.0.0.0"
    if TYPE_CHECKING:  # declared by each subclass, where it sits in its documented order
        address: str

    @field_validator("address", check_fields=False)
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port")
        return value

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]") or self.default_host

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


class MetricsSettings(ListenerSettings):
    """The Prometheus endpoint, with liveness and readiness beside it."""

    enabled: bool = True
    """Serve `/metrics`, `/healthz` and `/readyz`."""

    address: str = "0.0.0.0:9090"
    """`host:port` to listen on. All interfaces, because Prometheus scrapes the pod IP; 9090
    is the conventional metrics port (use `127.0.0.1:…` on a shared host)."""
