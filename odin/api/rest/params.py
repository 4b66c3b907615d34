"""Request inputs: query-string and header parameters (each declared once, for the OpenAPI
document and for parsing) and the JSON body. Bad input is ``InvalidArgument`` (400)."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any

from flask import request
from google.protobuf.timestamp_pb2 import Timestamp
from werkzeug.exceptions import RequestEntityTooLarge

from odin.api.rest.codec import loads_strict
from odin.errors import InvalidArgument


@dataclass(frozen=True)
class Param:
    """A query-string or header parameter. ``schema`` is its JSON Schema, which ``read`` enforces."""

    name: str
    where: str  # "query" or "header"
    schema: dict = field(default_factory=lambda: {"type": "string"})
    description: str = ""
    default: Any = None

    def read(self) -> Any:
        source = request.args if self.where == "query" else request.headers
        raw = source.get(self.name)
        if raw is None or raw == "":
            return self.default
        kind = self.schema.get("type")
        try:
            if kind == "integer":
                value: Any = int(raw)
            elif kind == "number":
                value = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            elif kind == "boolean":
                value = {"true": True, "1": True, "false": False, "0": False}[raw.lower()]
            elif self.schema.get("format") == "date-time":
                value = Timestamp()
                value.FromJsonString(raw)
            elif self.schema.get("format") == "byte":
                value = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
            else:
                value = raw
        except (ValueError, KeyError, binascii.Error):
            what = "RFC 3339 time" if self.schema.get("format") == "date-time" else kind or "value"
            raise InvalidArgument(f"Invalid {self.where} parameter {self.name}: {raw!r} is not a valid {what}.") from None
        if "enum" in self.schema and value not in self.schema["enum"]:
            raise InvalidArgument(f"Invalid {self.where} parameter {self.name}: use one of {', '.join(self.schema['enum'])}.")
        low, high = self.schema.get("minimum"), self.schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidArgument(f"Invalid {self.where} parameter {self.name}: {raw} is outside [{low}, {high}].")
        if isinstance(value, str) and len(value) > self.schema.get("maxLength", math.inf):
            raise InvalidArgument(f"Invalid {self.where} parameter {self.name}: longer than {self.schema['maxLength']}.")
        return value


PAGE_SIZE = Param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Items per page.")
NEXT_PAGE_TOKEN = Param(
    "nextPageToken", "query", {"type": "string", "format": "byte"},
    "The `nextPageToken` of the previous page, as returned.", b"",
)
RUN_ID = Param("runId", "query", {"type": "string", "maxLength": 1000}, "A run of the workflow; the current run if omitted.", "")
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header", {"type": "string", "maxLength": 1000},
    "Retries with the same key are applied once (the request id of the call).", "",
)


def request_id(in_body: str) -> str:
    """The call's request id: the ``Idempotency-Key`` header, or the body's own (not both, unless equal)."""
    key = IDEMPOTENCY_KEY.read()
    if key and in_body and key != in_body:
        raise InvalidArgument("The Idempotency-Key header and the body's request id differ.")
    return key or in_body


def json_body() -> dict:
    """The request's JSON object body (``{}`` when empty). The Content-Type is not insisted on,
    so ``curl -d`` works; cross-site browser posts are refused earlier (see ``csrf``)."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge()  # a chunked body the size limit cut short
    if not raw.strip():
        return {}
    try:
        data = loads_strict(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"Malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("The JSON body must be an object.")
    return data

