"""Serving the REST app from inside another process's event loop (``odin dev``): a werkzeug WSGI
server on a daemon thread, each request handled on a thread of its own, calling into the runtime
on the loop it lives on."""

from __future__ import annotations

import asyncio
import logging
import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from odin.api.rest import create_app
from odin.api.rest.runtime import RuntimeHandle
from odin.runtime import Runtime

log = logging.getLogger(__name__)


class _RequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # An access log line per request only when asked for (``odin --log-level DEBUG dev``).
        if log.isEnabledFor(logging.DEBUG):
            super().log_request(code, size)


class ThreadedHttpServer:
    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, host: str, port: int):
        self.app = create_app(runtime=RuntimeHandle.attached(runtime, loop))
        self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True, request_handler=_RequestHandler)
        self.host, self.port = host, self._server.port
        self._thread = threading.Thread(target=self._server.serve_forever, name="odin-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests (blocks until the serving loop has noticed)."""
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()
