"""The one place the REST app turns exceptions into responses.

Body: ``{"error": {"code", "message", "details"}}`` where ``code`` is the gRPC status name the
gRPC door would answer with and ``details`` the error's detail messages (Temporal's errordetails,
e.g. the run id of an already started workflow) as JSON with an ``@type``. Web UI pages get the
same information as an HTML page. Unexpected exceptions are logged here and answer a generic 500:
no stack trace or exception text reaches a client.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from odin.api.rest.codec import to_json
from odin.errors import OdinError, infrastructure_error

log = logging.getLogger(__name__)

# gRPC status names for the HTTP errors Flask/Werkzeug raise themselves (bad routes, methods,
# sizes), so every error body speaks one vocabulary.
_CODE_BY_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(code: str, message: str, details: list[dict] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def render_error(status: int, code: str, message: str, details: list[dict] | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    body = error_body(code, message, details)
    if request.blueprint == "ui":
        response = Response(render_template("error.html", status=status, **body["error"]), status, mimetype="text/html")
    else:
        response = jsonify(body)
        response.status_code = status
    response.headers.update(headers or {})
    return response


def _odin_error(err: OdinError) -> Response:
    if err.http_status == 401 and request.blueprint == "ui" and request.method == "GET":
        # A page that needs credentials: off to the sign-in page, and back here afterwards.
        return redirect(url_for("ui.login", next=request.full_path))
    details = []
    if err.detail is not None:
        details.append({"@type": f"type.googleapis.com/{err.detail.DESCRIPTOR.full_name}", **to_json(err.detail)})
    headers = {}
    if err.retry_after is not None:  # whole seconds, rounded up: an early retry would only fail again
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    return render_error(err.http_status, err.code, err.message, details, headers)


def _http_error(err: HTTPException) -> Response:
    status = err.code or 500
    response = render_error(status, _CODE_BY_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"),
                            err.description or err.name)
    allowed = getattr(err, "valid_methods", None)  # 405 names the methods that would work
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def _unexpected(exc: Exception) -> Response:
    transient = infrastructure_error(exc)
    if transient is not None:
        log.warning("%s %s: %s (%r)", request.method, request.path, transient.message, exc)
        return _odin_error(transient)
    log.exception("%s %s failed (operation %s)", request.method, request.path, g.get("operation", "-"))
    return render_error(500, "INTERNAL", "Internal server error; the details are in the server log.")


def register(app: Flask) -> None:
    app.register_error_handler(OdinError, _odin_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
