"""Targets: where IG listens, and the gRPC channels that reach it.

A target string names one IG installation:

* `unix:///var/run/ig/ig.socket` (the default, `ig daemon`'s own) or any `unix://` path;
* `tcp://host:port`, optionally with mTLS (`TlsSettings`: client key and certificate, server CA,
  server-name override), like `ig daemon --tls-*` / `gadgetctl --tls-*`;
* `k8s://[namespace][?node=a,b]`: IG's `gadget` DaemonSet, one endpoint per node through the API
  server's pod port-forward (`k8s.py` opens the local bridges).

`parse_target` checks the string; `open_channel` builds a `grpc.aio` channel with a raised
receive limit and a short reconnect back-off (the session does its own back-off on top).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gadgetclient.config import GadgetClientSettings, TlsSettings
from gadgetclient.errors import TargetError

DEFAULT_TARGET = "unix:///var/run/ig/ig.socket"
#: The port IG's gadget pods serve gRPC on (api.GadgetServicePort).
GADGET_SERVICE_PORT = 8080


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A parsed target string."""

    scheme: str  # "unix" | "tcp" | "k8s"
    address: str = ""  # grpc address for unix/tcp
    namespace: str = ""  # k8s: IG's namespace ("" = discover)
    nodes: tuple[str, ...] = ()  # k8s: node filter ("" = all)
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One gRPC server: an address and the node its events are tagged with."""

    address: str
    node: str = ""
    tls: TlsSettings | None = None


def parse_target(target: str) -> TargetSpec:
    """Parse a target string; raises `TargetError` with the accepted forms."""
    text = target.strip() or DEFAULT_TARGET
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise TargetError(
            "expected unix:///path, tcp://host:port or k8s://[namespace][?node=a,b]", where=text
        )
    if scheme == "unix":
        if not rest.startswith("/"):
            raise TargetError("a unix socket target needs an absolute path", where=text)
        return TargetSpec("unix", address=f"unix://{rest}", raw=text)
    if scheme == "tcp":
        parsed = urllib.parse.urlsplit(text)
        try:
            port = parsed.port
        except ValueError as exc:
            raise TargetError("invalid port", where=text) from exc
        if not parsed.hostname or port is None:
            raise TargetError("a tcp target needs host and port (tcp://host:port)", where=text)
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return TargetSpec("tcp", address=f"{host}:{port}", raw=text)
    if scheme == "k8s":
        parsed = urllib.parse.urlsplit(text)
        query = urllib.parse.parse_qs(parsed.query)
        unknown = set(query) - {"node"}
        if unknown:
            raise TargetError(f"unknown k8s target option(s) {sorted(unknown)}", where=text)
        nodes = tuple(n.strip() for v in query.get("node", []) for n in v.split(",") if n.strip())
        return TargetSpec("k8s", namespace=parsed.netloc, nodes=nodes, raw=text)
    raise TargetError(f"unknown target scheme {scheme!r}", where=text)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {what}: {exc.strerror}", where=path) from exc


def channel_options(settings: GadgetClientSettings) -> list[tuple[str, Any]]:
    """Channel options: a raised receive limit, and a reconnect back-off capped by ours."""
    max_backoff_ms = int(settings.reconnect_max.total_seconds() * 1000)
    return [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        # gRPC's own reconnect back-off starts at 1 s and grows to 120 s; an IG pod that
        # restarts should be found again as soon as it listens, within our own back-off.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", max(100, max_backoff_ms)),
    ]


def open_channel(endpoint: Endpoint, settings: GadgetClientSettings) -> grpc.aio.Channel:
    """A `grpc.aio` channel to one endpoint (insecure, or mTLS when `endpoint.tls` is set)."""
    options = channel_options(settings)
    tls = endpoint.tls
    if tls is None or not tls.enabled:
        return grpc.aio.insecure_channel(endpoint.address, options=options)
    if endpoint.address.startswith("unix:"):
        raise TargetError("TLS is supported on tcp:// targets only", where=endpoint.address)
    if not (tls.client_key and tls.client_cert and tls.server_ca):
        raise TargetError(
            "mTLS needs the client key, the client certificate and the server CA together",
            where=endpoint.address,
        )
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.server_ca, "server CA"),
        private_key=_read(tls.client_key, "client key"),
        certificate_chain=_read(tls.client_cert, "client certificate"),
    )
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(endpoint.address, creds, options=options)


def static_endpoints(spec: TargetSpec, settings: GadgetClientSettings) -> list[Endpoint]:
    """Endpoints of a unix or tcp target (k8s targets go through `k8s.port_forwards`)."""
    if spec.scheme == "k8s":
        raise TargetError("k8s targets need port-forward bridges", where=spec.raw)
    tls = settings.tls if settings.tls.enabled else None
    return [Endpoint(address=spec.address, node="", tls=tls)]
