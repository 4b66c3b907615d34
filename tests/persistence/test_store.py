"""Contract of the SQL ``ExecutionStore``, run against SQLite, PostgreSQL and MariaDB alike.

Every test gets an empty database: a SQLite file in ``tmp_path``, or a throw-away PostgreSQL or
MariaDB database ``odin_test_<hex>`` created for the test and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Memo, Payload, WorkflowType
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.config import sqlite_url_for_path
from odin.errors import AlreadyExists, ConcurrentUpdate, ShardOwnershipLost
from odin.history.engine import visibility_row
from odin.history.machine import Transition
from odin.history.start import new_run
from odin.persistence import migrate
from odin.persistence import tables as t
from odin.persistence.store import (
    Batch,
    BatchOperationRecord,
    CurrentExecution,
    CurrentWrite,
    ExecutionRecord,
    NamespaceRecord,
    OutboxTask,
    SqlExecutionStore,
    WorkflowWrite,
    _check_fence,
    open_database,
)
from tests.support.services import migrated_sqlite_url, throwaway_mysql_database, throwaway_postgres_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NS = "8d5cbb39-6e0f-4a4e-9d7e-5d8f0c3f0a11"


@pytest.fixture(scope="session")
def migrated_mysql_url() -> Iterator[str]:
    """One MariaDB database migrated once for the run: MySQL's DDL commits and syncs table by table
    (seconds per migration run), so its tests share it and start from emptied tables instead."""
    from alembic import command

    with throwaway_mysql_database() as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        engine.dispose()
        yield url


def _empty_all_tables(db) -> None:
    with db.engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name != "alembic_version":
                conn.execute(sa.text(f"DELETE FROM `{name}`"))


@contextlib.asynccontextmanager
async def _database(kind: str, tmp_path, migrated_mysql_url: str | None = None, migrated: bool = False):
    """``migrated``: SQLite and PostgreSQL databases are copies of one the migrations built."""
    if kind == "sqlite":
        path = tmp_path / "odin.db"
        eng = open_database(migrated_sqlite_url(path) if migrated else sqlite_url_for_path(str(path)))
        try:
            yield eng
        finally:
            await eng.dispose()
        return
    if kind == "mysql" and migrated_mysql_url is not None:
        eng = open_database(migrated_mysql_url)
        await eng.run(_empty_all_tables, eng)
        try:
            yield eng
        finally:
            await eng.dispose()
        return
    if kind == "postgres":
        databases = throwaway_postgres_database(migrated=migrated)
    else:
        databases = throwaway_mysql_database()
    with databases as url:
        eng = open_database(url)
        try:
            yield eng
        finally:
            await eng.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
async def fresh_engine(request, tmp_path):
    """An empty database: not even the schema."""
    async with _database(request.param, tmp_path) as eng:
        yield eng


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
async def engine(request, tmp_path):
    """A database for one test at the newest schema: a copy of a migrated one (SQLite,
    PostgreSQL), or (MariaDB) one migrated already with every table emptied."""
    migrated = request.getfixturevalue("migrated_mysql_url") if request.param == "mysql" else None
    async with _database(request.param, tmp_path, migrated, migrated=True) as eng:
        yield eng


@pytest.fixture
async def store(engine) -> SqlExecutionStore:
    await migrate.upgrade(engine)
    return SqlExecutionStore(engine)


async def count(db, table: sa.Table, *where) -> int:
    def run() -> int:
        with db.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

    return await db.run(run)


# -- building writes ---------------------------------------------------------------------------


class Run:
    """A run created by the real state machine, and the writes the engine would make for it."""

    def __init__(self, workflow_id: str = "wf-1", shard_id: int = 3):
        self.run_id = str(uuid.uuid4())
        req = StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Greeter"),
            task_queue=TaskQueue(name="tq"),
            request_id=f"req-{self.run_id}",
            memo=Memo(fields={"k": Payload(data=b'"v"')}),
        )
        self.t = new_run(namespace_id=NS, namespace="default", run_id=self.run_id, request=req, now=T0)
        self.workflow_id = workflow_id
        self.shard_id = shard_id
        self.db_version = 0

    @property
    def state(self):
        return self.t.state

    def record(self, db_version: int) -> ExecutionRecord:
        s = self.state
        return ExecutionRecord(
            NS, s.workflow_id, s.run_id, self.shard_id, s.status, s.next_event_id, db_version, s.to_bytes()
        )

    def current(self) -> CurrentExecution:
        s = self.state
        return CurrentExecution(NS, s.workflow_id, s.run_id, s.first_execution_run_id, s.start_request_id, s.status)

    def task(
        self, kind: str = "workflow_task", fire_in: float | None = None, created: float = 0.0, **data
    ) -> OutboxTask:
        return OutboxTask(
            task_id=uuid.uuid4().hex,
            shard_id=self.shard_id,
            namespace_id=NS,
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            kind=kind,
            data=data or {"scheduled_event_id": 2, "queue": "tq", "sticky": False},
            created_at=T0 + timedelta(seconds=created),
            fire_at=None if fire_in is None else T0 + timedelta(seconds=fire_in),
        )

    def create_batch(self, transfers=(), timers=()) -> Batch:
        """The batch that creates the run (expected_db_version None, current pointer inserted)."""
        return Batch(
            workflows=[
                WorkflowWrite(self.record(1), None, events=list(self.t.events), visibility=visibility_row(self.state))
            ],
            current=[CurrentWrite(self.current(), expected_run_id=None)],
            transfer_tasks=list(transfers),
            timer_tasks=list(timers),
        )

    def advance(self, op, now_s: float = 1.0) -> Transition:
        """Apply ``op`` on a new transition (like the engine) and return it; ``self.t`` becomes it."""
        self.t = Transition(self.state, T0 + timedelta(seconds=now_s))
        op(self.t)
        return self.t

    def update_write(self, expected: int, closed: bool = False) -> WorkflowWrite:
        return WorkflowWrite(
            self.record(expected + 1),
            expected,
            events=list(self.t.events),
            visibility=visibility_row(self.state),
            closed=closed,
        )


def same_events(a: list[HistoryEvent], b: list[HistoryEvent]) -> bool:
    return [e.SerializeToString() for e in a] == [e.SerializeToString() for e in b]


# == migrations ==============================================================================


async def test_migrations_bring_an_empty_database_up_to_date(fresh_engine):
    engine = fresh_engine
    assert not await migrate.is_up_to_date(engine)
    await migrate.upgrade(engine)
    assert await migrate.is_up_to_date(engine)
    await migrate.upgrade(engine)  # a second upgrade is a no-op
    assert await migrate.is_up_to_date(engine)

    names = await engine.run(lambda: set(sa.inspect(engine.engine).get_table_names()))
    assert set(t.metadata.tables) <= names


async def test_migrated_schema_matches_the_table_definitions(store, engine):
    """The tables the code uses are exactly what the migrations built (columns and indexes)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def diff():
        with engine.engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), t.metadata)

    differences = [d for d in await engine.run(diff) if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]
    assert differences == []


# == cluster and namespaces ===================================================================


async def test_init_cluster_fixes_the_shard_count(store, engine):
    assert await store.init_cluster(4) == 4
    assert await store.init_cluster(8) == 4  # later calls get the stored count
    assert await store.init_cluster(4) == 4
    assert await count(engine, t.history_shards) == 4


async def test_processes_starting_together_on_a_fresh_database_agree_on_the_cluster(store, engine):
    # Separate engines (connection pools) stand for separate processes starting at once.
    url = engine.engine.url.render_as_string(hide_password=False)
    others = [open_database(url) for _ in range(4)]
    try:
        counts = await asyncio.gather(*(SqlExecutionStore(db).init_cluster(4 + i) for i, db in enumerate(others)))
        cluster_ids = {await SqlExecutionStore(db).cluster_id() for db in others}
    finally:
        for db in others:
            await db.dispose()
    assert len(set(counts)) == 1 and counts[0] in (4, 5, 6, 7)
    assert len(cluster_ids) == 1 and cluster_ids != {""}
    assert await count(engine, t.history_shards) == counts[0]


async def test_namespaces_create_get_list_update(store):
    alpha = NamespaceRecord(str(uuid.uuid4()), "alpha", 1, {"description": "first", "retention_seconds": 86400}, T0)
    beta = NamespaceRecord(str(uuid.uuid4()), "beta", 1, {"owner_email": "b@example.com"}, T0 + timedelta(seconds=5))
    await store.create_namespace(beta)
    await store.create_namespace(alpha)

    assert await store.get_namespace(name="alpha") == alpha
    assert await store.get_namespace(id=beta.id) == beta
    got = await store.get_namespace(name="beta")
    assert got.created_at == beta.created_at and got.created_at.tzinfo is not None
    assert await store.get_namespace(name="nope") is None
    assert await store.get_namespace(id=str(uuid.uuid4())) is None
    assert [ns.name for ns in await store.list_namespaces()] == ["alpha", "beta"]

    with pytest.raises(AlreadyExists):  # same name, new id
        await store.create_namespace(NamespaceRecord(str(uuid.uuid4()), "alpha", 1, {}, T0))
    with pytest.raises(AlreadyExists):  # same id, new name
        await store.create_namespace(NamespaceRecord(alpha.id, "gamma", 1, {}, T0))
    assert [ns.name for ns in await store.list_namespaces()] == ["alpha", "beta"]

    alpha.state = 2
    alpha.data = {"description": "changed"}
    await store.update_namespace(alpha)
    assert await store.get_namespace(name="alpha") == alpha


# == workflow writes ==========================================================================


async def test_commit_of_a_new_workflow(store):
    run = Run()
    transfer = run.task("workflow_task", created=0)
    timer = run.task("run_timeout", fire_in=3600)
    await store.commit(run.create_batch([transfer], [timer]))

    record = await store.get_execution(NS, "wf-1", run.run_id)
    assert record == run.record(1)
    assert record.next_event_id == 3 and record.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert await store.get_current(NS, "wf-1") == run.current()
    assert await store.get_current(NS, "other") is None
    assert await store.get_execution(NS, "wf-1", str(uuid.uuid4())) is None

    events = await store.read_events(run.run_id, 1, record.next_event_id)
    assert same_events(events, run.t.events)
    assert [e.event_type for e in events] == [
        E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ]

    [got_transfer] = await store.list_transfer_tasks(10)
    assert got_transfer == transfer
    assert await store.due_timer_tasks(T0, 10) == []
    [got_timer] = await store.due_timer_tasks(T0 + timedelta(hours=2), 10)
    assert got_timer.task_id == timer.task_id and got_timer.fire_at == timer.fire_at
    assert got_timer.kind == "run_timeout" and got_timer.data == timer.data and got_timer.run_id == run.run_id

    vis = await store.get_visibility(NS, run.run_id)
    assert vis["workflow_id"] == "wf-1" and vis["workflow_type"] == "Greeter"
    assert vis["status"] == Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert vis["start_time"] == T0 and vis["close_time"] is None
    assert vis["history_length"] == 2
    assert Memo.FromString(vis["memo"]).fields["k"].data == b'"v"'


async def test_update_with_the_expected_db_version(store):
    run = Run()
    await store.commit(run.create_batch())
    run.advance(lambda t: t.signal("hello", None, "client", None, ""))
    await store.commit(Batch(workflows=[run.update_write(1)]))

    record = await store.get_execution(NS, "wf-1", run.run_id)
    assert record.db_version == 2
    assert record.next_event_id == run.state.next_event_id == 4
    events = await store.read_events(run.run_id, 1, record.next_event_id)
    assert [e.event_id for e in events] == [1, 2, 3]
    assert events[2].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


async def test_stale_db_version_raises_and_writes_nothing(store, engine):
    run = Run()
    await store.commit(run.create_batch([run.task()], [run.task("run_timeout", fire_in=60)]))
    run.advance(lambda t: t.signal("one", None, "client", None, ""))
    await store.commit(Batch(workflows=[run.update_write(1)]))
    before = await store.get_execution(NS, "wf-1", run.run_id)
    vis_before = await store.get_visibility(NS, run.run_id)

    # A writer that loaded version 1 tries to commit its own transition.
    run.advance(lambda t: t.terminate("late", None, "admin"))
    stale = Batch(
        workflows=[run.update_write(1, closed=True)],
        transfer_tasks=[run.task(created=1)],
        timer_tasks=[run.task("user_timer", fire_in=5, timer_id="t", started_event_id=9)],
    )
    with pytest.raises(ConcurrentUpdate):
        await store.commit(stale)

    assert await store.get_execution(NS, "wf-1", run.run_id) == before
    assert await count(engine, t.history_events, t.history_events.c.run_id == run.run_id) == 3
    assert await count(engine, t.transfer_tasks) == 1
    assert await count(engine, t.timer_tasks) == 1
    assert await store.get_visibility(NS, run.run_id) == vis_before
    assert (await store.get_current(NS, "wf-1")).status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING


async def test_a_change_of_one_run_and_its_outbox_lands_whole_or_not_at_all(store, engine):
    """The commonest commit: a run's compare-and-set with its new events, outbox deletes and
    inserts, no visibility change (on PostgreSQL, one statement). From a stale read none of it
    lands; from the current one all of it does."""
    run = Run()
    old_transfer, old_timer = run.task(), run.task("run_timeout", fire_in=60)
    await store.commit(run.create_batch([old_transfer], [old_timer]))
    created_events = len(run.t.events)

    def both(t):
        t.signal("one", None, "client", None, "")
        t.signal("two", None, "client", None, "")

    run.advance(both)
    new_transfer = run.task(created=1)
    new_timer = run.task("user_timer", fire_in=5, timer_id="t", started_event_id=9)

    def change(expected: int) -> Batch:
        return Batch(
            workflows=[WorkflowWrite(run.record(expected + 1), expected, events=list(run.t.events))],
            transfer_tasks=[new_transfer],
            timer_tasks=[new_timer],
            delete_transfer_ids=[old_transfer.task_id],
            delete_timer_ids=[old_timer.task_id],
        )

    with pytest.raises(ConcurrentUpdate):
        await store.commit(change(5))
    assert (await store.get_execution(NS, "wf-1", run.run_id)).db_version == 1
    assert await count(engine, t.history_events, t.history_events.c.run_id == run.run_id) == created_events
    assert [x.task_id for x in await store.list_transfer_tasks(10)] == [old_transfer.task_id]
    assert [x.task_id for x in await store.due_timer_tasks(T0 + timedelta(hours=1), 10)] == [old_timer.task_id]

    await store.commit(change(1))
    record = await store.get_execution(NS, "wf-1", run.run_id)
    assert (record.db_version, record.next_event_id, record.state) == (2, run.state.next_event_id, run.state.to_bytes())
    events = await store.read_events(run.run_id, 1, record.next_event_id)
    assert [e.event_id for e in events] == list(range(1, created_events + 3))
    assert same_events(events[created_events:], run.t.events)
    [transfer] = await store.list_transfer_tasks(10)
    assert (transfer.task_id, transfer.kind, transfer.data, transfer.created_at) == (
        new_transfer.task_id, new_transfer.kind, new_transfer.data, new_transfer.created_at
    )
    [timer] = await store.due_timer_tasks(T0 + timedelta(hours=1), 10)
    assert (timer.task_id, timer.kind, timer.data, timer.fire_at, timer.shard_id, timer.workflow_id) == (
        new_timer.task_id, new_timer.kind, new_timer.data, new_timer.fire_at, new_timer.shard_id, new_timer.workflow_id
    )


async def test_batches_committed_together_each_get_their_own_outcome(store, engine):
    """Concurrent commits share transactions (group commit), yet a conflict fails only its own
    batch: the others are durable, the stale one wrote nothing."""
    existing = Run("wf-existing")
    await store.commit(existing.create_batch())
    created_events = len(existing.t.events)
    existing.advance(lambda t: t.signal("x", None, "c", None, ""))
    fresh = [Run(f"wf-{i}") for i in range(12)]
    stale = Batch(workflows=[existing.update_write(7)], transfer_tasks=[existing.task(created=2)])  # wrong version
    # The id is taken (by a run committed before: which of two racing groups commits first is up to
    # the database's threads), so its pointer insert clashes.
    duplicate = Run("wf-existing").create_batch()
    calls = [store.commit(r.create_batch([r.task()])) for r in fresh[:6]]
    calls += [store.commit(stale), store.commit(duplicate)]
    calls += [store.commit(r.create_batch([r.task()])) for r in fresh[6:]]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert outcomes[:6] + outcomes[8:] == [None] * 12
    assert isinstance(outcomes[6], ConcurrentUpdate) and isinstance(outcomes[7], ConcurrentUpdate)
    for r in fresh:
        assert (await store.get_current(NS, r.workflow_id)).run_id == r.run_id
        assert await count(engine, t.history_events, t.history_events.c.run_id == r.run_id) == len(r.t.events)
    assert await count(engine, t.transfer_tasks) == 12
    assert (await store.get_execution(NS, "wf-existing", existing.run_id)).db_version == 1
    assert await count(engine, t.history_events, t.history_events.c.run_id == existing.run_id) == created_events


async def test_concurrent_commits_share_transactions(store, engine):
    commits = []
    sa.event.listen(engine.engine, "commit", lambda conn: commits.append(1))
    runs = [Run(f"wf-{i}") for i in range(20)]
    await asyncio.gather(*(store.commit(r.create_batch([r.task()])) for r in runs))
    assert len(commits) <= 10  # one transaction for the first batch(es), one for the rest
    for r in runs:
        assert (await store.get_current(NS, r.workflow_id)).run_id == r.run_id


async def test_a_batch_is_atomic_across_workflows(store, engine):
    a = Run("wf-a")
    await store.commit(a.create_batch())
    b = Run("wf-b")
    a.advance(lambda t: t.signal("x", None, "c", None, ""))
    batch = b.create_batch([b.task()], [b.task("run_timeout", fire_in=1)])
    batch.workflows.append(a.update_write(7))  # wrong version for wf-a
    with pytest.raises(ConcurrentUpdate):
        await store.commit(batch)
    assert await store.get_execution(NS, "wf-b", b.run_id) is None
    assert await store.get_current(NS, "wf-b") is None
    assert await count(engine, t.history_events, t.history_events.c.run_id == b.run_id) == 0
    assert await store.get_visibility(NS, b.run_id) is None
    assert await count(engine, t.transfer_tasks) == 0 and await count(engine, t.timer_tasks) == 0
    assert (await store.get_execution(NS, "wf-a", a.run_id)).db_version == 1


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # the event loop's connections are PostgreSQL's
async def test_a_commit_from_the_event_loop_survives_its_connection_dying(store, engine):
    """On PostgreSQL one-statement commits go over the event loop's own connections (autocommit):
    one whose backend was terminated is replaced, and the commit lands once."""
    first = Run("wf-1")
    await store.commit(first.create_batch([first.task()]))
    [conn] = store.db.loop_postgres._idle
    admin = engine.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    import psycopg

    with psycopg.connect(admin, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    second = Run("wf-2")
    await store.commit(second.create_batch([second.task()]))
    assert (await store.get_current(NS, "wf-2")).run_id == second.run_id
    assert await count(engine, t.history_events, t.history_events.c.run_id == second.run_id) == len(second.t.events)
    assert await count(engine, t.transfer_tasks) == 2
    [fresh] = store.db.loop_postgres._idle
    assert fresh is not conn and not fresh.broken


async def test_creating_an_existing_execution_row_is_a_conflict(store):
    run = Run()
    await store.commit(run.create_batch())
    again = Batch(workflows=[WorkflowWrite(run.record(1), None)])
    with pytest.raises(ConcurrentUpdate):
        await store.commit(again)


async def test_current_pointer_insert_for_an_existing_workflow_id_is_a_conflict(store, engine):
    first = Run("wf-1")
    await store.commit(first.create_batch())
    second = Run("wf-1")  # a new run of the same workflow id, racing the first start
    with pytest.raises(ConcurrentUpdate):
        await store.commit(second.create_batch([second.task()], [second.task("run_timeout", fire_in=1)]))
    assert (await store.get_current(NS, "wf-1")).run_id == first.run_id
    assert await store.get_execution(NS, "wf-1", second.run_id) is None
    assert await count(engine, t.history_events, t.history_events.c.run_id == second.run_id) == 0
    assert await count(engine, t.transfer_tasks) == 0 and await count(engine, t.timer_tasks) == 0


async def test_current_pointer_swap_requires_the_expected_run(store):
    first = Run("wf-1")
    await store.commit(first.create_batch())
    second = Run("wf-1")
    wrong = second.create_batch()
    wrong.current = [CurrentWrite(second.current(), expected_run_id=str(uuid.uuid4()))]
    with pytest.raises(ConcurrentUpdate):
        await store.commit(wrong)
    assert await store.get_execution(NS, "wf-1", second.run_id) is None

    right = second.create_batch()
    right.current = [CurrentWrite(second.current(), expected_run_id=first.run_id)]
    await store.commit(right)
    current = await store.get_current(NS, "wf-1")
    assert current.run_id == second.run_id and current.create_request_id == f"req-{second.run_id}"


# == history ==================================================================================


def _events(n: int, first: int = 1) -> list[HistoryEvent]:
    return [
        HistoryEvent(event_id=i, event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) for i in range(first, first + n)
    ]


async def test_a_writes_events_go_in_one_statement(store, engine, monkeypatch):
    """The events of one run's write are one INSERT statement. On PostgreSQL it is a multi-row
    INSERT sent straight on the psycopg connection, not an executemany (which psycopg would send
    as one statement per row), inside the one statement that makes the whole change."""
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO history_events" in statement:
            statements.append(statement)

    if engine.is_postgres:
        # A spy on psycopg's cursor: every statement still runs.
        import psycopg

        execute, execute_async = psycopg.Cursor.execute, psycopg.AsyncCursor.execute

        def spy(self, query, params=None, **kwargs):
            seen(None, self, str(query), params, None, False)
            return execute(self, query, params, **kwargs)

        async def spy_async(self, query, params=None, **kwargs):  # commits sent from the event loop
            seen(None, self, str(query), params, None, False)
            return await execute_async(self, query, params, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", spy)
        monkeypatch.setattr(psycopg.AsyncCursor, "execute", spy_async)
    sa.event.listen(engine.engine, "before_cursor_execute", seen)
    try:
        run = Run("wf-1")
        await store.commit(Batch(workflows=[WorkflowWrite(run.record(1), None, events=_events(7))]))
    finally:
        sa.event.remove(engine.engine, "before_cursor_execute", seen)
    assert len(statements) == 1
    if engine.is_postgres:
        assert statements[0].count("(%s, %s, %s, %s, %s)") == 7  # one statement, seven rows
        assert statements[0].startswith("WITH ") and "INSERT INTO workflow_executions" in statements[0]
    elif engine.is_mysql:
        assert statements[0].count("), (") == 6  # SQLAlchemy's multi-row VALUES
    assert [e.event_id for e in await store.read_events(run.run_id, 1, 8)] == list(range(1, 8))
    assert [e.event_id for e in await store.read_events(run.run_id, 1, 100)] == list(range(1, 8))


async def test_read_events_paging(store):
    run = Run("wf-1")
    other = Run("wf-2")
    await store.commit(
        Batch(
            workflows=[
                WorkflowWrite(run.record(1), None, events=_events(10)),
                WorkflowWrite(other.record(1), None, events=_events(3)),
            ]
        )
    )
    pages, first = [], 1
    while True:
        page = await store.read_events(run.run_id, first, 11, limit=4)
        if not page:
            break
        pages.append([e.event_id for e in page])
        first = page[-1].event_id + 1
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert [e.event_id for e in await store.read_events(run.run_id, 3, 6)] == [3, 4, 5]
    assert [e.event_id for e in await store.read_events(run.run_id, 1, 11)] == list(range(1, 11))
    assert await store.read_events(run.run_id, 11, 20) == []
    assert [e.event_id for e in await store.read_events(other.run_id, 1, 100)] == [1, 2, 3]


async def test_duplicate_event_ids_are_a_conflict(store, engine):
    run = Run()
    await store.commit(Batch(workflows=[WorkflowWrite(run.record(1), None, events=_events(3))]))
    overlap = Batch(workflows=[WorkflowWrite(run.record(2), 1, events=_events(2, first=3))])
    with pytest.raises(ConcurrentUpdate):
        await store.commit(overlap)
    assert (await store.get_execution(NS, "wf-1", run.run_id)).db_version == 1
    assert await count(engine, t.history_events) == 3


# == outbox ===================================================================================


async def test_due_timer_tasks_in_fire_order_and_next_timer_time(store):
    a, b = Run("wf-a"), Run("wf-b")
    t30, t10 = a.task("user_timer", fire_in=30, n=30), a.task("user_timer", fire_in=10, n=10)
    t20, t100 = b.task("user_timer", fire_in=20, n=20), b.task("user_timer", fire_in=100, n=100)
    await store.commit(a.create_batch(timers=[t30, t10]))
    await store.commit(b.create_batch(timers=[t20, t100]))

    def fire_order(tasks):
        return [x.data["n"] for x in tasks]

    assert await store.due_timer_tasks(T0 + timedelta(seconds=5), 10) == []
    assert fire_order(await store.due_timer_tasks(T0 + timedelta(seconds=25), 10)) == [10, 20]
    assert fire_order(await store.due_timer_tasks(T0 + timedelta(seconds=20), 10)) == [10, 20]  # inclusive
    assert fire_order(await store.due_timer_tasks(T0 + timedelta(hours=1), 2)) == [10, 20]
    due = await store.due_timer_tasks(T0 + timedelta(hours=1), 10)
    assert fire_order(due) == [10, 20, 30, 100]
    assert all(x.fire_at.tzinfo is not None for x in due)
    assert [x.fire_at for x in due] == [T0 + timedelta(seconds=s) for s in (10, 20, 30, 100)]
    # The same instant in another time zone selects the same tasks.
    plus2 = timezone(timedelta(hours=2))
    assert fire_order(await store.due_timer_tasks((T0 + timedelta(seconds=25)).astimezone(plus2), 10)) == [10, 20]

    nxt = await store.next_timer_time()
    assert nxt == T0 + timedelta(seconds=10)
    assert nxt.tzinfo is not None
    await store.delete_timer_task(t10.task_id)
    assert await store.next_timer_time() == T0 + timedelta(seconds=20)
    for x in (t20, t30, t100):
        await store.delete_timer_task(x.task_id)
    assert await store.next_timer_time() is None
    assert await store.due_timer_tasks(T0 + timedelta(days=1), 10) == []


async def test_transfer_tasks_listed_oldest_first_and_deleted(store):
    run = Run()
    late, early, mid = run.task(created=30, n=3), run.task(created=10, n=1), run.task(created=20, n=2)
    await store.commit(run.create_batch([late, early, mid]))
    listed = await store.list_transfer_tasks(10)
    assert [x.data["n"] for x in listed] == [1, 2, 3]
    assert [x.data["n"] for x in await store.list_transfer_tasks(2)] == [1, 2]
    assert listed[0].created_at == early.created_at and listed[0].fire_at is None
    await store.delete_transfer_task(early.task_id)
    await store.delete_transfer_task(early.task_id)  # idempotent
    assert [x.data["n"] for x in await store.list_transfer_tasks(10)] == [2, 3]


async def test_batch_deletes_handled_outbox_rows(store, engine):
    run = Run()
    transfer, timer = run.task(), run.task("user_timer", fire_in=5)
    await store.commit(run.create_batch([transfer], [timer]))
    run.advance(lambda t: t.signal("s", None, "c", None, ""))
    batch = Batch(
        workflows=[run.update_write(1)], delete_transfer_ids=[transfer.task_id], delete_timer_ids=[timer.task_id]
    )
    await store.commit(batch)
    assert await count(engine, t.transfer_tasks) == 0 and await count(engine, t.timer_tasks) == 0


async def test_closing_write_deletes_the_runs_outstanding_outbox_rows(store, engine):
    a, b = Run("wf-a"), Run("wf-b")
    await store.commit(
        a.create_batch([a.task(), a.task()], [a.task("run_timeout", fire_in=60), a.task("user_timer", fire_in=5)])
    )
    await store.commit(b.create_batch([b.task()], [b.task("run_timeout", fire_in=60)]))
    a.advance(lambda t: t.terminate("done", None, "admin"))
    assert a.t.closed
    await store.commit(Batch(workflows=[a.update_write(1, closed=True)]))

    assert await count(engine, t.transfer_tasks, t.transfer_tasks.c.run_id == a.run_id) == 0
    assert await count(engine, t.timer_tasks, t.timer_tasks.c.run_id == a.run_id) == 0
    assert await count(engine, t.transfer_tasks, t.transfer_tasks.c.run_id == b.run_id) == 1
    assert await count(engine, t.timer_tasks, t.timer_tasks.c.run_id == b.run_id) == 1
    record = await store.get_execution(NS, "wf-a", a.run_id)
    assert record.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED and record.db_version == 2


# == visibility ===============================================================================


async def test_visibility_is_upserted(store, engine):
    run = Run()
    await store.commit(run.create_batch())
    first = await store.get_visibility(NS, run.run_id)
    assert first["status"] == Status.WORKFLOW_EXECUTION_STATUS_RUNNING and first["close_time"] is None

    # A write without visibility leaves the row alone.
    run.advance(lambda t: None)
    await store.commit(Batch(workflows=[WorkflowWrite(run.record(2), 1, visibility=None)]))
    assert await store.get_visibility(NS, run.run_id) == first

    run.advance(lambda t: t.terminate("bye", None, "admin"), now_s=90)
    await store.commit(Batch(workflows=[run.update_write(2, closed=True)]))
    closed = await store.get_visibility(NS, run.run_id)
    assert closed["status"] == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert closed["close_time"] == T0 + timedelta(seconds=90)
    assert closed["start_time"] == T0
    assert closed["history_length"] == 3
    assert await count(engine, t.visibility_records) == 1
    assert await store.get_visibility(NS, str(uuid.uuid4())) is None
    assert await store.get_visibility(str(uuid.uuid4()), run.run_id) is None


# == shards ===================================================================================


async def test_acquiring_shards_bumps_their_range_ids(store):
    await store.init_cluster(4)
    first = await store.acquire_shards([0, 1], "owner-a", T0)
    assert first == {0: 1, 1: 1}
    again = await store.acquire_shards([1, 2], "owner-b", None)
    assert again == {1: 2, 2: 1}
    assert await store.shard_range_ids() == {0: 1, 1: 2, 2: 1, 3: 0}
    await store.release_shards([0, 1], "owner-a")  # only rows this owner holds lose their owner


async def test_a_fenced_write_is_refused_after_another_owner_took_the_shard(store, engine):
    await store.init_cluster(4)
    run = Run(shard_id=2)
    timer = run.task("user_timer", fire_in=5)
    await store.commit(run.create_batch(timers=[timer]))
    [(_, old_range)] = (await store.acquire_shards([2], "owner-a", None)).items()
    await store.acquire_shards([2], "owner-b", None)  # a new holder bumps the range

    run.advance(lambda t: t.signal("s", None, "c", None, ""))
    stale = Batch(workflows=[run.update_write(1)], delete_timer_ids=[timer.task_id], fence=(2, old_range))
    with pytest.raises(ShardOwnershipLost):
        await store.commit(stale)
    with pytest.raises(ShardOwnershipLost):
        await store.delete_timer_task(timer.task_id, fence=(2, old_range))
    # Nothing of the refused writes landed.
    assert (await store.get_execution(NS, run.workflow_id, run.run_id)).db_version == 1
    assert await count(engine, t.timer_tasks) == 1

    current = (await store.shard_range_ids())[2]
    await store.commit(Batch(workflows=[run.update_write(1)], delete_timer_ids=[timer.task_id], fence=(2, current)))
    assert await count(engine, t.timer_tasks) == 0


@pytest.mark.parametrize("engine", ["postgres", "mysql"], indirect=True)
async def test_fenced_transactions_of_one_shard_run_side_by_side_and_a_new_owner_waits(store, engine):
    """Every timer a shard owner fires is a fenced transaction. A fence that locked the shard row
    exclusively made a shard's fenced transactions queue one behind another; the share lock lets
    them overlap, while a new holder's bump still waits for them (and a fence taken after the
    bump is refused). Database servers only: SQLite runs one writing transaction at a time."""
    await _fences_side_by_side(store, engine)


async def _fences_side_by_side(store: SqlExecutionStore, engine) -> None:
    await store.init_cluster(4)
    [(_, held_range)] = (await store.acquire_shards([1], "owner-a", None)).items()
    a, b = Run("wf-fence-a", shard_id=1), Run("wf-fence-b", shard_id=1)
    await store.commit(a.create_batch(timers=[timer_a := a.task("user_timer", fire_in=5)]))
    await store.commit(b.create_batch(timers=[timer_b := b.task("user_timer", fire_in=5)]))

    def fenced_delete(conn: sa.Connection, task_id: str) -> None:
        if engine.is_mysql:
            conn.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 2"))
        else:
            conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        _check_fence(conn, (1, held_range))
        conn.execute(t.timer_tasks.delete().where(t.timer_tasks.c.task_id == task_id))

    first = engine.engine.connect()
    tx = first.begin()
    try:
        fenced_delete(first, timer_a.task_id)  # open, holding its fence
        # Another fenced transaction of the shard commits meanwhile, without waiting (it used to
        # give up on the lock timeout).
        await engine.run(lambda: _in_transaction(engine, lambda conn: fenced_delete(conn, timer_b.task_id)))
        assert await count(engine, t.timer_tasks) == 1

        # A new owner's bump waits for the open fenced transaction...
        bump = asyncio.ensure_future(asyncio.to_thread(_acquire_sync, engine, 1))
        await asyncio.sleep(0.5)
        assert not bump.done()
        tx.commit()
        assert (await asyncio.wait_for(bump, 10)) == held_range + 1
    finally:
        if tx.is_active:
            tx.rollback()
        first.close()
    assert await count(engine, t.timer_tasks) == 0
    # ...and a fenced write under the old range is refused after it.
    with pytest.raises(ShardOwnershipLost):
        await store.delete_timer_task(timer_a.task_id, fence=(1, held_range))


def _in_transaction(engine, fn) -> None:
    with engine.engine.begin() as conn:
        fn(conn)


def _acquire_sync(engine, shard: int) -> int:
    h = t.history_shards.c
    with engine.engine.begin() as conn:
        conn.execute(t.history_shards.update().where(h.shard_id == shard).values(range_id=h.range_id + 1))
        return conn.execute(sa.select(h.range_id).where(h.shard_id == shard)).scalar_one()


async def test_outbox_queries_filter_by_shard_and_age(store):
    a, b = Run("wf-a", shard_id=1), Run("wf-b", shard_id=2)
    await store.commit(a.create_batch([a.task(created=10, n=1)], [a.task("user_timer", fire_in=5, n=1)]))
    await store.commit(b.create_batch([b.task(created=30, n=2)], [b.task("user_timer", fire_in=5, n=2)]))
    later = T0 + timedelta(hours=1)
    assert [x.data["n"] for x in await store.due_timer_tasks(later, 10, [2])] == [2]
    # (Both fire at the same moment: either may come first.)
    assert sorted(x.data["n"] for x in await store.due_timer_tasks(later, 10, [1, 2])) == [1, 2]
    assert await store.due_timer_tasks(later, 10, []) == []
    assert [x.data["n"] for x in await store.list_transfer_tasks(10, [1])] == [1]
    assert [x.data["n"] for x in await store.list_transfer_tasks(10, None, T0 + timedelta(seconds=20))] == [1]
    timer = (await store.due_timer_tasks(later, 10, [1]))[0]
    assert await store.get_timer_task(timer.task_id) == timer
    assert await store.get_timer_task("missing") is None


# -- batch operations --------------------------------------------------------------------------


def _job(job_id: str, at: datetime = T0) -> BatchOperationRecord:
    return BatchOperationRecord(
        namespace_id=NS, job_id=job_id, run_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()), operation_type=13,
        request=b"", identity="me", reason="r", state="running", total=3, completed=0, failed=0, cursor="", start_time=at,
    )


async def test_batch_jobs_one_at_a_time_unique_ids_leases_and_stop(store):
    from odin.errors import ResourceExhausted
    from odin.persistence.store import BatchOperationExists

    await store.create_batch_operation(_job("a"), max_running=1)
    with pytest.raises(ResourceExhausted):
        await store.create_batch_operation(_job("b"), max_running=1)
    with pytest.raises(ResourceExhausted):  # the limit is checked first, as Temporal does
        await store.create_batch_operation(_job("a"), max_running=1)
    with pytest.raises(BatchOperationExists) as err:
        await store.create_batch_operation(_job("a"), max_running=2)
    assert err.value.existing.job_id == "a" and err.value.existing.state == "running"

    # A lease is taken when free or lapsed, never from a live holder.
    lease = timedelta(seconds=10)
    assert [j.job_id for j in await store.running_batch_operations(T0, 10)] == ["a"]
    assert await store.claim_batch_operation(NS, "a", "r1", T0, T0 + lease)
    assert not await store.claim_batch_operation(NS, "a", "r2", T0 + timedelta(seconds=5), T0 + lease * 2)
    assert await store.running_batch_operations(T0 + timedelta(seconds=5), 10) == []
    job = await store.get_batch_operation(NS, "a")
    assert await store.save_batch_progress(replace(job, completed=2, cursor="run-2"), "r1", T0 + lease * 2)
    assert not await store.save_batch_progress(replace(job, completed=3), "r2", T0 + lease * 2)  # not its lease
    assert await store.claim_batch_operation(NS, "a", "r2", T0 + lease * 3, T0 + lease * 4)  # r1's lapsed
    assert not await store.save_batch_progress(replace(job, completed=3), "r1", T0 + lease * 4)
    job = await store.get_batch_operation(NS, "a")
    assert (job.completed, job.cursor, job.owner) == (2, "run-2", "r2")

    # Stopped: the holder's next commit finds it so and writes nothing.
    assert await store.stop_batch_operation(NS, "a", "enough", "ops", T0 + lease * 4)
    assert not await store.stop_batch_operation(NS, "a", "again", "ops", T0 + lease * 5)
    assert not await store.save_batch_progress(replace(job, completed=3), "r2", T0 + lease * 5)
    job = await store.get_batch_operation(NS, "a")
    assert (job.state, job.completed, job.stop_reason, job.close_time) == ("stopped", 2, "enough", T0 + lease * 4)

    # The namespace is free again; the list is newest first and pages.
    await store.create_batch_operation(_job("b", T0 + timedelta(minutes=1)), max_running=1)
    assert [j.job_id for j in await store.list_batch_operations(NS, None, 10)] == ["b", "a"]
    first = (await store.list_batch_operations(NS, None, 1))[0]
    assert [j.job_id for j in await store.list_batch_operations(NS, (first.start_time, first.job_id), 10)] == ["a"]
    # Jobs that ended before a cutoff are forgotten; running ones never.
    assert await store.delete_batch_operations_closed_before(NS, T0 + lease * 10) == 1
    assert [j.job_id for j in await store.list_batch_operations(NS, None, 10)] == ["b"]


# -- what every backend keeps exactly -------------------------------------------------------------


async def test_ids_are_exact_case_and_trailing_spaces_count_up_to_1000_bytes(store, engine):
    """Ids differing only in case, in a trailing space or in accents are different ids (MySQL's text
    collations would take them for one), and an id of 1000 bytes of UTF-8 fits its keys."""
    ids = ["Order-1", "order-1", "order-1 ", "ordér-1", "é" * 500, "x" * 1000]
    runs = [Run(workflow_id) for workflow_id in ids]
    for r in runs:
        await store.commit(r.create_batch([r.task()]))
    for r in runs:
        current = await store.get_current(NS, r.workflow_id)
        assert current is not None and current.run_id == r.run_id, r.workflow_id
        record = await store.get_execution(NS, r.workflow_id, r.run_id)
        assert record is not None and record.workflow_id == r.workflow_id
    listed = await store.list_runs(NS, 100)
    assert sorted(w for w, _ in listed) == sorted(ids)


async def test_timestamps_keep_microseconds_and_payloads_pass_64_kib(store):
    """Times come back to the microsecond; states and events far larger than 64 KiB (MySQL's BLOB
    and TEXT) come back whole, as do JSON documents of that size."""
    r = Run("wf-big")
    timer = r.task("user_timer", fire_in=5.123457, blob="y" * 100_000)
    batch = r.create_batch(timers=[timer])
    state = bytes(range(256)) * 1200  # 300 KiB, every byte value
    batch.workflows[0].record.state = state
    big = HistoryEvent(event_id=r.state.next_event_id, event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    big.workflow_execution_signaled_event_attributes.signal_name = "s"
    big.workflow_execution_signaled_event_attributes.input.payloads.add(data=b"\x00\xfe" * 200_000)
    batch.workflows[0].events.append(big)
    await store.commit(batch)

    assert (await store.get_execution(NS, "wf-big", r.run_id)).state == state
    [got] = await store.read_events(r.run_id, big.event_id, big.event_id + 1)
    assert got.SerializeToString() == big.SerializeToString()
    stored = await store.get_timer_task(timer.task_id)
    assert stored.fire_at == timer.fire_at and stored.fire_at.microsecond == 123457
    assert stored.data["blob"] == "y" * 100_000
    visibility = await store.get_visibility(NS, r.run_id)
    assert visibility["start_time"] == T0


@pytest.mark.parametrize("engine", ["mysql"], indirect=True)
async def test_mysql_columns_are_binary_text_microsecond_times_and_double_floats(store, engine):
    """On MySQL and MariaDB every text column is UTF-8 in a binary column (exact comparisons, 1000-byte
    ids within the index key limit), every time has microseconds and every float 64 bits: what the
    types of odin.persistence.tables (Key, Str, Text, Blob, Double, UtcDateTime) give. A migration that
    used SQLAlchemy's plain String, Text, LargeBinary, Float or DateTime fails here."""

    def columns():
        with engine.engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT table_name, column_name, data_type, datetime_precision FROM information_schema.columns "
                    "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'"
                )
            ).all()

    rows = await engine.run(columns)
    assert len(rows) > 100
    allowed = {"varbinary", "longblob", "int", "bigint", "tinyint", "double", "datetime"}
    wrong = [(table, column, kind) for table, column, kind, precision in rows if kind not in allowed or (kind == "datetime" and precision != 6)]
    assert wrong == []


@pytest.mark.parametrize("engine", ["mysql"], indirect=True)
async def test_a_deadlock_victim_runs_again(store, engine):
    """Two transactions that lock two shard rows in opposite orders deadlock; InnoDB rolls one back
    (error 1213) and the store runs that one again, so both land."""
    import threading

    await store.init_cluster(4)
    both_hold_one = threading.Barrier(2)
    attempts: list[int] = []
    h = t.history_shards.c

    def bump_both(first: int, second: int):
        def run(conn: sa.Connection) -> None:
            attempts.append(first)
            conn.execute(t.history_shards.update().where(h.shard_id == first).values(range_id=h.range_id + 1))
            if len(attempts) <= 2:
                both_hold_one.wait(timeout=10)
            conn.execute(t.history_shards.update().where(h.shard_id == second).values(range_id=h.range_id + 1))

        return run

    await asyncio.gather(store._write(bump_both(0, 1)), store._write(bump_both(1, 0)))
    assert len(attempts) == 3  # one of them twice
    assert {k: v for k, v in (await store.shard_range_ids()).items() if k in (0, 1)} == {0: 2, 1: 2}


def _end_other_connections(url: str) -> int:
    """End every connection to the database but this one (as a restart or a failover would)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            ids = conn.execute(
                sa.text("SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
            ).scalars().all()
            for connection_id in ids:
                conn.execute(sa.text(f"KILL {int(connection_id)}"))
            return len(ids)
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine", ["postgres", "mysql"], indirect=True)
async def test_calls_carry_on_after_the_server_ended_their_connections(store, engine):
    """Pooled connections the server ended (a restart, a failover, a KILL) are replaced: the next
    reads and commits succeed without the caller seeing the loss."""
    r = Run("wf-reconnect")
    await store.commit(r.create_batch())
    await asyncio.gather(*(store.get_current(NS, r.workflow_id) for _ in range(6)))  # several pooled connections
    assert await asyncio.to_thread(_end_other_connections, engine.engine.url.render_as_string(hide_password=False)) >= 1
    assert (await store.get_current(NS, r.workflow_id)).run_id == r.run_id
    r.advance(lambda t: t.signal("x", None, "c", None, ""))
    await store.commit(Batch(workflows=[r.update_write(1)]))
    assert (await store.get_execution(NS, r.workflow_id, r.run_id)).db_version == 2


# -- standalone activities ----------------------------------------------------------------------


def _activity_row(activity_id: str, run_id: str, version: int, status: int = 1, at: datetime = T0, closed: datetime | None = None):
    from odin.persistence.store import ActivityExecutionRecord

    return ActivityExecutionRecord(
        namespace_id=NS, activity_id=activity_id, run_id=run_id, shard_id=2, db_version=version, request_id=f"req-{run_id}",
        status=status, activity_type="charge", task_queue="tq", start_time=at, close_time=closed, search_attributes=None,
        state=b"{}",
    )


def _outbox(run_id: str, activity_id: str, timer: bool) -> OutboxTask:
    kind = "standalone_activity_timeout" if timer else "standalone_activity_task"
    return OutboxTask(uuid.uuid4().hex, 2, NS, activity_id, run_id, kind, {}, T0, T0 if timer else None)


async def test_activity_executions_rows_cas_outbox_and_retention(store):
    from odin.persistence.store import ActivityWrite

    run1, run2 = str(uuid.uuid4()), str(uuid.uuid4())
    # A start: the row and its outbox rows in one transaction; a second insert of the id conflicts.
    await store.commit(Batch(
        activities=[ActivityWrite(_activity_row("a", run1, 1), None)],
        transfer_tasks=[_outbox(run1, "a", False)], timer_tasks=[_outbox(run1, "a", True)],
    ))
    with pytest.raises(ConcurrentUpdate):
        await store.commit(Batch(activities=[ActivityWrite(_activity_row("a", run2, 1), None)]))
    # A change under a stale version is refused and writes nothing.
    with pytest.raises(ConcurrentUpdate):
        await store.commit(Batch(activities=[ActivityWrite(_activity_row("a", run1, 3, status=2), 2)], timer_tasks=[_outbox(run1, "a", True)]))
    assert await count(store.db, t.timer_tasks, t.timer_tasks.c.run_id == run1) == 1
    # The close takes the run's outbox rows with it.
    await store.commit(Batch(activities=[ActivityWrite(_activity_row("a", run1, 2, status=2, closed=T0), 1, closed_run_id=run1)]))
    assert await count(store.db, t.timer_tasks, t.timer_tasks.c.run_id == run1) == 0
    assert await count(store.db, t.transfer_tasks, t.transfer_tasks.c.run_id == run1) == 0
    # A new run of the id replaces the row.
    later = T0 + timedelta(minutes=1)
    await store.commit(Batch(activities=[ActivityWrite(_activity_row("a", run2, 3, at=later), 2)], timer_tasks=[_outbox(run2, "a", True)]))
    await store.commit(Batch(activities=[ActivityWrite(_activity_row("b", str(uuid.uuid4()), 1, at=T0, status=3, closed=T0), None)]))
    row = await store.get_activity_execution(NS, "a")
    assert (row.run_id, row.db_version, row.start_time) == (run2, 3, later)
    assert [r.activity_id for r in await store.list_activity_executions(NS, 0, 10)] == ["a", "b"]  # newest first
    assert [r.activity_id for r in await store.list_activity_executions(NS, 1, 10)] == ["b"]
    # Retention forgets closed ones only; deleting a run that is not the id's row does nothing.
    assert await store.delete_activity_executions_closed_before(NS, T0 + timedelta(days=1)) == 1
    assert not await store.delete_activity_execution(NS, "a", run1)
    assert await store.delete_activity_execution(NS, "a", run2)
    assert await store.get_activity_execution(NS, "a") is None
    assert await count(store.db, t.timer_tasks, t.timer_tasks.c.run_id == run2) == 0


async def test_worker_deployment_rows_change_by_compare_and_swap(store):
    from odin.persistence.store import DeploymentRecord

    ns = f"ns-{uuid.uuid4().hex[:8]}"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = DeploymentRecord(ns, "shop", '{"a":1}', 0, now, now)
    await store.save_worker_deployment(first)
    # A second creation of the same name loses, as a racing first poll would.
    with pytest.raises(ConcurrentUpdate):
        await store.save_worker_deployment(DeploymentRecord(ns, "shop", '{"b":2}', 0, now, now))
    stored = await store.get_worker_deployment(ns, "shop")
    assert (stored.data, stored.db_version) == ('{"a":1}', 1)
    await store.save_worker_deployment(replace(stored, data='{"a":2}'))
    with pytest.raises(ConcurrentUpdate):  # written from a stale read
        await store.save_worker_deployment(replace(stored, data='{"a":3}'))
    await store.save_worker_deployment(DeploymentRecord(ns, "api", "{}", 0, now, now))
    assert [(r.name, r.data, r.db_version) for r in await store.list_worker_deployments(ns)] == [
        ("api", "{}", 1), ("shop", '{"a":2}', 2),
    ]
    with pytest.raises(ConcurrentUpdate):
        await store.delete_worker_deployment(ns, "shop", 1)
    await store.delete_worker_deployment(ns, "shop", 2)
    assert await store.get_worker_deployment(ns, "shop") is None


async def test_a_commit_on_a_dropped_postgres_connection_is_retried_on_a_fresh_one():
    """PostgreSQL writes run straight on the psycopg connection: when the server has dropped the
    pooled connections (a restart, a terminated backend), the commit is retried once on a fresh
    one and lands exactly once; the retry of a commit that had landed meets the CAS."""
    import psycopg

    from tests.support.services import POSTGRES_ADMIN_URL

    with throwaway_postgres_database() as url:
        db = open_database(url)
        try:
            await migrate.upgrade(db)
            store = SqlExecutionStore(db)
            run = Run("wf-dropped")
            await store.commit(run.create_batch([run.task()]))
            dbname = db.engine.url.database
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                dropped = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (dbname,)
                ).fetchone()[0]
            assert dropped > 0
            run.advance(lambda t: t.signal("one", None, "client", None, ""))
            await store.commit(Batch(workflows=[run.update_write(1)], delete_transfer_ids=[]))
            record = await store.get_execution(NS, "wf-dropped", run.run_id)
            assert record.db_version == 2 and record.next_event_id == run.state.next_event_id
            events = await store.read_events(run.run_id, 1, record.next_event_id)
            assert [e.event_id for e in events] == list(range(1, record.next_event_id))
            with pytest.raises(ConcurrentUpdate):  # the same change again: the CAS refuses it
                await store.commit(Batch(workflows=[run.update_write(1)]))
        finally:
            await db.dispose()
