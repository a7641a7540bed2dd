"""The OpenTelemetry exporter: each alert as one OTLP log record, over gRPC or HTTP.

    Alert ─► log_record(): attributes (OTel semantic conventions + `gadgetwatch.*`), severity
          ─► ReadableLogRecord (opentelemetry-sdk) ─► encode_logs (the SDK's OTLP encoder)
          ─► ExportLogsServiceRequest ─► LogsService/Export (grpc.aio)  or  POST /v1/logs

Why not the SDK's `OTLPLogExporter` behind a `BatchLogRecordProcessor`: that exporter retries
inside `export()` with its own blocking backoff and reduces every outcome to success/failure,
and the processor keeps its own queue and drops silently when it is full. The exporter contract
(package docstring) wants the opposite: one queue per exporter owned by `Delivery`, no retry
inside `send`, and a transient/permanent decision per attempt so drops are counted by reason.
So the record model and the wire encoding are the SDK's, the transport is the proto's own
generated stub on a grpc.aio channel (asyncio, no thread), and `Delivery` does the rest.

Status handling: gRPC `OK` delivered; `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`,
`ABORTED`, `CANCELLED`, `OUT_OF_RANGE` and `DATA_LOSS` transient (the OTLP specification's
retryable codes); every other code permanent (`INVALID_ARGUMENT`: the collector rejected the
content; `UNAUTHENTICATED`, `PERMISSION_DENIED`: our credentials). Over HTTP, statuses map as
for the webhook (`transport.classify`). A response whose `partial_success` rejects records is a
permanent failure of the batch: sending the same records again would be rejected again.

Attributes: Kubernetes, container, process, network and file attributes use the semantic
conventions' names (`k8s.pod.name`, `container.id`, `process.executable.path`,
`destination.address`, ...); everything gadgetwatch-specific is under `gadgetwatch.` (rule,
MITRE, fingerprint, deduplication, profile, other event fields). Strings are already bounded
and free of control characters (`detector.alerts.safe_text`); lone surrogates, which protobuf
cannot encode, are escaped here.

Secrets: header values (inline, or files of a mounted Secret in `headersDir`) are sent as gRPC
metadata / HTTP headers and never logged; errors name the header, not its value.

This is the one exporters module that imports grpc (an adapter, like the Kubernetes ones).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from detector.alerts import Alert, Severity
from exporters.config import OtlpSettings
from exporters.errors import ExporterError, SendError
from exporters.transport import SecretFile, classify, client_ssl, make_session, probe

#: The OTLP specification's retryable gRPC codes (the same list the SDK's exporter retries).
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)

#: Rule severity -> OTel severity number: info stays informational, low is a warning, the rest
#: are errors of rising weight, and critical is the top (FATAL) so backends page on it.
SEVERITY_NUMBERS: Mapping[Severity, SeverityNumber] = {
    Severity.INFO: SeverityNumber.INFO,
    Severity.LOW: SeverityNumber.WARN,
    Severity.MEDIUM: SeverityNumber.ERROR,
    Severity.HIGH: SeverityNumber.ERROR3,
    Severity.CRITICAL: SeverityNumber.FATAL,
}

#: Workload kind -> the semantic conventions' name attribute for that controller.
WORKLOAD_ATTRIBUTES: Mapping[str, str] = {
    "Deployment": "k8s.deployment.name",
    "ReplicaSet": "k8s.replicaset.name",
    "StatefulSet": "k8s.statefulset.name",
    "DaemonSet": "k8s.daemonset.name",
    "Job": "k8s.job.name",
    "CronJob": "k8s.cronjob.name",
}

#: Event fields with a semantic-conventions name, per event type; the others keep their name
#: under `gadgetwatch.event.`.
EVENT_ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "tcp": {
        "srcAddr": "source.address",
        "srcPort": "source.port",
        "dstAddr": "destination.address",
        "dstPort": "destination.port",
    },
    "dns": {"name": "dns.question.name"},
    "open": {"path": "file.path"},
}

#: Instrumentation scope of every record: the exporter that produced it.
SCOPE = InstrumentationScope("gadgetwatch.exporters.otlp")

#: Event name of every record, so backends can select alerts among other logs.
EVENT_NAME = "gadgetwatch.alert"

#: Largest OTLP/gRPC message the collector accepts by default (its gRPC server's 4 MiB); a
#: batch is split in halves until each part fits, so one huge alert cannot block the queue.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_PROTOBUF = "application/x-protobuf"


def _text(value: str) -> str:
    """A string protobuf can encode: lone surrogates become `\\udXXX` escapes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _value(value: Any) -> Any:
    """An attribute value: a primitive, a list of one primitive type, or JSON text."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        kinds = {type(v) for v in value}
        if len(kinds) <= 1 and kinds <= {str, bool, int, float}:
            return [_text(v) if isinstance(v, str) else v for v in value]
    return _text(orjson.dumps(value, default=str).decode())


def alert_attributes(alert: Alert) -> dict[str, Any]:
    """The log record's attributes (empty values left out: absent is clearer than "")."""
    k8s, rt, proc, rule = alert.kubernetes, alert.runtime, alert.process, alert.rule
    attrs: dict[str, Any] = {
        "k8s.cluster.name": alert.cluster,
        "k8s.node.name": k8s.node,
        "k8s.namespace.name": k8s.namespace,
        "k8s.pod.name": k8s.pod,
        "k8s.container.name": k8s.container,
        "container.id": rt.container_id,
        "container.image.name": rt.image,
        "process.executable.name": proc.comm,
        "process.executable.path": proc.exe,
        "process.working_directory": proc.cwd,
        "gadgetwatch.alert.id": alert.id,
        "gadgetwatch.alert.kind": alert.kind.value,
        "gadgetwatch.alert.fingerprint": alert.fingerprint,
        "gadgetwatch.rule.id": str(rule.id),
        "gadgetwatch.rule.name": rule.name,
        "gadgetwatch.rule.severity": rule.severity.label,
        "gadgetwatch.mitre.tactic": rule.mitre_tactic,
        "gadgetwatch.mitre.technique": rule.mitre_technique,
        "gadgetwatch.workload.kind": k8s.workload_kind,
        "gadgetwatch.workload.name": k8s.workload_name,
        "gadgetwatch.fix_suggestion": alert.fix_suggestion,
        "gadgetwatch.parent.executable.name": proc.pcomm,
    }
    workload_attr = WORKLOAD_ATTRIBUTES.get(k8s.workload_kind)
    if workload_attr is not None:
        attrs[workload_attr] = k8s.workload_name
    attrs = {k: _text(v) for k, v in attrs.items() if v}
    if rt.image_digest:
        attrs["container.image.repo_digests"] = [_text(rt.image_digest)]
    if rule.tags:
        attrs["gadgetwatch.rule.tags"] = [_text(t) for t in rule.tags]
    if proc.pid:
        attrs["process.pid"] = proc.pid
        attrs["process.parent_pid"] = proc.ppid
        attrs["process.user.id"] = proc.uid
        attrs["process.group.id"] = proc.gid
    if proc.args:
        attrs["process.command_args"] = [_text(a) for a in proc.args]
    attrs["gadgetwatch.dedup.count"] = alert.dedup.count
    if alert.dedup.first_seen_ns:
        attrs["gadgetwatch.dedup.first_seen_unix_nano"] = alert.dedup.first_seen_ns
        attrs["gadgetwatch.dedup.last_seen_unix_nano"] = alert.dedup.last_seen_ns
    if alert.profile is not None:
        attrs["gadgetwatch.profile.name"] = _text(alert.profile.name)
        attrs["gadgetwatch.profile.status"] = _text(alert.profile.status)
    event_type = str(alert.event.get("type", ""))
    if event_type == "tcp":
        attrs["network.transport"] = "tcp"
    renamed = EVENT_ATTRIBUTES.get(event_type, {})
    for key, value in alert.event.items():
        if value in ("", None, [], {}):
            continue
        name = renamed.get(key) or f"gadgetwatch.event.{_text(key)}"
        attrs[name] = _value(value)
    return attrs


class OtlpExporter:
    """Alerts as OTLP log records. Connections open on first use (building is offline)."""

    def __init__(
        self,
        settings: OtlpSettings,
        *,
        name: str = "otlp",
        agent_version: str = "",
    ) -> None:
        if not settings.host:
            raise ExporterError("no host configured", exporter=name, field="exporters.otlp.host")
        self._name = name
        self._settings = settings
        self._closed = False
        attributes: dict[str, str] = {"service.name": settings.service_name}
        if agent_version:
            attributes["service.version"] = agent_version
        attributes.update(settings.resource_attributes)
        # `Resource(...)`, not `Resource.create`: the latter reads OTEL_* environment variables,
        # and only the configuration loader reads the environment.
        self._resource = Resource(attributes)
        self._headers = {k.lower(): v.get_secret_value() for k, v in settings.headers.items()}
        self._dir_files: dict[str, SecretFile] = {}
        self._target = f"{settings.host}:{settings.port}"
        self._channel: grpc.aio.Channel | None = None
        self._stub: LogsServiceStub | None = None
        self._metrics_stub: MetricsServiceStub | None = None
        self._session: aiohttp.ClientSession | None = None
        self._credentials: grpc.ChannelCredentials | None = None
        self._http_ssl: ssl.SSLContext | bool = True
        if settings.protocol == "grpc" and not settings.insecure:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=self._read(settings.ca_file, "caFile"),
                private_key=self._read(settings.key_file, "keyFile"),
                certificate_chain=self._read(settings.cert_file, "certFile"),
            )
        elif settings.protocol == "http" and not settings.insecure:
            context = client_ssl(
                ca_file=settings.ca_file,
                insecure=False,
                exporter=name,
                field="exporters.otlp.caFile",
            )
            if settings.cert_file is not None:
                if not isinstance(context, ssl.SSLContext):
                    context = ssl.create_default_context()
                try:
                    context.load_cert_chain(settings.cert_file, settings.key_file)
                except (OSError, ssl.SSLError) as exc:
                    raise ExporterError(
                        f"cannot load the client certificate {settings.cert_file}: {exc}",
                        exporter=name,
                        field="exporters.otlp.certFile",
                    ) from exc
            self._http_ssl = context
        scheme = "http" if settings.insecure else "https"
        self._url = f"{scheme}://{self._target}/v1/logs"
        self._metrics_url = f"{scheme}://{self._target}/v1/metrics"

    def _read(self, path: Path | None, key: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ExporterError(
                f"cannot read {path}: {exc.strerror or exc}",
                exporter=self._name,
                field=f"exporters.otlp.{key}",
            ) from exc

    @property
    def name(self) -> str:
        return self._name

    @property
    def channel(self) -> OtlpSettings:
        return self._settings

    @property
    def endpoint(self) -> str:
        """Where records go, for logs and errors (no credentials in it)."""
        return self._url if self._settings.protocol == "http" else self._target

    # -- encoding -------------------------------------------------------------------------

    def records(self, batch: Sequence[Alert]) -> list[ReadableLogRecord]:
        observed = time.time_ns()
        return [
            ReadableLogRecord(
                log_record=LogRecord(
                    timestamp=alert.time_ns,
                    observed_timestamp=observed,
                    severity_text=alert.rule.severity.label.upper(),
                    severity_number=SEVERITY_NUMBERS[alert.rule.severity],
                    body=_text(alert.message),
                    attributes=alert_attributes(alert),
                    event_name=EVENT_NAME,
                ),
                resource=self._resource,
                instrumentation_scope=SCOPE,
            )
            for alert in batch
        ]

    def request_bytes(self, batch: Sequence[Alert]) -> list[bytes]:
        """Serialized `ExportLogsServiceRequest`s for `batch`, each below the message limit."""
        body: bytes = encode_logs(self.records(batch)).SerializeToString()
        if len(body) <= MAX_MESSAGE_BYTES or len(batch) == 1:
            return [body]
        half = len(batch) // 2
        return [*self.request_bytes(batch[:half]), *self.request_bytes(batch[half:])]

    def _metadata(self) -> list[tuple[str, str]]:
        headers = dict(self._headers)
        directory = self._settings.headers_dir
        if directory is not None:
            try:
                names = sorted(
                    p.name for p in directory.iterdir() if p.is_file() and p.name[0] != "."
                )
            except OSError as exc:
                raise SendError(
                    f"cannot list headersDir {directory}: {exc.strerror or exc}",
                    exporter=self._name,
                ) from exc
            for file_name in names:
                secret = self._dir_files.get(file_name)
                if secret is None:
                    secret = SecretFile(directory / file_name, label=f"header {file_name}")
                    self._dir_files[file_name] = secret
                headers[file_name.lower()] = secret.read(exporter=self._name)
        return list(headers.items())

    # -- transport ------------------------------------------------------------------------

    def _grpc_stub(self) -> LogsServiceStub:
        if self._stub is None:
            options: list[tuple[str, Any]] = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
            if self._settings.server_name:
                options.append(("grpc.ssl_target_name_override", self._settings.server_name))
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self._target, self._credentials, options=options
                )
            self._stub = LogsServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        if not batch:
            return
        metadata = self._metadata()
        for body in self.request_bytes(batch):
            if self._settings.protocol == "grpc":
                await self._export_grpc(body, metadata)
            else:
                payload = await self._post(self._url, body, metadata)
                if payload:
                    try:
                        parsed = ExportLogsServiceResponse.FromString(payload)
                    except Exception:  # a 2xx with an unparsable body still took the records
                        continue
                    self._check_partial(parsed)

    def _rpc_error(self, exc: grpc.aio.AioRpcError) -> SendError:
        code = exc.code()
        detail = " ".join((exc.details() or "").split())[:200]
        return SendError(
            f"{self._target} answered {code.name}" + (f": {detail}" if detail else ""),
            exporter=self._name,
            permanent=code not in RETRYABLE_CODES,
        )

    async def _export_grpc(self, body: bytes, metadata: list[tuple[str, str]]) -> None:
        stub = self._grpc_stub()
        request = ExportLogsServiceRequest.FromString(body)
        try:
            response = await stub.Export(
                request,
                metadata=metadata,
                timeout=self._settings.timeout.total_seconds(),
            )
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(exc) from exc
        self._check_partial(response)

    async def export_metrics(self, request: ExportMetricsServiceRequest) -> None:
        """Push one metrics request to the same collector (`otlp_metrics`); `SendError` as for
        alerts. The agent's own metrics share the endpoint, TLS and headers."""
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        metadata = self._metadata()
        if self._settings.protocol == "http":
            await self._post(self._metrics_url, request.SerializeToString(), metadata)
            return
        self._grpc_stub()
        if self._metrics_stub is None:
            self._metrics_stub = MetricsServiceStub(self._channel)  # type: ignore[no-untyped-call]
        try:
            await self._metrics_stub.Export(
                request, metadata=metadata, timeout=self._settings.timeout.total_seconds()
            )
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_error(exc) from exc

    async def _post(self, url: str, body: bytes, metadata: list[tuple[str, str]]) -> bytes:
        """POST one OTLP/HTTP request; the 2xx response body, or `SendError`."""
        if self._session is None:
            self._session = make_session(
                ssl_setting=self._http_ssl, timeout_s=self._settings.timeout.total_seconds()
            )
        headers = {"Content-Type": _PROTOBUF, **dict(metadata)}
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                status = response.status
                payload = await response.read()
        except TimeoutError as exc:
            raise SendError(f"{url} did not answer in time", exporter=self._name) from exc
        except aiohttp.ClientError as exc:
            raise SendError(f"cannot reach {url}: {exc}", exporter=self._name) from exc
        text = "" if 200 <= status < 300 else payload[:200].decode("utf-8", "replace")
        error = classify(status, exporter=self._name, target=url, body=text)
        if error is not None:
            raise error
        return payload

    def _check_partial(self, response: ExportLogsServiceResponse) -> None:
        rejected = response.partial_success.rejected_log_records
        if rejected:
            message = " ".join(response.partial_success.error_message.split())[:200]
            raise SendError(
                f"{self.endpoint} rejected {rejected} record(s)"
                + (f": {message}" if message else ""),
                exporter=self._name,
                permanent=True,
            )

    async def healthcheck(self) -> None:
        if self._closed:
            raise ExporterError("exporter is closed", exporter=self._name)
        timeout = self._settings.timeout.total_seconds()
        if self._settings.protocol == "http":
            try:
                await probe(self._url, ssl_setting=self._http_ssl, timeout_s=timeout)
            except (OSError, TimeoutError) as exc:
                raise ExporterError(
                    f"cannot reach {self._url}: {str(exc) or type(exc).__name__}",
                    exporter=self._name,
                ) from exc
            return
        self._grpc_stub()
        assert self._channel is not None
        try:
            async with asyncio.timeout(timeout):
                await self._channel.channel_ready()
        except TimeoutError as exc:
            raise ExporterError(
                f"cannot connect to {self._target} within {timeout:g} s", exporter=self._name
            ) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        channel, self._channel, self._stub = self._channel, None, None
        self._metrics_stub = None
        if channel is not None:
            await channel.close(grace=None)
        if self._session is not None:
            await self._session.close()
            self._session = None
