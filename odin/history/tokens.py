"""Opaque task tokens. They name the exact task attempt so late replies cannot touch a newer one."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from odin.errors import InvalidArgument

_VERSION = b"\x01"


@dataclass(frozen=True)
class WorkflowTaskToken:
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    started_event_id: int
    attempt: int


@dataclass(frozen=True)
class ActivityTaskToken:
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    activity_id: str
    attempt: int


@dataclass(frozen=True)
class StandaloneActivityTaskToken:
    """An attempt of a standalone activity (one started by a client, not by a workflow)."""

    namespace_id: str
    activity_id: str
    run_id: str
    attempt: int


@dataclass(frozen=True)
class QueryTaskToken:
    namespace_id: str
    query_id: str


_KINDS: dict[str, type[WorkflowTaskToken | ActivityTaskToken | StandaloneActivityTaskToken | QueryTaskToken]] = {
    "w": WorkflowTaskToken, "a": ActivityTaskToken, "s": StandaloneActivityTaskToken, "q": QueryTaskToken
}
_TAGS = {cls: tag for tag, cls in _KINDS.items()}

Token = WorkflowTaskToken | ActivityTaskToken | StandaloneActivityTaskToken | QueryTaskToken


def encode(token: Token) -> bytes:
    return _VERSION + orjson.dumps({"k": _TAGS[type(token)], **vars(token)})


def decode(data: bytes, expected: type | tuple[type, ...]) -> Token:
    """Parse a token; anything malformed or of the wrong kind is ``InvalidArgument``."""
    if not data:
        raise InvalidArgument("Task token not set on request.")
    try:
        if data[:1] != _VERSION:
            raise ValueError("unknown token version")
        raw = orjson.loads(data[1:])
        if not isinstance(raw, dict):
            raise ValueError("token body is not an object")
        token = _KINDS[raw.pop("k")](**raw)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument("Error deserializing task token.") from exc
    if not isinstance(token, expected):
        raise InvalidArgument("Task token is not for this kind of task.")
    return token
