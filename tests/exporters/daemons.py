"""Real daemons on loopback for the exporter tests: rsyslog and Prometheus Alertmanager.

Each starts with a private configuration and directory, is waited for with a readiness check
(a condition with a deadline, never a fixed sleep), and is always terminated by its fixture.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.exporters.helpers import free_port, wait_until_sync

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
GTLS_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog")


def gtls_available() -> bool:
    return any(Path(d, "lmnsd_gtls.so").exists() for d in GTLS_MODULE_DIRS)


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    d = directory

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=gadgetwatch test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return TlsFiles(ca=d / "ca.crt", cert=d / "server.crt", key=d / "server.key")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Rsyslog:
    """rsyslogd with imudp + imtcp (plain, or TLS via gtls) writing RFC 5424 lines to a file."""

    def __init__(self, directory: Path, *, tls: TlsFiles | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "out.log"
        self.tls = tls
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.tcp_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        tls_global = ""
        tcp_module = 'module(load="imtcp")'
        if self.tls is not None:
            tls_global = (
                f' defaultNetstreamDriverCAFile="{self.tls.ca}"'
                f' defaultNetstreamDriverCertFile="{self.tls.cert}"'
                f' defaultNetstreamDriverKeyFile="{self.tls.key}"'
            )
            tcp_module = (
                'module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"'
                ' streamDriver.authMode="anon")'
            )
        # maxMessageSize 64k: larger than anything we send, so truncation would be ours.
        return "\n".join(
            [
                f'global(workDirectory="{self.dir}" maxMessageSize="64k"{tls_global})',
                'module(load="imudp")',
                tcp_module,
                f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}")',
                f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")',
                f'action(type="omfile" file="{self.out}"'
                ' template="RSYSLOG_SyslogProtocol23Format")',
                "",
            ]
        )

    def start(self) -> Rsyslog:
        conf = self.dir / "rsyslog.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_sync(
                lambda: self._alive() and _port_open(self.tcp_port),
                timeout=15,
                what="rsyslogd listening",
            )
            self._wait_udp()
        except BaseException:
            self.stop()
            raise
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            output = self.proc.stdout.read().decode() if self.proc.stdout else ""
            raise RuntimeError(f"rsyslogd exited with {self.proc.returncode}: {output}")
        return True

    def _wait_udp(self) -> None:
        """UDP has no handshake: probe datagrams until one reaches the output file."""
        probe = b"<14>1 - - readiness - - - probe"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:

            def arrived() -> bool:
                s.sendto(probe, ("127.0.0.1", self.udp_port))
                return self.out.exists() and b"readiness" in self.out.read_bytes()

            deadline = time.monotonic() + 15
            while not arrived():
                if time.monotonic() > deadline:
                    raise AssertionError("rsyslogd never wrote a UDP probe")
                self._alive()
                time.sleep(0.05)

    def lines(self, *, app_name: str) -> list[str]:
        if not self.out.exists():
            return []
        text = self.out.read_bytes().decode("utf-8", "replace")
        return [ln for ln in text.splitlines() if f" {app_name} " in ln]

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()


AM_CONFIG = """\
route:
  receiver: "null"
  group_by: [namespace, workload_kind, workload_name]
  group_wait: 1h
receivers:
  - name: "null"
"""


class Alertmanager:
    """prometheus-alertmanager with clustering off, private config and storage."""

    def __init__(self, directory: Path, *, port: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        conf = self.dir / "alertmanager.yml"
        conf.write_text(AM_CONFIG)
        self.proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={conf}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_sync(self._ready, timeout=20, what="alertmanager ready")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"alertmanager exited with {self.proc.returncode}: {err}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp,
        ):
            return bool(resp.status == 200)
        return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts"))

    def groups(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v2/alerts/groups"))

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()
