"""`gadgetwatch instances list|show|remove -o table|json|yaml` against the IG stand-in."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gadgetclient.capture import read_capture
from gadgetclient.replay import ReplayServer
from protos import gadget_service_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "examples" / "webshop-intrusion.capture.jsonl"


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # Unix socket paths are limited to ~108 bytes; pytest's tmp paths can be longer.
    d = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    yield d / "ig.sock"
    shutil.rmtree(d)


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gadgetwatch", "instances", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO),
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_list_show_remove(sock_path: Path) -> None:
    server = ReplayServer(read_capture(CAPTURE), listen=f"unix://{sock_path}", hold_instances=True)
    target = await server.start()
    try:
        for name, image in (("users-exec", "trace_exec"), ("users-dns", "trace_dns")):
            req = pb.CreateGadgetInstanceRequest(
                gadgetInstance=pb.GadgetInstance(
                    name=name,
                    gadgetConfig=pb.GadgetRunRequest(
                        imageName=image, version=1, paramValues={"operator.oci.ebpf.paths": "true"}
                    ),
                )
            )
            await server.instances.create(req)
        ids = {i.name: i.id for i in server.instances.instances.values()}

        code, out, _ = await _cli("--target", target, "-o", "json", "list")
        assert code == 0
        rows = json.loads(out)
        assert {(r["name"], r["id"], r["image"], r["status"]) for r in rows} == {
            ("users-exec", ids["users-exec"], "trace_exec", "Running"),
            ("users-dns", ids["users-dns"], "trace_dns", "Running"),
        }
        code, out, _ = await _cli("--target", target, "list")
        assert code == 0
        header, *lines = out.splitlines()
        assert header.split() == ["NODE", "ID", "NAME", "IMAGE", "STATUS", "CREATED"]
        assert sorted(ln.split()[1] for ln in lines) == sorted(ids.values())

        code, out, _ = await _cli("--target", target, "-o", "yaml", "show", "users-dns")
        assert code == 0
        [shown] = yaml.safe_load(out)
        assert shown["id"] == ids["users-dns"]
        assert shown["params"] == {"operator.oci.ebpf.paths": "true"}

        code, out, _ = await _cli("--target", target, "remove", f"users-exec,{ids['users-dns']}")
        assert code == 0
        assert out.splitlines() == [
            f"removed users-exec ({ids['users-exec']})",
            f"removed users-dns ({ids['users-dns']})",
        ]
        assert server.instances.instances == {}

        code, _, err = await _cli("--target", target, "show", "users-exec")
        assert code == 1
        assert "gadget users-exec not found" in err
    finally:
        await server.stop(None)


async def test_remove_mine_removes_only_the_agents_own(sock_path: Path) -> None:
    server = ReplayServer(read_capture(CAPTURE), listen=f"unix://{sock_path}", hold_instances=True)
    target = await server.start()
    try:
        for name, image in (("gadgetwatch-trace_exec", "trace_exec"), ("users-dns", "trace_dns")):
            await server.instances.create(
                pb.CreateGadgetInstanceRequest(
                    gadgetInstance=pb.GadgetInstance(
                        name=name, gadgetConfig=pb.GadgetRunRequest(imageName=image, version=1)
                    )
                )
            )
        code, out, err = await _cli("--target", target, "remove", "--mine")
        assert code == 0, err
        assert out.startswith("removed gadgetwatch-trace_exec (")
        assert [i.name for i in server.instances.instances.values()] == ["users-dns"]
        # Nothing of ours left: still a success (the hook may run twice).
        code, out, err = await _cli("--target", target, "remove", "--mine")
        assert code == 0, err
        assert out == ""
    finally:
        await server.stop(None)


async def test_unreachable_target_is_one_line(sock_path: Path) -> None:
    code, _, err = await _cli("--target", f"unix://{sock_path}", "list")
    assert code == 1
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
