"""Whose call a REST request or a web UI page makes.

API clients send ``Authorization: Bearer <token>``. A browser cannot add that header to page
loads and form posts, so the web UI's sign-in page keeps the token in an HttpOnly cookie, which
counts for web UI routes only (their forms carry CSRF tokens; the API does not read the cookie).
"""

from __future__ import annotations

from flask import current_app, request

from odin.errors import OdinError
from odin.operations import Operation
from odin.security import auth

COOKIE = "odin_session"


def authorization() -> str | None:
    """The credentials of the current request, as an ``Authorization`` value."""
    header = request.headers.get("Authorization")
    if header or request.blueprint != "ui":
        return header
    token = request.cookies.get(COOKIE)
    return f"Bearer {token}" if token else None


def _gate():
    return current_app.extensions["odin"].get().frontend.gate


def auth_enabled() -> bool:
    return current_app.extensions["odin"].settings.auth.enabled


def principal() -> auth.Principal | None:
    """Who is calling; None if the credentials are missing or not valid."""
    try:
        return _gate().authenticator.authenticate(authorization())
    except OdinError:
        return None


def allowed(operation: Operation, namespace: str | None) -> bool:
    """Whether the caller may make ``operation`` (the UI shows only the buttons that would work)."""
    who = principal()
    if who is None:
        return False
    try:
        auth.authorize(who, operation, namespace)
    except OdinError:
        return False
    return True
