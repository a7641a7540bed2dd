"""A real OTLP/gRPC logs receiver on loopback, built from opentelemetry-proto's service stubs.

No collector binary can be installed here, so the tests serve `LogsService/Export` themselves
with the generated servicer on a grpc.aio server: the exporter talks real gRPC (HTTP/2, TLS,
metadata, status codes) to it. Modes:

- `healthy`: every request is kept (`requests`, `records()`), with its metadata;
- `slow`: every call waits until the receiver stops (a collector that never answers);
- `reject`: every call fails with `code` (e.g. UNAVAILABLE, INVALID_ARGUMENT);
- `partial`: records are accepted but `partial_success` rejects `rejected` of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP `AnyValue`."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind is None:
        return None
    return getattr(value, kind)


@dataclass
class Received:
    """One decoded log record with its resource attributes and the call's metadata."""

    record: LogRecord
    resource: dict[str, Any]
    scope: str
    metadata: dict[str, str]

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: any_value(kv.value) for kv in self.record.attributes}

    @property
    def body(self) -> Any:
        return any_value(self.record.body)


@dataclass
class OtlpReceiver(logs_service_pb2_grpc.LogsServiceServicer):
    mode: str = "healthy"
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    rejected: int = 0
    tls: tuple[Path, Path] | None = None  # (cert, key)
    requests: list[tuple[logs_service_pb2.ExportLogsServiceRequest, dict[str, str]]] = field(
        default_factory=list
    )
    calls: int = 0
    metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    port: int = 0
    _server: grpc.aio.Server | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def Export(  # noqa: N802 (the generated servicer's method name)
        self,
        request: logs_service_pb2.ExportLogsServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self.calls += 1
        if self.mode == "slow":
            await self._release.wait()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "receiver stopping")
        if self.mode == "reject":
            await context.abort(self.code, f"rejected by the test receiver ({self.code.name})")
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.requests.append((request, metadata))
        response = logs_service_pb2.ExportLogsServiceResponse()
        if self.mode == "partial":
            response.partial_success.rejected_log_records = self.rejected
            response.partial_success.error_message = "attribute too long"
        return response

    def metric(self, name: str) -> Any:
        """The latest pushed metric of that name (an OTLP `Metric`), or None."""
        for request in reversed(self.metrics):
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name:
                            return m
        return None

    def records(self) -> list[Received]:
        out: list[Received] = []
        for request, metadata in self.requests:
            for rl in request.resource_logs:
                resource = {kv.key: any_value(kv.value) for kv in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for rec in sl.log_records:
                        out.append(Received(rec, resource, sl.scope.name, metadata))
        return out

    async def start(self, port: int = 0) -> OtlpReceiver:
        server = grpc.aio.server()
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _MetricsServicer(self), server
        )
        if self.tls is not None:
            cert, key = self.tls
            creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
            self.port = server.add_secure_port(f"127.0.0.1:{port}", creds)
        else:
            self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        self._release.set()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """`MetricsService/Export` on the same server: requests kept in `receiver.metrics`."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    async def Export(  # noqa: N802 (the generated servicer's method name)
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        if self.receiver.mode == "reject":
            await context.abort(self.receiver.code, "rejected by the test receiver")
        self.receiver.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()
