"""The committed generated code is what the proto generates today, and it is IG wire-compatible."""

from __future__ import annotations

from pathlib import Path

from protos import gadget_service_pb2 as pb
from protos.generate import ROOT, generate


def test_generated_code_is_current(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert [p.name for p in written] == [
        "gadget_service_pb2.py",
        "gadget_service_pb2.pyi",
        "gadget_service_pb2_grpc.py",
    ]
    for path in written:
        committed = ROOT / "protos" / path.name
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: run generate"


def test_array_kinds_and_negative_order_survive() -> None:
    f = pb.Field(kind=0x10000006, order=-31)
    back = pb.Field.FromString(f.SerializeToString())
    assert back.kind == 0x10000006
    assert back.order == -31


def test_wire_facts_from_the_protocol_notes() -> None:
    data = pb.GadgetData(data=pb.DataElement(payload=[b"\x01\x02", b"", b"abc"]))
    assert data.SerializeToString().hex() == "1a0b0a0201020a000a03616263"
    stop = pb.GadgetControlRequest(stopRequest=pb.GadgetStopRequest())
    assert stop.SerializeToString() == b"\x12\x00"


def test_service_paths_match_ig() -> None:
    services = {
        s.full_name: [m.name for m in s.methods] for s in pb.DESCRIPTOR.services_by_name.values()
    }
    assert services["api.GadgetManager"] == ["GetGadgetInfo", "RunGadget"]
    assert services["api.BuiltInGadgetManager"] == ["GetInfo"]
    assert "RemoveGadgetInstance" in services["api.GadgetInstanceManager"]
