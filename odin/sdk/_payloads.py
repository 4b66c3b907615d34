"""How the SDK's values travel: temporalio's JSON payloads, with keyword arguments marked.

Workflow and activity inputs are positional lists; keyword arguments travel as their last
element, a JSON object whose payload carries the metadata ``odin-kwargs: 1`` (its encoding is
still ``json/plain``). Any JSON reader sees the object as written (``{"express": true}``); the
SDK's converter reads the metadata back as ``Kwargs``, and Odin's UI shows the object as the
keyword arguments."""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.converter
from temporalio.api.common.v1 import Payload

# The payload metadata that marks keyword arguments (the REST API's codec knows it too).
KWARGS_METADATA = "odin-kwargs"


class Kwargs(dict[str, Any]):
    """Keyword arguments of a call, as the last of its positional inputs."""


class _KwargsJSON(temporalio.converter.JSONPlainPayloadConverter):
    def to_payload(self, value: Any) -> Payload | None:
        if isinstance(value, Kwargs):
            payload = super().to_payload(dict(value))
            if payload is not None:
                payload.metadata[KWARGS_METADATA] = b"1"
            return payload
        return super().to_payload(value)

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        value = super().from_payload(payload, type_hint)
        if payload.metadata.get(KWARGS_METADATA) == b"1" and isinstance(value, dict):
            return Kwargs(value)
        return value


class PayloadConverter(temporalio.converter.CompositePayloadConverter):
    """temporalio's default converters, the JSON one knowing keyword arguments."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _KwargsJSON() if isinstance(c, temporalio.converter.JSONPlainPayloadConverter) else c
                for c in temporalio.converter.DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(temporalio.converter.DataConverter.default, payload_converter_class=PayloadConverter)
