"""Shared fixtures: an in-process Odin server on an ephemeral port, and a temporalio client for it."""

from __future__ import annotations

import os
import uuid

import pytest
from temporalio.client import Client

from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer

REQUIRE_SERVICES = os.environ.get("ODIN_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get("ODIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ODIN_TEST_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


@pytest.fixture
async def odin_server(tmp_path):
    server = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)


@pytest.fixture
async def client(odin_server) -> Client:
    return await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace="default")


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"
