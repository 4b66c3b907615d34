"""Shared fixtures: an in-process Odin server on an ephemeral port, and a temporalio client for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client

from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import (
    REDIS_URL,
    migrated_sqlite_url,
    remove_template_databases,
    require_redis,
    throwaway_mysql_database,
    throwaway_postgres_database,
)


@pytest.fixture(scope="session", autouse=True)
def template_databases() -> Iterator[None]:
    """The migrated databases tests copy (``migrated_sqlite_url``, ``throwaway_postgres_database(migrated=True)``)
    are made on first use; each test process drops its own at the end."""
    yield
    remove_template_databases()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throw-away PostgreSQL database shared by this test run's servers."""
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """One throw-away MariaDB (or MySQL) database shared by this test run's servers."""
    with throwaway_mysql_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """The end-to-end matrix: SQLite and PostgreSQL. A module whose tests also run on MariaDB says so
    with ``pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)``."""
    if request.param == "sqlite":
        return migrated_sqlite_url(tmp_path / "odin.db")
    if request.param == "mysql":
        return request.getfixturevalue("mysql_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def odin_server(database_url):
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    yield server
    await server.stop(grace=0.5)


@pytest.fixture
async def stub(odin_server):
    """A raw gRPC WorkflowService stub on ``odin_server``, for requests the SDK would not send."""
    import grpc
    from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    try:
        yield WorkflowServiceStub(channel)
    finally:
        await channel.close()


@pytest.fixture
async def client(odin_server) -> Client:
    return await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace="default")


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis; every key under it is deleted afterwards."""
    import redis

    require_redis()
    prefix = f"odin-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def aioredis_client():
    import redis.asyncio as aioredis

    require_redis()
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so a fixture can tell whether its test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def unsandboxed_workflows():
    """Run temporalio workers and replayers outside the SDK's sandbox unless they ask for one.

    The sandbox guards user workflow code against non-determinism; the temporalio-SDK tests
    exercise the server, and the sandbox costs 1-2 s per worker and per replay (it re-imports the
    test module each time). Replays stay strict: a history that does not match the code still
    fails. The Odin SDK's worker host names its runner explicitly, so its tests run sandboxed."""
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

    originals = {cls: cls.__init__ for cls in (Worker, Replayer)}

    def patched(original):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
            original(self, *args, **kwargs)

        return __init__

    for cls, original in originals.items():
        cls.__init__ = patched(original)
    yield
    for cls, original in originals.items():
        cls.__init__ = original
