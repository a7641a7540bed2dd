"""The only place that builds or reads protobuf messages of IG's API.

Sessions and the replay server call these helpers and hand around plain values (`layouts.py`
types, bytes, dicts); no protobuf type crosses this module's callers' public APIs. Parsing errors
of the protobuf runtime are translated into `PayloadError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError as _ProtoDecodeError

from gadgetclient.layouts import DataSourceSpec, FieldSpec, GadgetInfoSpec, ParamSpec
from protos import gadget_service_pb2 as pb

#: IG's run protocol and GadgetInfo version (consts.go): 1 since v0.27.
PROTOCOL_VERSION = 1

GadgetEvent = pb.GadgetEvent
GadgetControlRequest = pb.GadgetControlRequest


class PayloadError(ValueError):
    """Bytes that do not parse as the expected protobuf message."""


def _pairs(m: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(m.items()))


def field_from_proto(f: pb.Field) -> FieldSpec:
    return FieldSpec(
        name=f.name,
        index=f.index,
        kind=f.kind,
        flags=f.flags,
        payload_index=f.payloadIndex,
        offs=f.offs,
        size=f.size,
        parent=f.parent,
        full_name=f.fullName,
        tags=tuple(f.tags),
        annotations=_pairs(f.annotations),
        order=f.order,
    )


def gadget_info_from_proto(info: pb.GadgetInfo) -> GadgetInfoSpec:
    return GadgetInfoSpec(
        name=info.name,
        image_name=info.imageName,
        data_sources=tuple(
            DataSourceSpec(
                id=ds.id,
                name=ds.name,
                type=ds.type,
                fields=tuple(field_from_proto(f) for f in ds.fields),
                flags=ds.flags,
                tags=tuple(ds.tags),
                annotations=_pairs(ds.annotations),
            )
            for ds in info.dataSources
        ),
        params=tuple(
            ParamSpec(
                key=p.prefix + p.key,
                default=p.defaultValue,
                description=p.description,
                type_hint=p.typeHint,
                alternative_key=p.alternativeKey,
                possible_values=tuple(p.possibleValues),
            )
            for p in info.params
        ),
        annotations=_pairs(info.annotations),
        metadata=info.metadata,
    )


def parse_gadget_info(payload: bytes) -> GadgetInfoSpec:
    try:
        info = pb.GadgetInfo.FromString(payload)
    except _ProtoDecodeError as exc:
        raise PayloadError(f"GadgetInfo does not parse: {exc}") from exc
    return gadget_info_from_proto(info)


def gadget_info_to_proto(spec: GadgetInfoSpec) -> pb.GadgetInfo:
    """Serialise a layout the way IG does (params split back into prefix and key)."""
    info = pb.GadgetInfo(name=spec.name, imageName=spec.image_name, metadata=spec.metadata)
    info.annotations.update(dict(spec.annotations))
    for ds in spec.data_sources:
        pds = info.dataSources.add(id=ds.id, name=ds.name, type=ds.type, flags=ds.flags)
        pds.tags.extend(ds.tags)
        pds.annotations.update(dict(ds.annotations))
        for f in ds.fields:
            pf = pds.fields.add(
                name=f.name,
                fullName=f.full_name,
                index=f.index,
                payloadIndex=f.payload_index,
                offs=f.offs,
                size=f.size,
                flags=f.flags,
                kind=f.kind,
                parent=f.parent,
                order=f.order,
            )
            pf.tags.extend(f.tags)
            pf.annotations.update(dict(f.annotations))
    for p in spec.params:
        prefix, _, key = p.key.rpartition(".")
        info.params.add(
            key=key,
            prefix=f"{prefix}." if prefix else "",
            defaultValue=p.default,
            description=p.description,
            typeHint=p.type_hint,
            alternativeKey=p.alternative_key,
            possibleValues=list(p.possible_values),
        )
    return info


def parse_single(payload: bytes) -> Sequence[bytes]:
    """Slots of a `GadgetData` payload (a Single data source)."""
    try:
        return pb.GadgetData.FromString(payload).data.payload  # type: ignore[no-any-return]
    except _ProtoDecodeError as exc:
        raise PayloadError(f"GadgetData does not parse: {exc}") from exc


def parse_array(payload: bytes) -> list[Sequence[bytes]]:
    """Slots of each element of a `GadgetDataArray` payload (an Array data source)."""
    try:
        msg = pb.GadgetDataArray.FromString(payload)
    except _ProtoDecodeError as exc:
        raise PayloadError(f"GadgetDataArray does not parse: {exc}") from exc
    return [el.payload for el in msg.dataArray]


def encode_single(slots: Sequence[bytes]) -> bytes:
    return pb.GadgetData(data=pb.DataElement(payload=slots)).SerializeToString()  # type: ignore[no-any-return]


def encode_array(elements: Sequence[Sequence[bytes]]) -> bytes:
    msg = pb.GadgetDataArray(dataArray=[pb.DataElement(payload=s) for s in elements])
    return msg.SerializeToString()  # type: ignore[no-any-return]


def run_request(
    *, image: str, params: Mapping[str, str], log_level: int, timeout_ns: int
) -> pb.GadgetControlRequest:
    return pb.GadgetControlRequest(
        runRequest=pb.GadgetRunRequest(
            imageName=image,
            paramValues=dict(params),
            version=PROTOCOL_VERSION,
            logLevel=log_level,
            timeout=timeout_ns,
        )
    )


def stop_request() -> pb.GadgetControlRequest:
    return pb.GadgetControlRequest(stopRequest=pb.GadgetStopRequest())


# -- headless instances (GadgetInstanceManager, IG v0.33+) --------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One headless gadget instance as IG's `GadgetInstanceManager` describes it."""

    id: str
    name: str
    image: str
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    created_ns: int = 0
    #: `GadgetInstanceStatus` name without the `Status` prefix: Running, Error, Invalid
    status: str = "Running"
    message: str = ""

    @property
    def param_dict(self) -> dict[str, str]:
        return dict(self.params)


_STATUS_NAMES = {0: "Invalid", 1: "Running", 2: "Error"}
_STATUS_VALUES = {v: k for k, v in _STATUS_NAMES.items()}


def instance_from_proto(msg: pb.GadgetInstance) -> InstanceSpec:
    cfg = msg.gadgetConfig
    return InstanceSpec(
        id=msg.id,
        name=msg.name,
        image=cfg.imageName,
        params=_pairs(cfg.paramValues),
        tags=tuple(msg.tags),
        nodes=tuple(msg.nodes),
        created_ns=msg.timeCreated,
        status=_STATUS_NAMES.get(msg.state.status, f"status{msg.state.status}"),
        message=msg.state.message,
    )


def instance_to_proto(spec: InstanceSpec) -> pb.GadgetInstance:
    return pb.GadgetInstance(
        id=spec.id,
        name=spec.name,
        tags=list(spec.tags),
        nodes=list(spec.nodes),
        timeCreated=spec.created_ns,
        gadgetConfig=pb.GadgetRunRequest(
            imageName=spec.image, paramValues=dict(spec.params), version=PROTOCOL_VERSION
        ),
        state=pb.GadgetInstanceState(
            status=_STATUS_VALUES.get(spec.status, 0),  # type: ignore[arg-type]
            message=spec.message,
        ),
    )


def create_instance_request(
    spec: InstanceSpec, buffer_length: int
) -> pb.CreateGadgetInstanceRequest:
    return pb.CreateGadgetInstanceRequest(
        gadgetInstance=instance_to_proto(spec), eventBufferLength=buffer_length
    )


def list_instances_request() -> pb.ListGadgetInstancesRequest:
    return pb.ListGadgetInstancesRequest()


def instance_id(id_: str) -> pb.GadgetInstanceId:
    return pb.GadgetInstanceId(id=id_)


def attach_request(id_: str) -> pb.GadgetControlRequest:
    return pb.GadgetControlRequest(
        attachRequest=pb.GadgetAttachRequest(id=id_, version=PROTOCOL_VERSION)
    )
