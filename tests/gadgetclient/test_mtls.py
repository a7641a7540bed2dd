"""mTLS towards an IG-like server that requires client certificates (certs made with openssl)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gadgetclient.capture import Capture
from gadgetclient.config import TlsSettings
from gadgetclient.errors import TargetError
from gadgetclient.replay import ServerTls
from gadgetclient.source import GadgetSource
from tests.gadgetclient.conftest import sample_lines, settings_for

#: Every test here runs on both RunGadget transports (native and grpcio).
pytestmark = pytest.mark.usefixtures("both_transports")


async def test_mtls_with_server_name_override(replay_factory: Any, pki: Path) -> None:
    capture = Capture(tuple(line for line in sample_lines() if line.gadget == "trace_open"))
    tls = ServerTls(
        key=(pki / "server.key").read_bytes(),
        cert=(pki / "server.pem").read_bytes(),
        client_ca=(pki / "ca.pem").read_bytes(),
    )
    _, address = await replay_factory(capture, listen="tcp://127.0.0.1:0", tls=tls)
    client = TlsSettings(
        client_key=str(pki / "client.key"),
        client_cert=str(pki / "client.pem"),
        server_ca=str(pki / "ca.pem"),
        server_name="ig.example.internal",
    )
    events: list[Any] = []
    await GadgetSource(settings_for(address, ("trace_open",), tls=client)).run(
        on_batch=events.extend
    )
    assert len(events) == len(capture.lines)

    # Without a client certificate the server refuses the handshake: a clear target error.
    no_cert = TlsSettings(server_ca=str(pki / "ca.pem"), server_name="ig.example.internal")
    with pytest.raises(TargetError) as err:
        await GadgetSource(
            settings_for(
                address, ("trace_open",), tls=no_cert, connect_timeout=timedelta(seconds=1)
            )
        ).run()
    assert "mTLS needs the client key" in str(err.value)

    wrong_name = client.model_copy(update={"server_name": "other.example"})
    with pytest.raises(TargetError) as err:
        await GadgetSource(
            settings_for(
                address, ("trace_open",), tls=wrong_name, connect_timeout=timedelta(seconds=1)
            )
        ).run()
    assert "cannot reach IG" in str(err.value)


def test_missing_tls_files_are_reported(tmp_path: Path) -> None:
    import asyncio

    tls = TlsSettings(
        client_key=str(tmp_path / "nope.key"),
        client_cert=str(tmp_path / "nope.pem"),
        server_ca=str(tmp_path / "ca.pem"),
    )
    with pytest.raises(TargetError) as err:
        asyncio.run(GadgetSource(settings_for("tcp://127.0.0.1:1", ("trace_open",), tls=tls)).run())
    assert "cannot read" in str(err.value)
