"""Path segments that may hold a slash.

Workflow ids such as ``orders/42`` are common, and a client puts them in a URL as one segment,
``orders%2F42``. WSGI servers hand the app ``PATH_INFO`` already decoded, where that slash can no
longer be told from a separator. ``EncodedSlashes`` rebuilds ``PATH_INFO`` from the raw request
URI (gunicorn's and werkzeug's ``RAW_URI``/``REQUEST_URI``) with each segment decoded except for
``/`` and ``%``, which stay escaped inside it; ``SegmentConverter`` (the default converter of the
app's routes) undoes those two escapes in a matched value and writes them when building URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from flask import Flask, request
from werkzeug.routing import BaseConverter

from odin.errors import InvalidArgument

_ESCAPE = re.compile(r"%(2F|25)")
INVALID_PATH = "odin.invalid_path"


def register(app: Flask) -> None:
    app.url_map.converters["default"] = SegmentConverter
    app.wsgi_app = EncodedSlashes(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def _refuse_invalid_path() -> None:
        if request.environ.get(INVALID_PATH):
            raise InvalidArgument("The URL path is not valid UTF-8.")


def _escape_segment(raw: bytes) -> bytes:
    return raw.replace(b"%", b"%25").replace(b"/", b"%2F")


class SegmentConverter(BaseConverter):
    """One path segment, the escaped slashes and percent signs in it decoded."""

    def to_python(self, value: str) -> str:
        return _ESCAPE.sub(lambda m: "/" if m.group(1) == "2F" else "%", value)

    def to_url(self, value: Any) -> str:
        return quote(str(value), safe="!$&'()*+,:;=@")


class EncodedSlashes:
    """WSGI middleware keeping ``%2F`` inside its path segment (see the module's docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = self.path_info(environ)
        try:
            path.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            # Werkzeug would read such bytes as U+FFFD, so that many URLs named one id.
            environ[INVALID_PATH] = True
        environ["PATH_INFO"] = path
        return self.app(environ, start_response)

    @staticmethod
    def path_info(environ: dict) -> str:
        # PATH_INFO holds the path's bytes as latin-1 characters (PEP 3333).
        decoded = environ.get("PATH_INFO", "")
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if raw and not raw.startswith("/"):  # absolute-form request target
            raw = urlsplit(raw).path
        raw = raw.split("?", 1)[0].split("#", 1)[0]
        prefix = environ.get("SCRIPT_NAME", "")
        if prefix and raw.startswith(prefix):
            raw = raw[len(prefix):]
        raw_bytes = raw.encode("latin-1", "replace")
        path = unquote_to_bytes(raw_bytes)
        # werkzeug's server reads PATH_INFO as UTF-8 with replacement characters, gunicorn as bytes.
        if raw and decoded in (path.decode("latin-1"), path.decode("utf-8", "replace").encode().decode("latin-1")):
            segments = [_escape_segment(unquote_to_bytes(s)) for s in raw_bytes.split(b"/")]
        else:
            # No raw URI, or one a proxy rewrote: the decoded path is all there is.
            segments = [_escape_segment(s.encode("latin-1")) for s in decoded.split("/")]
        return b"/".join(segments).decode("latin-1")
