"""Search attributes: types, the system and predefined names, validation and typed values (pure).

Clients send each value as a JSON payload, with ``metadata["type"]`` naming its type when they use
typed search attributes. Odin checks every value against the namespace's registered type and
stores it with that metadata, since the Python SDK decodes typed attributes only when it is present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import IndexedValueType as T

# IndexedValueType number -> its name (registries store the numbers as plain ints).
TYPE_NAMES: dict[int, str] = {
    T.INDEXED_VALUE_TYPE_TEXT: "Text",
    T.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    T.INDEXED_VALUE_TYPE_INT: "Int",
    T.INDEXED_VALUE_TYPE_DOUBLE: "Double",
    T.INDEXED_VALUE_TYPE_BOOL: "Bool",
    T.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
    T.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
}
TYPES_BY_NAME = {name: t for t, name in TYPE_NAMES.items()}

# Query-able, never settable: the visibility record's own columns, and TemporalPauseInfo (the
# server keeps it on a run while activities are paused: "property:activityType=<type>" each).
SYSTEM_ATTRIBUTES = {
    "TemporalPauseInfo": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    # The worker deployment version a run last ran on ("<deployment>:<build id>") and the
    # versioning behaviour it gave ("Pinned", "AutoUpgrade"), kept by the server as Temporal does.
    "TemporalWorkerDeployment": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkerDeploymentVersion": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkflowVersioningBehavior": T.INDEXED_VALUE_TYPE_KEYWORD,
    "WorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "WorkflowType": T.INDEXED_VALUE_TYPE_KEYWORD,
    "StartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "ExecutionTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "CloseTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "ExecutionStatus": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TaskQueue": T.INDEXED_VALUE_TYPE_KEYWORD,
    "HistoryLength": T.INDEXED_VALUE_TYPE_INT,
    "HistorySizeBytes": T.INDEXED_VALUE_TYPE_INT,
    "ParentWorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "ParentRunId": T.INDEXED_VALUE_TYPE_KEYWORD,
}
# Settable by workflows without registration.
PREDEFINED_ATTRIBUTES = {
    "TemporalChangeVersion": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "BinaryChecksums": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "BuildIds": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalScheduledStartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "TemporalScheduledById": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalSchedulePaused": T.INDEXED_VALUE_TYPE_BOOL,
    "TemporalNamespaceDivision": T.INDEXED_VALUE_TYPE_KEYWORD,
}
RESERVED_NAMES = set(SYSTEM_ATTRIBUTES) | set(PREDEFINED_ATTRIBUTES)
MAX_CUSTOM_ATTRIBUTES = 100
MAX_VALUE_BYTES = 2048
# Temporal's limit on a command's search attributes as a whole (encoded size).
MAX_TOTAL_BYTES = 40 * 1024


class InvalidSearchAttribute(ValueError):
    pass


@dataclass(frozen=True)
class TypedValue:
    """One stored value of an attribute (a KeywordList has one per element)."""

    name: str
    type: int
    text: str | None = None
    integer: int | None = None
    double: float | None = None
    time: datetime | None = None


def parse_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InvalidSearchAttribute(f"{text!r} is not an RFC 3339 date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_unset(payload: Payload) -> bool:
    return payload.data in (b"", b"null", b"[]")


def _decode(name: str, payload: Payload) -> object:
    encoding = payload.metadata.get("encoding", b"json/plain")
    if encoding != b"json/plain":
        raise InvalidSearchAttribute(f"search attribute {name}: encoding {encoding.decode(errors='replace')} is not json/plain")
    try:
        return json.loads(payload.data)
    except ValueError:
        raise InvalidSearchAttribute(f"search attribute {name}: value is not JSON") from None


def values_of(name: str, type_: int, payload: Payload, check_size: bool = True) -> list[TypedValue]:
    """Check a payload against its type (and, with ``check_size``, its size) and return its typed values."""
    value = _decode(name, payload)
    label = TYPE_NAMES[type_]
    if check_size and len(payload.data) > MAX_VALUE_BYTES:
        raise InvalidSearchAttribute(f"search attribute {name}: value exceeds {MAX_VALUE_BYTES} bytes")

    def bad() -> InvalidSearchAttribute:
        return InvalidSearchAttribute(f"search attribute {name} of type {label}: invalid value {payload.data.decode(errors='replace')[:100]}")

    if type_ in (T.INDEXED_VALUE_TYPE_KEYWORD, T.INDEXED_VALUE_TYPE_TEXT):
        if not isinstance(value, str) or "\x00" in value:
            raise bad()
        return [TypedValue(name, type_, text=value)]
    if type_ == T.INDEXED_VALUE_TYPE_KEYWORD_LIST:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, str) and "\x00" not in x for x in items):
            raise bad()
        return [TypedValue(name, type_, text=x) for x in dict.fromkeys(items)]
    if type_ == T.INDEXED_VALUE_TYPE_INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return [TypedValue(name, type_, integer=value)]
    if type_ == T.INDEXED_VALUE_TYPE_DOUBLE:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return [TypedValue(name, type_, double=float(value))]
    if type_ == T.INDEXED_VALUE_TYPE_BOOL:
        if not isinstance(value, bool):
            raise bad()
        return [TypedValue(name, type_, integer=int(value))]
    if type_ == T.INDEXED_VALUE_TYPE_DATETIME:
        if not isinstance(value, str):
            raise bad()
        return [TypedValue(name, type_, time=parse_datetime(value))]
    raise bad()


def settable_types(custom: dict[str, int]) -> dict[str, int]:
    return {**PREDEFINED_ATTRIBUTES, **custom}


def validate(attributes: SearchAttributes | None, types: dict[str, int], check_size: bool = True) -> SearchAttributes:
    """A copy of ``attributes`` with every value checked against ``types`` and carrying its type
    in ``metadata["type"]``. Unset markers (empty, ``null``, ``[]``) pass through unchanged.
    ``check_size=False`` leaves the per-value size to the caller (commands check it later)."""
    out = SearchAttributes()
    if attributes is None:
        return out
    for name, payload in attributes.indexed_fields.items():
        if name in SYSTEM_ATTRIBUTES:
            raise InvalidSearchAttribute(f"search attribute {name} is a system attribute and cannot be set")
        type_ = types.get(name)
        if type_ is None:
            raise InvalidSearchAttribute(f"search attribute {name} is not defined in this namespace")
        given = payload.metadata.get("type")
        if given and given.decode(errors="replace") != TYPE_NAMES[type_]:
            raise InvalidSearchAttribute(
                f"search attribute {name} is of type {TYPE_NAMES[type_]}, not {given.decode(errors='replace')}"
            )
        copy = out.indexed_fields[name]
        copy.CopyFrom(payload)
        if not is_unset(payload):
            values_of(name, type_, payload, check_size)
            copy.metadata["type"] = TYPE_NAMES[type_].encode()
    return out


def typed_values(attributes: SearchAttributes | None) -> list[TypedValue]:
    """The typed values of validated attributes (their type comes from their metadata)."""
    if attributes is None:
        return []
    values: list[TypedValue] = []
    for name, payload in sorted(attributes.indexed_fields.items()):
        type_ = TYPES_BY_NAME.get(payload.metadata.get("type", b"").decode(errors="replace"))
        if type_ is None or is_unset(payload):
            continue
        try:
            values.extend(values_of(name, type_, payload))
        except InvalidSearchAttribute:
            continue
    return values
