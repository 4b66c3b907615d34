"""The REST API's routes, one module per resource, all under ``/api/v1``."""

from __future__ import annotations

from flask import Flask, Response, jsonify
from google.protobuf.message import Message

from odin.api.rest.codec import to_json


def reply(message: Message, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A WorkflowService response message as the JSON body of a response."""
    response = jsonify(to_json(message))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    from odin.api.rest.routes import (
        activities,
        activity_executions,
        batches,
        deployments,
        namespaces,
        schedules,
        system,
        task_queues,
        workers,
        workflows,
    )

    for module in (
        system, namespaces, workflows, activities, activity_executions, schedules, batches, deployments, task_queues,
        workers,
    ):
        app.register_blueprint(module.bp)
