"""JSON Schemas of WorkflowService messages as the REST API writes them (see ``codec``), derived
from the protobuf descriptors so the OpenAPI document cannot drift from the messages."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from odin.api.rest.codec import PAYLOAD, PAYLOADS, repeated

_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
# proto3 JSON writes 64-bit integers as strings and reads either form.
_INT64 = {"type": ["string", "integer"], "pattern": "^-?[0-9]{1,19}$", "minimum": -(2**63), "maximum": 2**63 - 1}
_UINT64 = {"type": ["string", "integer"], "pattern": "^[0-9]{1,20}$", "minimum": 0, "maximum": 2**64 - 1}

_T = FieldDescriptor
_SCALARS = {
    _T.TYPE_DOUBLE: {"type": "number"},
    _T.TYPE_FLOAT: {"type": "number"},
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32,
    _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]{1,11}(\\.[0-9]{1,9})?s$", "examples": ["30s"]},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "contentEncoding": "base64"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
    PAYLOAD: {"description": "Any JSON value (a json/plain payload); other encodings as {metadata, data} in base64."},
    PAYLOADS: {"type": "array", "items": {}, "description": "JSON values, one per payload."},
}


class SchemaBuilder:
    """Builds message schemas, collecting each message once under ``components``."""

    def __init__(self) -> None:
        self.components: dict[str, dict] = {}

    def ref(self, desc: Descriptor) -> dict:
        if desc.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[desc.full_name])
        if desc.full_name not in self.components:
            self.components[desc.full_name] = {}  # reserve first: messages may contain themselves
            self.components[desc.full_name] = self.message(desc)
        return {"$ref": f"#/components/schemas/{desc.full_name}"}

    def message(self, desc: Descriptor, exclude: tuple[str, ...] = ()) -> dict:
        properties = {f.json_name: self.field(f) for f in desc.fields if f.json_name not in exclude}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def field(self, f: FieldDescriptor) -> dict:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value = self.field(f.message_type.fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        if f.message_type is not None:
            one = self.ref(f.message_type)
        elif f.enum_type is not None:
            one = {"type": "string", "enum": [v.name for v in f.enum_type.values]}
        else:
            one = dict(_SCALARS[f.type])
        if repeated(f):
            return {"type": "array", "items": one}
        return one
