"""The OpenAPI 3.1 document (``/openapi.json``), built from the app's own URL map.

Each view declares what it takes and answers with ``@documented(...)``; the document lists every
rule of the URL map whose view is documented, with its path parameters taken from the rule
itself. Request and response bodies of WorkflowService messages get schemas derived from the
protobuf descriptors (``schemas``). A test checks that every rule is documented.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from flask import Flask
from google.protobuf.message import Message

from odin import __version__
from odin.api.rest.params import Param
from odin.api.rest.schemas import SchemaBuilder
from odin.operations import Operation

F = TypeVar("F", bound=Callable)

JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "gRPC status name, e.g. NOT_FOUND."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}, "description": "Error details with an @type."},
            },
        }
    },
}

PATH_PARAMS = {
    "namespace": "Namespace name.",
    "workflow_id": "Workflow id; a \"/\" in it is sent as %2F.",
    "signal_name": "Signal name.",
    "query_type": "Query name.",
    "update_name": "Update name.",
    "task_queue": "Task queue name.",
    "schedule_id": "Schedule id; a \"/\" in it is sent as %2F.",
    "activity_id": "Activity id within the workflow run.",
    "worker_instance_key": "The worker's instance key (from its heartbeats).",
    "job_id": "Batch operation job id; a \"/\" in it is sent as %2F.",
    "deployment_name": "Worker deployment name.",
    "build_id": "Build id of a version within its deployment.",
    "filename": "A file of the web UI's static assets.",
}


@dataclass(frozen=True)
class Body:
    """A request body: a WorkflowService message (minus the fields the path gives) or a schema."""

    message: type[Message] | None = None
    exclude: tuple[str, ...] = ()
    schema: dict | None = None
    media: str = JSON
    required: bool = False


@dataclass(frozen=True)
class Reply:
    description: str
    message: type[Message] | None = None
    schema: dict | None = None
    media: str = JSON
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Doc:
    summary: str
    tag: str
    operation: Operation | None = None  # the WorkflowService/OperatorService method it stands for
    params: tuple[Param, ...] = ()
    body: Body | None = None
    responses: dict[int, Reply] = field(default_factory=dict)
    description: str = ""


def documented(doc: Doc) -> Callable[[F], F]:
    def mark(view: F) -> F:
        view.openapi = doc  # type: ignore[attr-defined]
        return view

    return mark


def openapi_path(rule: str) -> str:
    """``/a/<ns>/b/<path:f>`` -> ``/a/{ns}/b/{f}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def build(app: Flask) -> dict:
    schemas = SchemaBuilder()
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        doc: Doc | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if doc is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = _operation(doc, rule, schemas)
    schemas.components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Odin",
            "version": __version__,
            "description": (
                "Odin's REST API, shaped like Temporal's HTTP API: request and response bodies are the "
                "WorkflowService messages in proto3 JSON, with every payload as a plain JSON value."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.components.items()))},
    }


def _operation(doc: Doc, rule, schemas: SchemaBuilder) -> dict:
    op: dict = {"operationId": rule.endpoint, "summary": doc.summary, "tags": [doc.tag]}
    if doc.description:
        op["description"] = doc.description
    if doc.operation:
        op["x-odin-operation"] = doc.operation
    params = [
        {"name": name, "in": "path", "required": True, "description": PATH_PARAMS[name], "schema": {"type": "string", "minLength": 1}}
        for name in _path_arguments(rule.rule)
    ]
    params += [
        {"name": p.name, "in": p.where, "required": False, "description": p.description, "schema": p.schema} for p in doc.params
    ]
    if params:
        op["parameters"] = params
    if doc.body is not None:
        b = doc.body
        schema = b.schema if b.schema is not None else schemas.message(b.message.DESCRIPTOR, b.exclude)
        op["requestBody"] = {"required": b.required, "content": {b.media: {"schema": schema}}}
    responses: dict = {}
    for status, reply in sorted(doc.responses.items()):
        entry: dict = {"description": reply.description}
        schema = reply.schema if reply.schema is not None else schemas.ref(reply.message.DESCRIPTOR) if reply.message else None
        if schema is not None or reply.media != JSON:
            entry["content"] = {reply.media: {"schema": schema or {"type": "string"}}}
        if reply.headers:
            entry["headers"] = {h: {"schema": {"type": "string"}} for h in reply.headers}
        responses[str(status)] = entry
    html = rule.endpoint.startswith("ui.")  # the web UI's errors are pages too (see errors.render_error)
    responses["default"] = {
        "description": "An error.",
        "content": {HTML: {"schema": {"type": "string"}}} if html else {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op["responses"] = responses
    return op


def _path_arguments(rule: str) -> list[str]:
    return re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule)
