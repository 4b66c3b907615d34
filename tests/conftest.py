"""Shared fixtures: an in-process Odin server on an ephemeral port, and a temporalio client for it."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

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


REDIS_URL = os.environ.get("ODIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_reachable(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {url}: {exc}")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis; every key under it is deleted afterwards."""
    import redis

    _redis_reachable(REDIS_URL)
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

    _redis_reachable(REDIS_URL)
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@contextlib.contextmanager
def private_redis_server(tmp_dir) -> Iterator[str]:
    """A redis-server of this test's own on a free port (so it may be flushed or killed); yields its URL."""
    import shutil
    import socket
    import subprocess
    import time

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


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
