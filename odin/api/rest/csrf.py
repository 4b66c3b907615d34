"""Cross-site request forgery protection.

- Every state-changing request (any method but GET/HEAD/OPTIONS) a browser sends from another
  site is refused: browsers mark it ``Sec-Fetch-Site: cross-site`` (older ones at least send an
  ``Origin`` naming another host). API clients (curl, SDKs) send neither and are unaffected.
- The web UI's forms also carry a token that must equal the ``odin_csrf`` cookie (double submit):
  another site can neither read that cookie nor set it, so it cannot forge a form post. It needs
  no server-side secret, so it holds across gunicorn workers and restarts.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from werkzeug.exceptions import Forbidden

COOKIE = "odin_csrf"
FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_cross_site() -> None:
    if request.method in _SAFE:
        return
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site == "cross-site" or (site is None and origin and origin != "null" and urlsplit(origin).netloc != request.host):
        raise Forbidden("Cross-site requests that change state are refused.")


def token() -> str:
    """This browser's token (for the forms of the page being rendered)."""
    if "csrf_token" not in g:
        existing = request.cookies.get(COOKIE, "")
        g.csrf_token = existing if len(existing) >= 32 else secrets.token_urlsafe(32)
        g.csrf_new = g.csrf_token != existing
    return g.csrf_token


def check_form() -> None:
    """Refuse a form post whose token does not match the cookie."""
    sent, expected = request.form.get(FIELD, ""), request.cookies.get(COOKIE, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden("The form's security token is missing or stale; reload the page and submit again.")


def _set_cookie(response: Response) -> Response:
    if g.get("csrf_new"):
        response.set_cookie(COOKIE, g.csrf_token, httponly=True, samesite="Lax", secure=request.is_secure)
    return response


def protect(app: Flask) -> None:
    app.before_request(refuse_cross_site)
    app.after_request(_set_cookie)
    app.jinja_env.globals["csrf_token"] = token
