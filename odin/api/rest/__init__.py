"""The REST door: a Flask app serving the JSON API under ``/api/v1``, its OpenAPI document, the
web UI and the health probes.

It runs Odin's runtime in-process (no gRPC hop): gunicorn workers start their own against the
same database and Redis as every other process (``create_app()``, settings from the
environment), and ``odin dev`` attaches the app to the runtime of its gRPC door.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from odin import tracing
from odin.api.rest import csrf, errors, paths, routes, ui
from odin.api.rest.invoke import invoke
from odin.api.rest.runtime import RuntimeHandle
from odin.config import Settings

__all__ = ["RuntimeHandle", "create_app", "invoke"]

# Longest a request waits on a long poll (history waitNewEvent, result ?wait=, query, update),
# inside gunicorn's default 30 s worker timeout. Temporal's history long poll is 20 s too.
LONG_POLL_SECONDS = 20.0


def create_app(
    settings: Settings | None = None,
    *,
    runtime: RuntimeHandle | None = None,
    config: Mapping[str, Any] | None = None,
) -> Flask:
    """The app. ``runtime`` attaches it to a running runtime (``odin dev``); without it the app
    starts its own on first use, with ``settings`` (default: from the environment)."""
    handle = runtime or RuntimeHandle(settings or Settings.from_env())
    app = Flask(__name__, static_folder=None)
    paths.register(app)  # ids may hold "/" (sent as %2F)
    app.config.update(
        MAX_CONTENT_LENGTH=handle.settings.http_max_request_bytes,
        ODIN_LONG_POLL_SECONDS=LONG_POLL_SECONDS,
    )
    app.config.update(config or {})
    app.json.sort_keys = False  # keep the messages' field order
    app.extensions["odin"] = handle
    tracing.configure("web")
    tracing.instrument_flask(app)
    errors.register(app)
    csrf.protect(app)
    routes.register(app)
    ui.register(app)
    return app
