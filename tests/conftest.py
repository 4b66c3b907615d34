"""Shared fixtures: an in-process Odin server on an ephemeral port, and a temporalio client for it."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator

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


@contextlib.contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create a PostgreSQL database for one test (run), yield its SQLAlchemy URL, drop it after."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"odin_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throw-away PostgreSQL database shared by this test run's servers."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return sqlite_url_for_path(str(tmp_path / "odin.db"))
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def odin_server(database_url):
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)


@pytest.fixture
async def client(odin_server) -> Client:
    return await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace="default")


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"
