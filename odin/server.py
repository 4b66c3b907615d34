"""One Odin front-door process: the runtime (store, engine, adapters) plus the gRPC server."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from odin.api.grpc.server import PortUnavailable, build_grpc_server, mark_serving, port_taken
from odin.api.tls import TlsFiles
from odin.clock import Clock
from odin.config import Settings
from odin.frontend import FrontendService
from odin.persistence.store import SqlExecutionStore
from odin.runtime import NotMigrated, Runtime, Unreachable

__all__ = ["Endpoints", "NotMigrated", "OdinServer", "Unreachable"]

log = logging.getLogger(__name__)


@dataclass
class Endpoints:
    grpc_host: str
    grpc_port: int
    http_port: int | None = None  # the REST API and web UI, when this process serves them


def tls_files(s: Settings) -> TlsFiles | None:
    """The gRPC port's TLS files from the settings (None: plaintext)."""
    if s.tls_cert_file or s.tls_key_file:
        if not (s.tls_cert_file and s.tls_key_file):
            raise ValueError("TLS needs both a certificate file and a key file")
        return TlsFiles(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
    if s.tls_client_ca_file:
        raise ValueError("a client CA (mutual TLS) needs a server certificate and key too")
    return None


class OdinServer:
    """``odin dev`` (SQLite, in-memory queues, in-process timers) or ``odin server`` (any database;
    with Redis, the distributed shape: docs/architecture.md#process-shapes-distributed). With ``serve_http`` the REST API and web UI
    are served on ``settings.http_port`` too, over the same runtime as the gRPC door."""

    def __init__(self, settings: Settings, clock: Clock | None = None, auto_migrate: bool = True, serve_http: bool = False):
        self.settings = settings
        self.runtime = Runtime(settings, clock, auto_migrate=auto_migrate)
        self.serve_http = serve_http
        self._grpc = None
        self._http = None
        self.endpoints: Endpoints | None = None

    @property
    def frontend(self) -> FrontendService | None:
        return self.runtime.frontend

    @property
    def store(self) -> SqlExecutionStore | None:
        return self.runtime.store

    async def start(self) -> Endpoints:
        s = self.settings
        tls = tls_files(s)
        await self.runtime.start()
        self._grpc, port = build_grpc_server(self.runtime.frontend, s.grpc_host, s.grpc_port, tls)
        await self._grpc.start()
        await mark_serving(self._grpc)
        self.endpoints = Endpoints(s.grpc_host, port)
        if self.serve_http:
            from odin.api.rest.serve import ThreadedHttpServer

            if port_taken(s.grpc_host, s.http_port):
                raise PortUnavailable(
                    f"cannot listen on {s.grpc_host}:{s.http_port} for HTTP: the port is in use (choose another with --http-port)"
                )
            self._http = ThreadedHttpServer(self.runtime, asyncio.get_running_loop(), s.grpc_host, s.http_port)
            self._http.start()
            self.endpoints.http_port = self._http.port
        return self.endpoints

    async def stop(self, grace: float = 2.0) -> None:
        if self._http is not None:
            await asyncio.to_thread(self._http.stop)  # its requests call into this loop: do not block it
            self._http = None
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        await self.runtime.stop()
