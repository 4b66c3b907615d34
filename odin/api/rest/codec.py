"""JSON for WorkflowService messages: proto3 JSON (``json_format``) with payloads as plain JSON.

Every ``temporal.api.common.v1.Payload`` reads and writes as the JSON value it carries:

- out: a ``json/plain`` payload becomes its JSON value, ``binary/null`` becomes ``null``, and any
  other payload is passed through as ``{"metadata": {key: base64}, "data": base64}``;
  ``Payloads`` becomes a JSON array of such values (``input``, ``result``, ``details``...);
- in: every JSON value becomes a ``json/plain`` payload, and ``Payloads`` fields take an array.

Everything else is plain proto3 JSON: camelCase names, enums by name, durations as ``"10s"``,
64-bit integers as strings, bytes (page tokens) as base64.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads

from odin.errors import InvalidArgument

M = TypeVar("M", bound=Message)

JSON_PLAIN = b"json/plain"
BINARY_NULL = b"binary/null"
PAYLOAD = Payload.DESCRIPTOR.full_name
PAYLOADS = Payloads.DESCRIPTOR.full_name
_JSON_PLAIN_B64 = base64.b64encode(JSON_PLAIN).decode()


# -- single payloads ------------------------------------------------------------------------


def payload_value(payload: Payload) -> Any:
    """A payload as JSON: its value when ``json/plain``, otherwise its base64 form."""
    return _payload_dict_value(json_format.MessageToDict(payload))


def value_payload(value: Any) -> Payload:
    """A JSON value as a ``json/plain`` payload (compact, like the SDKs' JSON converter)."""
    return Payload(metadata={"encoding": JSON_PLAIN}, data=_dumps(value).encode())


def payloads_values(payloads: Payloads) -> list[Any]:
    return [payload_value(p) for p in payloads.payloads]


# The metadata with which the Odin SDK marks a call's keyword arguments: the last input payload,
# a JSON object (odin/sdk/_payloads.py).
KWARGS_METADATA = "odin-kwargs"


def arguments(payloads: Payloads) -> tuple[list[Any], dict[str, Any] | None]:
    """A call's inputs as positional arguments and keyword arguments (None when it has none)."""
    values = payloads_values(payloads)
    if payloads.payloads and payloads.payloads[-1].metadata.get(KWARGS_METADATA) == b"1" and isinstance(values[-1], dict):
        return values[:-1], values[-1]
    return values, None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# Deeper payloads are shown as their base64 data: answers must stay renderable (and re-encodable
# as JSON) whatever a worker stored.
MAX_JSON_DEPTH = 100


def loads_strict(raw: str | bytes) -> Any:
    """JSON as the RFC has it: ``NaN`` and ``Infinity`` (which Python writes) are refused.
    Raises ``ValueError``, or ``RecursionError`` for absurdly deep nesting."""
    return json.loads(raw, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_within(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


def _payload_dict_value(d: dict) -> Any:
    encoding = d.get("metadata", {}).get("encoding")
    if encoding is not None:
        raw = base64.b64decode(encoding)
        if raw == JSON_PLAIN:
            try:
                value = loads_strict(base64.b64decode(d.get("data", "")))
            except (ValueError, RecursionError):
                return d  # not strict JSON after all: show it as it is
            return value if _depth_within(value, MAX_JSON_DEPTH) else d
        if raw == BINARY_NULL:
            return None
    return d


# -- whole messages -------------------------------------------------------------------------


def to_json(message: Message) -> dict:
    """``message`` as proto3 JSON, payloads as plain JSON values."""
    data = json_format.MessageToDict(message)
    _render(message.DESCRIPTOR, data)
    return data


def from_json(data: Any, cls: type[M], what: str = "request body") -> M:
    """Parse proto3 JSON (payloads as plain JSON values) into a ``cls``; bad input is
    ``InvalidArgument`` naming what was wrong."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"Invalid {what}: expected a JSON object.")
    try:
        expanded = _expand(cls.DESCRIPTOR, data, "")
        return json_format.ParseDict(expanded, cls())
    except json_format.ParseError as exc:
        raise InvalidArgument(f"Invalid {what}: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidArgument(f"Invalid {what}: {exc}") from None


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf 6.31+; ``label`` is deprecated there
    return flag if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _render(desc: Descriptor, data: dict) -> None:
    """Rewrite, in place, the payloads inside ``data`` (``MessageToDict`` of a ``desc``)."""
    for field in desc.fields:
        if field.message_type is None or field.json_name not in data:
            continue
        value = data[field.json_name]
        if _is_map(field):
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None:
                data[field.json_name] = {k: _render_one(value_type, v) for k, v in value.items()}
        elif repeated(field):
            data[field.json_name] = [_render_one(field.message_type, v) for v in value]
        else:
            data[field.json_name] = _render_one(field.message_type, value)


def _render_one(desc: Descriptor, value: Any) -> Any:
    if desc.full_name == PAYLOAD:
        return _payload_dict_value(value)
    if desc.full_name == PAYLOADS:
        return [_payload_dict_value(p) for p in value.get("payloads", [])]
    if desc.full_name.startswith("google.protobuf."):
        return value  # well-known types have JSON forms of their own
    _render(desc, value)
    return value


def _expand(desc: Descriptor, data: dict, path: str) -> dict:
    """A copy of ``data`` (proto3 JSON of a ``desc``, payloads as plain JSON) that ``ParseDict``
    reads: each payload value wrapped as a ``json/plain`` payload."""
    out = dict(data)
    for field in desc.fields:
        key = field.json_name if field.json_name in data else field.name
        if field.message_type is None or key not in data or data[key] is None:
            continue
        value = data[key]
        where = f"{path}{field.json_name}"
        if _is_map(field):
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None and isinstance(value, dict):
                out[key] = {k: _expand_one(value_type, v, f"{where}.{k}") for k, v in value.items()}
        elif repeated(field):
            if isinstance(value, list):
                out[key] = [_expand_one(field.message_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            out[key] = _expand_one(field.message_type, value, where)
    return out


def _expand_one(desc: Descriptor, value: Any, where: str) -> Any:
    if desc.full_name == PAYLOAD:
        return _payload_json(value, where)
    if desc.full_name == PAYLOADS:
        if not isinstance(value, list):
            raise InvalidArgument(f"Invalid request body: {where} must be a JSON array of values.")
        return {"payloads": [_payload_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if desc.full_name.startswith("google.protobuf.") or not isinstance(value, dict):
        return value  # ParseDict judges these
    return _expand(desc, value, where + ".")


def _payload_json(value: Any, where: str) -> dict:
    try:
        data = _dumps(value)
    except ValueError:
        raise InvalidArgument(f"Invalid request body: {where} is not a JSON value.") from None
    return {"metadata": {"encoding": _JSON_PLAIN_B64}, "data": base64.b64encode(data.encode()).decode()}
