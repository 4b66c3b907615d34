"""TLS for the gRPC port, mutual when a client CA is configured, with certificate files reloaded
when they change (rotation without a restart: new connections get the new certificate)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str
    key_file: str
    # With a client CA, clients must present a certificate it signed.
    client_ca_file: str | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None


class ReloadingCredentials:
    """Server credentials whose certificate, key and client CA are re-read when a file changes.

    gRPC asks ``fetch`` at each new handshake; it answers None (no change) unless a file's
    modification time or size moved, then it loads and returns the new configuration. A file
    caught half-written (unreadable, or a key that does not match) keeps the previous one."""

    def __init__(self, files: TlsFiles):
        self.files = files
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._initial = self._load()

    def _paths(self) -> list[str]:
        return [p for p in (self.files.cert_file, self.files.key_file, self.files.client_ca_file) if p]

    def _stamps(self) -> tuple:
        stamps = []
        for path in self._paths():
            st = os.stat(path)
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _load(self):
        cert = Path(self.files.cert_file).read_bytes()
        key = Path(self.files.key_file).read_bytes()
        root = Path(self.files.client_ca_file).read_bytes() if self.files.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=root)

    def fetch(self):
        with self._lock:
            try:
                stamp = self._stamps()
            except OSError:
                return None
            if stamp == self._stamp:
                return None
            try:
                config = self._load()
            except (OSError, ValueError) as exc:
                log.warning("TLS files changed but could not be loaded yet: %s", exc)
                return None
            self._stamp = stamp
            log.info("TLS certificate files changed: new connections use the new ones")
            return config

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch, require_client_authentication=self.files.mutual
        )
