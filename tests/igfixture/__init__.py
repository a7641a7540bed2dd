"""The grpc-go IG stand-in (`main.go`): build it, give it events, run it.

IG's daemon is grpc-go; grpcio (our replay server) is a different HTTP/2 implementation with
other framing, write coalescing and HPACK choices. `main.go` is built from Debian's `golang-go` and
`golang-google-grpc-dev` in GOPATH mode (no download). The binary is cached under the checkout's
`.venv/igfixture/<hash of the source and the Go version>/`, so it builds once per change (about
15 s cold, 2 s with the Go build cache that sits beside it).

Events are written per gadget as `<dir>/<gadget>.events` from a `ReplayGadget` (the replay
server's own pre-encoded payloads): one GadgetInfo record, then payload records.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gadgetclient.capture import Capture, CaptureLine
from gadgetclient.layouts import EVENT_GADGET_INFO
from gadgetclient.replay import compile_gadget
from gadgetclient.wire import gadget_info_to_proto

SOURCE = Path(__file__).with_name("main.go")
ROOT = Path(__file__).resolve().parents[2]
#: Debian's Go packages live here (golang-google-grpc-dev and its dependencies).
GOPATH = "/usr/share/gocode"
#: Seconds to wait for the fixture's LISTENING line: it starts in milliseconds.
START_TIMEOUT = 10.0
_RECORD = struct.Struct("<IIII")


class FixtureError(RuntimeError):
    """The Go toolchain or the fixture did not work (the message says what to install)."""


def _go() -> str:
    go = shutil.which("go") or ("/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").exists() else "")
    if not go or not Path(GOPATH, "src/google.golang.org/grpc").is_dir():
        raise FixtureError(
            "the grpc-go fixture needs Debian's golang-go and golang-google-grpc-dev "
            "(scripts/setup.sh --dev installs them)"
        )
    return go


def binary() -> Path:
    """The built fixture, building it when its source or the Go version changed."""
    go = _go()
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode()).hexdigest()[:16]
    base = ROOT / ".venv" if (ROOT / ".venv").is_dir() else Path(tempfile.gettempdir())
    out_dir = base / "igfixture" / key
    exe = out_dir / "igfixture"
    if exe.exists():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOPATH": GOPATH,
        "GO111MODULE": "off",
        "GOFLAGS": "",
        "GOCACHE": str(base / "igfixture" / "gocache"),
    }
    tmp = out_dir / f"igfixture.{os.getpid()}"
    done = subprocess.run(
        [go, "build", "-o", str(tmp), str(SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        cwd=SOURCE.parent,
        check=False,
    )
    if done.returncode:
        raise FixtureError(f"go build of the fixture failed:\n{done.stderr}")
    tmp.replace(exe)
    return exe


def write_events(directory: Path, capture: Capture, *, version: str = "0.55.1") -> list[str]:
    """One `<gadget>.events` file per gadget of the capture; returns the gadget names."""
    by_gadget: dict[str, list[CaptureLine]] = {}
    for line in capture.lines:
        by_gadget.setdefault(line.gadget, []).append(line)
    for name, lines in by_gadget.items():
        gadget = compile_gadget(name, lines, version=version)
        info = gadget_info_to_proto(gadget.info).SerializeToString()
        with (directory / f"{name}.events").open("wb") as f:
            f.write(_RECORD.pack(EVENT_GADGET_INFO, 0, 0, len(info)) + info)
            for packet in gadget.packets:
                flags = 1 if packet.flush else 0
                f.write(_RECORD.pack(0, packet.ds_id, flags, len(packet.payload)))
                f.write(packet.payload)
    return sorted(by_gadget)


def append_log(directory: Path, gadget: str, severity: int, message: str) -> None:
    """A log event among the payloads (sent in file order, outside the seq numbering)."""
    data = message.encode()
    with (directory / f"{gadget}.events").open("ab") as f:
        f.write(_RECORD.pack(severity << 16, 0, 0, len(data)) + data)


@dataclass
class Fixture:
    """A running fixture: `target` is the gadgetwatch target string."""

    process: subprocess.Popen[bytes]
    target: str

    def stderr(self) -> str:
        """What the fixture reported (only once it has exited)."""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


@contextmanager
def running(events_dir: Path, *, listen: str, args: Sequence[str] = ()) -> Iterator[Fixture]:
    """Start the fixture on `listen` (`unix:/path` or `tcp:127.0.0.1:0`); stop it on exit."""
    proc = subprocess.Popen(
        [str(binary()), "-listen", listen, "-events-dir", str(events_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # blocks until it listens (or dies)
        if not line.startswith("LISTENING "):
            proc.kill()
            raise FixtureError(f"the fixture did not start: {line} {proc.communicate()[1]!r}")
        address = line.removeprefix("LISTENING ")
        target = f"unix://{address}" if listen.startswith("unix:") else f"tcp://{address}"
        yield Fixture(proc, target)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
