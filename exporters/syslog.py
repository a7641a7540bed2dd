"""The syslog exporter: RFC 5424 messages over UDP, TCP with octet counting, or TLS.

    Alert ──format_message──► "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD...] BOM MSG"
          ──udp──► one datagram per alert (RFC 5426)
          ──tcp──► "LEN SP MSG" frames, several per write (RFC 6587 §3.4.1 octet counting)
          ──tls──► the same frames inside TLS (RFC 5425)

Mapping (documented in docs/exporters.md):
- PRI = facility * 8 + severity, the rule severity mapped critical→2 (crit), high→3 (err),
  medium→4 (warning), low→5 (notice), info→6 (info);
- TIMESTAMP = the alert's event time in UTC, microseconds (RFC 5424 allows at most six digits);
- HOSTNAME = the configured name, else the alert's node, else this host's name;
- APP-NAME = configured (`gadgetwatch`); PROCID = the agent's pid (the *sender*, as RFC 5424
  means it; the offending process's pid is in structured data); MSGID = the rule id;
- structured data: `[alert@PEN ...]` (alert id, cluster name, rule, severity, fingerprint,
  count, kind), `[k8s@PEN ...]` (node, namespace, workload, pod, container, container id,
  image), `[proc@PEN ...]` (pid, comm, exe, args as a JSON array, cwd, uid, gid, ppid, pcomm)
  and `[event@PEN ...]` (the triggering event's fields); MSG = the alert message, after a UTF-8 BOM.

Hostile text: every value first goes through `safe_text` (control characters escaped, length
bounded), then PARAM-VALUE escaping (`"`, `\\` and `]` get a backslash), header fields are
reduced to printable ASCII, and the whole message is capped at `maxMessageBytes`. Octet
counting makes the framing independent of the content; no raw newline is ever sent, so even a
receiver that splits on newlines sees one alert per line.

Faults: UDP is fire-and-forget (an ICMP "port unreachable" from a previous datagram is reported
as a failure of the next send). TCP/TLS connections are opened lazily and re-opened after any
error or after the server closed them; an unreachable server is a transient `SendError`, never
an exception that stops the agent (the predecessors exited when syslog was unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Sequence

import orjson
import structlog

from detector.alerts import MAX_TEXT, Alert, Severity, safe_text
from exporters.config import FACILITIES, SyslogSettings
from exporters.encoding import clean_text
from exporters.errors import ExporterError, SendError

log = structlog.get_logger(__name__)

SEVERITY_CODES: dict[Severity, int] = {
    Severity.CRITICAL: 2,
    Severity.HIGH: 3,
    Severity.MEDIUM: 4,
    Severity.LOW: 5,
    Severity.INFO: 6,
}

BOM = "\ufeff"
NILVALUE = "-"

#: Successive caps on every PARAM-VALUE (characters) when a message is over
#: `maxMessageBytes`: first unbounded, then short enough that ~40 parameters fit in 8 KiB,
#: then a stub that keeps every parameter's beginning.
_VALUE_CAPS: tuple[int | None, ...] = (None, 256, 64, 16)
#: Parameters never shortened, however small the limit: the ids a receiver deduplicates and
#: correlates on (fixed, short: a 36-character UUID, 16 hex digits, a rule id).
_UNCUT = frozenset({"id", "fingerprint", "ruleId"})


def _ascii_field(value: str, *, limit: int) -> str:
    """A header field: printable ASCII without spaces (RFC 5424 §6), or the NILVALUE."""
    text = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return text or NILVALUE


def escape_param_value(value: str) -> str:
    """RFC 5424 §6.3.3: `"`, `\\` and `]` MUST be escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(name: str) -> str:
    """SD-NAME: 1-32 printable ASCII except `=`, space, `]` and `"`."""
    text = "".join(c if 33 <= ord(c) <= 126 and c not in '=]"' else "_" for c in name)[:32]
    return text or "_"


def _timestamp(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z"


def _value_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return orjson.dumps(value).decode()
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return str(value)


def _elements(alert: Alert) -> list[tuple[str, list[tuple[str, str]]]]:
    k, p, r = alert.kubernetes, alert.process, alert.runtime
    elements: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "alert",
            [
                ("id", alert.id),
                ("cluster", alert.cluster),
                ("ruleId", alert.rule.id),
                ("rule", alert.rule.name),
                ("severity", alert.rule.severity.label),
                ("kind", alert.kind.value),
                ("fingerprint", alert.fingerprint),
                ("count", str(alert.dedup.count)),
                ("fix", alert.fix_suggestion),
            ],
        ),
        (
            "k8s",
            [
                ("node", k.node),
                ("namespace", k.namespace),
                ("workloadKind", k.workload_kind),
                ("workloadName", k.workload_name),
                ("pod", k.pod),
                ("container", k.container),
                ("containerId", r.container_id),
                ("image", r.image),
                ("imageDigest", r.image_digest),
            ],
        ),
    ]
    if p.pid or p.comm or p.exe:
        elements.append(
            (
                "proc",
                [
                    ("pid", str(p.pid)),
                    ("comm", p.comm),
                    ("exe", p.exe),
                    ("args", _value_text(list(p.args))),
                    ("cwd", p.cwd),
                    ("uid", str(p.uid)),
                    ("gid", str(p.gid)),
                    ("ppid", str(p.ppid)),
                    ("pcomm", p.pcomm),
                ],
            )
        )
    if alert.event:
        elements.append(
            ("event", [(_sd_name(str(key)), _value_text(v)) for key, v in alert.event.items()])
        )
    return elements


def _render_sd(
    elements: list[tuple[str, list[tuple[str, str]]]], *, enterprise_id: int, cap: int | None
) -> str:
    parts = []
    for sd_id, params in elements:
        rendered = []
        for name, value in params:
            limit = MAX_TEXT if cap is None or name in _UNCUT else cap
            text = safe_text(clean_text(value), limit=limit)
            rendered.append(f'{name}="{escape_param_value(text)}"')
        parts.append(f"[{sd_id}@{enterprise_id} {' '.join(rendered)}]")
    return "".join(parts) or NILVALUE


def format_message(
    alert: Alert, *, settings: SyslogSettings, default_hostname: str, procid: int
) -> bytes:
    """One RFC 5424 message (no framing), at most `settings.max_message_bytes` long."""
    facility = FACILITIES.index(settings.facility)
    pri = facility * 8 + SEVERITY_CODES.get(alert.rule.severity, 4)
    hostname = _ascii_field(
        settings.hostname or alert.kubernetes.node or default_hostname, limit=255
    )
    header = (
        f"<{pri}>1 {_timestamp(alert.time_ns)} {hostname} "
        f"{_ascii_field(settings.app_name, limit=48)} {procid} "
        f"{_ascii_field(alert.rule.id, limit=32)} "
    ).encode()
    msg = safe_text(clean_text(alert.message))
    limit = settings.max_message_bytes
    elements = _elements(alert)
    for cap in _VALUE_CAPS:
        sd_bytes = _render_sd(elements, enterprise_id=settings.enterprise_id, cap=cap).encode()
        out = header + sd_bytes + b" " + (BOM + msg).encode()
        if len(out) <= limit:
            return out
    # Still too long (a tiny limit or a huge message): keep the alert element, cut the message.
    sd = _render_sd(elements[:1], enterprise_id=settings.enterprise_id, cap=_VALUE_CAPS[-1])
    head = header + sd.encode() + b" " + BOM.encode()
    room = max(0, limit - len(head))
    body = msg.encode()
    if len(body) > room:
        marker = b"...[truncated]"
        body = body[: max(0, room - len(marker))]
        body = body.decode("utf-8", "ignore").encode() + marker
    return (head + body)[:limit]


def frame(message: bytes) -> bytes:
    """RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`."""
    return str(len(message)).encode() + b" " + message


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: Exception | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = exc


class SyslogExporter:
    def __init__(self, settings: SyslogSettings, *, name: str = "syslog") -> None:
        self._name = name
        self._settings = settings
        self._hostname = socket.gethostname()
        self._procid = os.getpid()
        self._ssl: ssl.SSLContext | None = None
        if settings.transport == "tls":
            self._ssl = _tls_context(settings, exporter=name)
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def channel(self) -> SyslogSettings:
        return self._settings

    def render(self, alert: Alert) -> bytes:
        return format_message(
            alert, settings=self._settings, default_hostname=self._hostname, procid=self._procid
        )

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        messages = [self.render(a) for a in batch]
        if self._settings.transport == "udp":
            await self._send_udp(messages)
        else:
            await self._send_stream(messages)

    # -- UDP -------------------------------------------------------------------------------------

    async def _udp_endpoint(self) -> tuple[asyncio.DatagramTransport, _UdpProtocol]:
        if self._udp is None or self._udp_protocol is None or self._udp.is_closing():
            loop = asyncio.get_running_loop()
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    _UdpProtocol, remote_addr=(self._settings.host, self._settings.port)
                )
            except OSError as exc:
                raise SendError(
                    f"cannot reach {self._target}: {exc.strerror or exc}", exporter=self._name
                ) from exc
            self._udp, self._udp_protocol = transport, protocol
        return self._udp, self._udp_protocol

    async def _send_udp(self, messages: list[bytes]) -> None:
        transport, protocol = await self._udp_endpoint()
        if protocol.error is not None:
            # The ICMP error belongs to an earlier datagram; report it once, then try afresh.
            error, protocol.error = protocol.error, None
            raise SendError(f"{self._target} refused datagrams: {error}", exporter=self._name)
        for message in messages:
            transport.sendto(message)

    # -- TCP / TLS -------------------------------------------------------------------------------

    @property
    def _target(self) -> str:
        return f"{self._settings.transport}://{self._settings.host}:{self._settings.port}"

    def _connected(self) -> bool:
        return (
            self._writer is not None
            and self._reader is not None
            and not self._writer.is_closing()
            and not self._reader.at_eof()
            and not _peer_closed(self._writer)
        )

    async def _connect(self) -> asyncio.StreamWriter:
        # The health probe and the delivery task may both want a connection: one at a time.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._connect_locked()

    async def _connect_locked(self) -> asyncio.StreamWriter:
        if self._connected():
            assert self._writer is not None
            return self._writer
        await self._drop_connection()
        s = self._settings
        server_hostname = (s.server_name or s.host) if self._ssl is not None else None
        try:
            async with asyncio.timeout(s.connect_timeout.total_seconds()):
                self._reader, self._writer = await asyncio.open_connection(
                    s.host, s.port, ssl=self._ssl, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            raise SendError(f"connecting to {self._target} timed out", exporter=self._name) from exc
        except (OSError, ssl.SSLError) as exc:
            raise SendError(
                f"cannot connect to {self._target}: {exc.strerror or exc}", exporter=self._name
            ) from exc
        log.info("syslog connected", exporter=self._name, target=self._target)
        return self._writer

    async def _send_stream(self, messages: list[bytes]) -> None:
        writer = await self._connect()
        try:
            writer.write(b"".join(frame(m) for m in messages))
            await writer.drain()
        except (OSError, ssl.SSLError) as exc:
            await self._drop_connection()
            raise SendError(
                f"writing to {self._target} failed: {exc.strerror or exc}", exporter=self._name
            ) from exc

    async def _drop_connection(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    # -- lifecycle -------------------------------------------------------------------------------

    async def healthcheck(self) -> None:
        if self._closed:
            raise ExporterError("exporter is closed", exporter=self._name)
        if self._settings.transport == "udp":
            try:
                await asyncio.get_running_loop().getaddrinfo(
                    self._settings.host, self._settings.port, type=socket.SOCK_DGRAM
                )
            except OSError as exc:
                raise ExporterError(
                    f"cannot resolve {self._target}: {exc}", exporter=self._name
                ) from exc
            return
        try:
            await self._connect()
        except SendError as exc:
            raise ExporterError(exc.message, exporter=self._name) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._drop_connection()


def _peer_closed(writer: asyncio.StreamWriter) -> bool:
    """Whether the server has closed (or written to) the connection, checked synchronously.

    Syslog over TCP has no acknowledgements: a frame written after the server closed its end is
    accepted by our kernel and lost. The event loop notices the server's FIN only on its next
    turn, so a write right after a restart would go into the void; peeking at the socket sees
    it at once. A syslog server never sends data, so any readable byte (a TLS close_notify)
    also means the connection is going away.
    """
    trsock = writer.get_extra_info("socket")
    if trsock is None:
        return False
    raw = socket.socket(fileno=trsock.fileno())
    try:
        raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        raw.detach()
    return True


def _tls_context(settings: SyslogSettings, *, exporter: str) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.cert_file is not None:
            ctx.load_cert_chain(
                str(settings.cert_file),
                str(settings.key_file) if settings.key_file is not None else None,
            )
    except (OSError, ssl.SSLError) as exc:
        raise ExporterError(
            f"cannot load TLS files: {exc}", exporter=exporter, field="exporters.syslog.caFile"
        ) from exc
    if settings.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
