"""Helpers for tests that run Odin SDK apps (``odin.sdk.App``) against an in-process server."""

from __future__ import annotations

import uuid

from odin.sdk import App
from odin.server import OdinServer


def point(app: App, server: OdinServer) -> str:
    """Aim ``app`` at ``server`` on a fresh task queue; returns the queue."""
    app.address = f"127.0.0.1:{server.endpoints.grpc_port}"
    app.task_queue = f"{app.name}-{uuid.uuid4().hex[:6]}"
    return app.task_queue
