"""TLS on the gRPC port: mutual TLS admits clients whose certificate the configured CA signed and
refuses the rest; rotated certificate files are served to new connections without a restart."""

from __future__ import annotations

import os
import time

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, TLSConfig

from odin.config import Settings
from odin.server import OdinServer
from tests.support.certs import Authority
from tests.support.services import migrated_sqlite_url


async def _server(tmp_path, cert: str, key: str, client_ca: str | None) -> OdinServer:
    settings = Settings(
        database_url=migrated_sqlite_url(tmp_path / "odin.db"),
        grpc_port=0,
        tls_cert_file=cert,
        tls_key_file=key,
        tls_client_ca_file=client_ca,
    )
    server = OdinServer(settings)
    await server.start()
    return server


async def _describe(port: int, tls: TLSConfig) -> str:
    client = await Client.connect(f"127.0.0.1:{port}", tls=tls)
    response = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    return response.namespace_info.name


async def _refused(port: int, tls: TLSConfig) -> None:
    with pytest.raises(Exception) as err:  # the SDK raises RuntimeError for a failed connect
        await _describe(port, tls)
    text = str(err.value).lower()
    assert any(word in text for word in ("tls", "certificate", "connect", "handshake", "transport")), text


async def test_mutual_tls_admits_only_clients_signed_by_the_client_ca(tmp_path):
    server_ca, client_ca, stranger_ca = Authority("server-ca"), Authority("client-ca"), Authority("stranger-ca")
    cert, key = server_ca.issue("odin", server=True).write(tmp_path, "server")
    (tmp_path / "clients.pem").write_bytes(client_ca.pem)
    server = await _server(tmp_path, cert, key, str(tmp_path / "clients.pem"))
    port = server.endpoints.grpc_port
    try:
        good = client_ca.issue("worker-1", server=False)
        assert await _describe(port, TLSConfig(
            server_root_ca_cert=server_ca.pem, client_cert=good.cert_pem, client_private_key=good.key_pem
        )) == "default"
        # No client certificate, or one from a CA the server does not trust: refused.
        await _refused(port, TLSConfig(server_root_ca_cert=server_ca.pem))
        stranger = stranger_ca.issue("intruder", server=False)
        await _refused(port, TLSConfig(
            server_root_ca_cert=server_ca.pem, client_cert=stranger.cert_pem, client_private_key=stranger.key_pem
        ))
        # And a plaintext client gets nowhere.
        await _refused(port, TLSConfig(server_root_ca_cert=stranger_ca.pem))
    finally:
        await server.stop(grace=0.5)


async def test_rotated_certificate_files_are_served_without_a_restart(tmp_path):
    old_ca, new_ca = Authority("old-ca"), Authority("new-ca")
    cert, key = old_ca.issue("odin", server=True).write(tmp_path, "server")
    server = await _server(tmp_path, cert, key, None)  # TLS without client certificates
    port = server.endpoints.grpc_port
    try:
        assert await _describe(port, TLSConfig(server_root_ca_cert=old_ca.pem)) == "default"
        await _refused(port, TLSConfig(server_root_ca_cert=new_ca.pem))
        # Rotate: write the new pair in place (as a secret store or certbot would).
        rotated = new_ca.issue("odin", server=True)
        for path, data in ((key, rotated.key_pem), (cert, rotated.cert_pem)):
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        later = time.time() + 5
        os.utime(cert, (later, later))  # a new modification time even on coarse-clock filesystems
        assert await _describe(port, TLSConfig(server_root_ca_cert=new_ca.pem)) == "default"
        await _refused(port, TLSConfig(server_root_ca_cert=old_ca.pem))
    finally:
        await server.stop(grace=0.5)


async def test_a_client_ca_without_a_server_certificate_is_a_configuration_error(tmp_path):
    ca = Authority("ca")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    settings = Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0,
                        tls_client_ca_file=str(tmp_path / "ca.pem"))
    with pytest.raises(ValueError, match="needs a server certificate"):
        await OdinServer(settings).start()
