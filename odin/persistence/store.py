"""The SQL ``ExecutionStore``: one implementation for PostgreSQL (psycopg 3), MySQL 8 and MariaDB
(PyMySQL) and SQLite.

Every workflow update is one transaction (docs/architecture.md#inv-one-transaction): new history events, the mutable
state row guarded by a compare-and-swap on ``db_version``, the current-run pointer, outbox rows
and the visibility record.

Each store call runs as one function on a worker thread (``Database.run``): a whole transaction
costs one hand-off from the event loop instead of one per statement, and SQLite gets a single
thread, which is also its single writer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.history.v1 import HistoryEvent

from odin import metrics, tracing
from odin.errors import AlreadyExists, ConcurrentUpdate, ResourceExhausted, ScheduleConflict, ShardOwnershipLost
from odin.persistence import tables as t

R = TypeVar("R")
# Threads (and pooled connections) of a database server's store: PostgreSQL, MySQL, MariaDB.
POSTGRES_THREADS = 16
# Group commits in flight at once on a database server.
MAX_GROUPS = 4
# Every MySQL or MariaDB session Odin opens: errors instead of silently cut or zeroed values, UTC for
# the few functions that use the session's zone. (Isolation: READ COMMITTED, set by SQLAlchemy.)
MYSQL_INIT = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"
# InnoDB errors after which the whole transaction was rolled back and may simply run again:
# deadlock found (1213), lock wait timeout (1205; the store rolls the rest back itself).
_MYSQL_RETRYABLE = (1213, 1205)
_MAX_LOCK_RETRIES = 5

# Hot statements are built once: SQLAlchemy then reuses their compiled form and cache key.
_we = t.workflow_executions.c
_GET_EXECUTION = sa.select(t.workflow_executions).where(
    _we.namespace_id == sa.bindparam("ns"), _we.workflow_id == sa.bindparam("wf"), _we.run_id == sa.bindparam("run")
)
_CAS_EXECUTION = (
    t.workflow_executions.update()
    .where(
        _we.namespace_id == sa.bindparam("ns"),
        _we.workflow_id == sa.bindparam("wf"),
        _we.run_id == sa.bindparam("run"),
        _we.db_version == sa.bindparam("expected"),
    )
    .values(
        status=sa.bindparam("status"),
        next_event_id=sa.bindparam("next_event_id"),
        db_version=sa.bindparam("db_version"),
        state=sa.bindparam("state"),
    )
)
_ce = t.current_executions.c
_GET_CURRENT = sa.select(t.current_executions).where(_ce.namespace_id == sa.bindparam("ns"), _ce.workflow_id == sa.bindparam("wf"))
_he = t.history_events.c
_READ_EVENTS = (
    sa.select(_he.data)
    .where(_he.run_id == sa.bindparam("run"), _he.event_id >= sa.bindparam("first"), _he.event_id < sa.bindparam("next"))
    .order_by(_he.event_id)
)
_INSERT_EVENTS = t.history_events.insert()
_INSERT_EXECUTION = t.workflow_executions.insert()
_vr = t.visibility_records.c
_VISIBILITY_COLUMNS = [c.name for c in t.visibility_records.columns if c.name not in ("namespace_id", "run_id")]
_INSERT_VISIBILITY = t.visibility_records.insert()
_UPDATE_VISIBILITY = (
    t.visibility_records.update()
    .where(_vr.namespace_id == sa.bindparam("key_ns"), _vr.run_id == sa.bindparam("key_run"))
    .values({name: sa.bindparam(f"v_{name}") for name in _VISIBILITY_COLUMNS})
)
_vsa = t.visibility_search_attributes.c
_INSERT_SEARCH_VALUES = t.visibility_search_attributes.insert()
_DELETE_SEARCH_VALUES = t.visibility_search_attributes.delete().where(
    _vsa.namespace_id == sa.bindparam("ns"), _vsa.run_id == sa.bindparam("run")
)
_INSERT_CURRENT = t.current_executions.insert()
_MOVE_CURRENT = (
    t.current_executions.update()
    .where(_ce.namespace_id == sa.bindparam("key_ns"), _ce.workflow_id == sa.bindparam("key_wf"), _ce.run_id == sa.bindparam("expected"))
    .values(
        run_id=sa.bindparam("v_run_id"),
        first_execution_run_id=sa.bindparam("v_first"),
        create_request_id=sa.bindparam("v_request"),
        status=sa.bindparam("v_status"),
    )
)
_DELETE_RUN_TRANSFERS = t.transfer_tasks.delete().where(t.transfer_tasks.c.run_id == sa.bindparam("run"))
_DELETE_RUN_TIMERS = t.timer_tasks.delete().where(t.timer_tasks.c.run_id == sa.bindparam("run"))
_INSERT_TRANSFER = t.transfer_tasks.insert()
_INSERT_TIMER = t.timer_tasks.insert()
_DELETE_TRANSFER = t.transfer_tasks.delete().where(t.transfer_tasks.c.task_id == sa.bindparam("id"))
# Timer rows that belong to a namespace rather than to a run (deleted with the namespace).
_NAMESPACE_TIMER_KINDS = ("schedule", "standalone_activity_timeout", "standalone_activity_retry")
_DELETE_TIMER = t.timer_tasks.delete().where(t.timer_tasks.c.task_id == sa.bindparam("id"))

# PostgreSQL: the statements of every workflow change, as plain SQL run on the psycopg connection
# under SQLAlchemy's (the same transaction). SQLAlchemy's own work per statement (execution
# context, parameter processing, result set-up) cost more CPU than the statement's round trip.
_PG_CAS_EXECUTION = (
    "UPDATE workflow_executions SET status = %s, next_event_id = %s, db_version = %s, state = %s"
    " WHERE namespace_id = %s AND workflow_id = %s AND run_id = %s AND db_version = %s"
)
_PG_EXECUTION_COLUMNS = ("namespace_id", "workflow_id", "run_id", "shard_id", "status", "next_event_id", "db_version", "state")
_PG_EVENT_COLUMNS = ("run_id", "event_id", "namespace_id", "event_type", "data")
_PG_OUTBOX_COLUMNS = ("task_id", "shard_id", "namespace_id", "workflow_id", "run_id", "kind", "data")
_PG_DELETE_TRANSFERS = "DELETE FROM transfer_tasks WHERE task_id = ANY(%s)"
_PG_DELETE_TIMERS = "DELETE FROM timer_tasks WHERE task_id = ANY(%s)"
_PG_DELETE_RUN_TRANSFERS = "DELETE FROM transfer_tasks WHERE run_id = %s"
_PG_DELETE_RUN_TIMERS = "DELETE FROM timer_tasks WHERE run_id = %s"
_PG_CURRENT_COLUMNS = ("namespace_id", "workflow_id", "run_id", "first_execution_run_id", "create_request_id", "status")
_PG_MOVE_CURRENT = (
    "UPDATE current_executions SET run_id = %s, first_execution_run_id = %s, create_request_id = %s, status = %s"
    " WHERE namespace_id = %s AND workflow_id = %s AND run_id = %s"
)
_PG_GET_CURRENT = f"SELECT {', '.join(_PG_CURRENT_COLUMNS)} FROM current_executions WHERE namespace_id = %s AND workflow_id = %s"
_PG_GET_EXECUTION = (
    f"SELECT {', '.join(_PG_EXECUTION_COLUMNS)} FROM workflow_executions"
    " WHERE namespace_id = %s AND workflow_id = %s AND run_id = %s"
)
_PG_UPDATE_VISIBILITY = (
    "UPDATE visibility_records SET " + ", ".join(f"{name} = %s" for name in _VISIBILITY_COLUMNS)
    + " WHERE namespace_id = %s AND run_id = %s"
)
_VISIBILITY_TIMES = frozenset(c.name for c in t.visibility_records.columns if isinstance(c.type, t.UtcDateTime))
_PG_UPSERT_VISIBILITY = (
    f"INSERT INTO visibility_records (namespace_id, run_id, {', '.join(_VISIBILITY_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * (len(_VISIBILITY_COLUMNS) + 2))})"
    " ON CONFLICT (namespace_id, run_id) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _VISIBILITY_COLUMNS)
)
_PG_DELETE_SEARCH_VALUES = "DELETE FROM visibility_search_attributes WHERE namespace_id = %s AND run_id = %s"


@functools.lru_cache(maxsize=256)
def _pg_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    """A multi-row INSERT of ``rows`` rows (one statement, one round trip)."""
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * rows)


class _PgChange:
    """The statements of one batch on PostgreSQL, sent as one: each a data-modifying CTE of a
    single statement (they all see the snapshot it started from). ``check`` statements (compare-
    and-set updates) must change exactly one row: otherwise the statement fails (a cast of
    ``odin-conflict:<row counts>`` to int, evaluated only then), so nothing of it lands, even in
    autocommit, and the batch raises ``ConcurrentUpdate``."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []
        self.checks: list[tuple[str, str]] = []

    def add(self, sql: str, params: Any, check: str = "") -> None:
        name = f"s{len(self.parts)}"
        self.parts.append(f"{name} AS ({sql}{' RETURNING 1' if check else ''})")
        self.params += params
        if check:
            self.checks.append((name, check))

    def sql(self) -> str:
        if not self.checks:
            return f"WITH {', '.join(self.parts)} SELECT 1"
        counts = [f"(SELECT count(*) FROM {name})" for name, _ in self.checks]
        held = " AND ".join(f"{c} = 1" for c in counts)
        failed = f"CAST('{_CONFLICT}' || " + " || ',' || ".join(f"{c}::text" for c in counts) + " AS int)"
        return f"WITH {', '.join(self.parts)} SELECT CASE WHEN {held} THEN 1 ELSE {failed} END"

    def conflict(self, exc: psycopg.Error) -> ConcurrentUpdate | None:
        """The conflict a failed statement reports (None if it failed for another reason)."""
        found = re.search(_CONFLICT + r"([0-9,]+)", str(exc))
        if found is None:
            return None
        counts = [int(n) for n in found.group(1).split(",")]
        failing = [message for (_, message), n in zip(self.checks, counts) if n != 1]
        return ConcurrentUpdate(failing[0] if failing else "changed concurrently")

    def run(self, conn: sa.Connection) -> None:
        _pg_run(conn, self.sql(), self.params, lambda cur: None, self.conflict)


_CONFLICT = "odin-conflict:"


class _LoopPostgres:
    """Connections of the event loop to PostgreSQL, in autocommit, for changes that are one
    statement (``_PgChange``): such a change commits in one round trip (no BEGIN, no COMMIT),
    with no hand-off to a database thread. A connection found dead is replaced and the statement
    sent once more (if the lost one had committed, the retry meets its compare-and-set and fails
    as a conflict, as ``_retry_dead_connection`` explains)."""

    def __init__(self, url: str, size: int):
        self._url = url
        self._size = size
        self._idle: list[psycopg.AsyncConnection] = []
        self._slots: asyncio.Semaphore | None = None

    async def run(self, change: _PgChange) -> None:
        sql, params = change.sql(), change.params
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            for attempt in (1, 2):
                pooled = bool(self._idle)
                conn = self._idle.pop() if pooled else await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                try:
                    await conn.execute(sql, params)
                except psycopg.IntegrityError as exc:  # the statement failed whole; the connection is fine
                    self._idle.append(conn)
                    raise ConcurrentUpdate(str(exc)) from exc
                except psycopg.Error as exc:
                    conflict = change.conflict(exc)
                    if conflict is not None:
                        self._idle.append(conn)
                        raise conflict from exc
                    # Raised as SQLAlchemy raises it on the threads' path (odin.errors maps it).
                    broken = conn.broken
                    if broken:
                        await _close_quietly(conn)
                        if pooled and attempt == 1:
                            continue
                    else:
                        self._idle.append(conn)
                    raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=broken) from exc
                except BaseException:  # cancelled or failed mid-statement: its state is unknown
                    await _close_quietly(conn)
                    raise
                self._idle.append(conn)
                return
        raise AssertionError("unreachable")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close_quietly(conn)


async def _close_quietly(conn: psycopg.AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception:  # another loop's, or already gone: drop the socket
        conn.pgconn.finish()


def _disjoint(batches: list[Batch]) -> bool:
    """Whether no two batches touch the same run or workflow id: only then may they share one
    statement (its parts all see the snapshot it started from, so a second change of the same row
    would not see the first)."""
    seen: set[tuple[str, str]] = set()
    for batch in batches:
        keys = {(w.record.namespace_id, w.record.workflow_id) for w in batch.workflows}
        keys |= {(c.record.namespace_id, c.record.workflow_id) for c in batch.current}
        keys |= {("run", x.run_id) for x in (*batch.transfer_tasks, *batch.timer_tasks)}
        keys |= {("run", w.record.run_id) for w in batch.workflows}
        if keys & seen:
            return False
        seen |= keys
    return True


def _pg_execute(conn: sa.Connection, sql: str, params: Any) -> int:
    """Run ``sql`` on the psycopg connection under ``conn`` (inside its transaction); returns the
    row count. A duplicate key is a ``ConcurrentUpdate``, as through SQLAlchemy; a dead connection
    is invalidated and raised as SQLAlchemy would, so ``_retry_dead_connection`` retries."""
    return _pg_run(conn, sql, params, lambda cur: cur.rowcount)


def _pg_fetchone(conn: sa.Connection, sql: str, params: Any) -> tuple | None:
    """``_pg_execute`` for a query: its first row."""
    return _pg_run(conn, sql, params, lambda cur: cur.fetchone())


def _pg_run(
    conn: sa.Connection,
    sql: str,
    params: Any,
    outcome: Callable[[psycopg.Cursor], R],
    conflict: Callable[[psycopg.Error], ConcurrentUpdate | None] = lambda exc: None,
) -> R:
    raw = conn.connection.driver_connection
    assert raw is not None  # a checked-out connection
    try:
        with raw.cursor() as cur:
            cur.execute(sql, params)
            return outcome(cur)
    except psycopg.IntegrityError as exc:
        raise ConcurrentUpdate(str(exc)) from exc
    except psycopg.Error as exc:
        lost = conflict(exc)
        if lost is not None:
            raise lost from exc
        # What SQLAlchemy does with a driver error: a lost connection invalidates the pool (the
        # server most likely ended the others too: each is replaced when next checked out) and
        # itself, and the error is raised as SQLAlchemy's.
        invalidated = conn.dialect.is_disconnect(cast(Any, exc), raw, None)
        if invalidated:
            conn.engine.pool._invalidate(conn.connection, exc)
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=invalidated) from exc


def _one_statement(batch: Batch) -> bool:
    """Whether PostgreSQL takes the batch as one statement: runs, their pointers and outboxes (not
    fenced, no schedule or standalone activity, no typed search-attribute values to rewrite)."""
    return batch.fence is None and not batch.schedules and not batch.activities and not any(
        w.search_values for w in batch.workflows
    )


def _naive_utc(value: datetime) -> datetime:
    """What ``UtcDateTime`` stores: naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _pg_visibility_values(visibility: dict) -> list:
    return [
        _naive_utc(visibility[name]) if name in _VISIBILITY_TIMES and visibility[name] is not None else visibility[name]
        for name in _VISIBILITY_COLUMNS
    ]


def _pg_write_visibility(conn: sa.Connection, r: ExecutionRecord, visibility: dict, new: bool) -> bool:
    """Update (unless ``new``) or else insert a run's visibility row on PostgreSQL; returns
    whether the row existed."""
    values = _pg_visibility_values(visibility)
    if not new and _pg_execute(conn, _PG_UPDATE_VISIBILITY, (*values, r.namespace_id, r.run_id)) != 0:
        return True
    sql = _pg_insert("visibility_records", ("namespace_id", "run_id", *_VISIBILITY_COLUMNS), 1)
    _pg_execute(conn, sql, (r.namespace_id, r.run_id, *values))
    return False


def _pg_outbox_rows(tasks: list[OutboxTask], timers: bool) -> list:
    params: list = []
    for x in tasks:
        params += (x.task_id, x.shard_id, x.namespace_id, x.workflow_id, x.run_id, str(x.kind), json.dumps(x.data))
        params.append(_naive_utc(x.fire_at if timers else x.created_at))  # type: ignore[arg-type]
    return params


@dataclass
class NamespaceRecord:
    id: str
    name: str
    state: int
    data: dict
    created_at: datetime


@dataclass
class ExecutionRecord:
    namespace_id: str
    workflow_id: str
    run_id: str
    shard_id: int
    status: int
    next_event_id: int
    db_version: int
    state: bytes


@dataclass
class CurrentExecution:
    namespace_id: str
    workflow_id: str
    run_id: str
    first_execution_run_id: str
    create_request_id: str
    status: int


@dataclass
class OutboxTask:
    """A transfer task or a timer task (``fire_at`` set), written with its workflow update."""

    task_id: str
    shard_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    kind: str
    data: dict
    created_at: datetime
    fire_at: datetime | None = None


@dataclass
class WorkflowWrite:
    record: ExecutionRecord
    # None creates the row; otherwise the row must still carry this db_version.
    expected_db_version: int | None
    events: list[HistoryEvent] = field(default_factory=list)
    visibility: dict | None = None
    # Typed search-attribute values, rewritten whenever ``visibility`` is written.
    search_values: list = field(default_factory=list)
    # A closed run's outstanding outbox tasks are deleted with the write that closes it.
    closed: bool = False
    # Whether typed search-attribute values may be stored for the run already (they are then
    # replaced whenever ``visibility`` is written); False skips that delete.
    had_search_values: bool = True


@dataclass
class CurrentWrite:
    record: CurrentExecution
    # None inserts (the workflow id must be free); otherwise the pointer must still name this run.
    expected_run_id: str | None


@dataclass
class ScheduleRecord:
    namespace_id: str
    schedule_id: str
    shard_id: int
    conflict_token: int
    db_version: int
    request_id: str
    schedule: bytes  # temporal.api.schedule.v1.Schedule
    info: str  # JSON of odin.history.schedules.ScheduleRuntime
    memo: bytes | None
    search_attributes: bytes | None
    paused: bool
    created_at: datetime
    updated_at: datetime
    next_action_at: datetime | None


@dataclass
class ScheduleWrite:
    record: ScheduleRecord
    # None inserts (the id must be free); otherwise the row must still carry this db_version.
    expected_db_version: int | None
    # Remove the row (and every timer row of the schedule) instead of writing it.
    delete: bool = False


@dataclass
class ActivityExecutionRecord:
    """One standalone activity's row (``activity_executions``): the id's current run."""

    namespace_id: str
    activity_id: str
    run_id: str
    shard_id: int
    db_version: int
    request_id: str
    status: int  # temporal.api.enums.v1.ActivityExecutionStatus
    activity_type: str
    task_queue: str
    start_time: datetime
    close_time: datetime | None
    search_attributes: bytes | None  # temporal.api.common.v1.SearchAttributes
    state: bytes  # JSON of odin.history.standalone.StandaloneActivity


@dataclass
class ActivityWrite:
    record: ActivityExecutionRecord
    # None inserts (the id must be free); otherwise the row must still carry this db_version (a
    # new run of the id replaces the row of the closed one under the same guard).
    expected_db_version: int | None
    # The run closed (or was replaced): its outstanding outbox rows go with this write.
    closed_run_id: str = ""


@dataclass
class BatchOperationRecord:
    """One batch operation's row (``batch_operations``)."""

    namespace_id: str
    job_id: str
    run_id: str
    request_id: str
    operation_type: int  # temporal.api.enums.v1.BatchOperationType
    request: bytes  # temporal.api.workflowservice.v1.StartBatchOperationRequest
    identity: str
    reason: str
    state: str  # running | completed | failed | stopped
    total: int
    completed: int
    failed: int
    cursor: str
    start_time: datetime
    owner: str | None = None
    lease_expires_at: datetime | None = None
    close_time: datetime | None = None
    stop_reason: str | None = None
    stop_identity: str | None = None


@dataclass
class DeploymentRecord:
    """One worker deployment's row (``worker_deployments``): ``data`` is the JSON document of
    ``odin.history.deployments.Deployment``; ``db_version`` the compare-and-swap counter (0: not
    stored yet)."""

    namespace_id: str
    name: str
    data: str
    db_version: int
    created_at: datetime
    updated_at: datetime


@dataclass
class Batch:
    workflows: list[WorkflowWrite] = field(default_factory=list)
    current: list[CurrentWrite] = field(default_factory=list)
    transfer_tasks: list[OutboxTask] = field(default_factory=list)
    timer_tasks: list[OutboxTask] = field(default_factory=list)
    delete_transfer_ids: list[str] = field(default_factory=list)
    delete_timer_ids: list[str] = field(default_factory=list)
    schedules: list[ScheduleWrite] = field(default_factory=list)
    activities: list[ActivityWrite] = field(default_factory=list)
    # (shard_id, range_id): written by a shard's queue processor, valid only while that shard's
    # range_id is unchanged (no newer lease holder).
    fence: tuple[int, int] | None = None


class BatchOperationExists(AlreadyExists):
    """A batch operation with this job id exists in the namespace (``existing``)."""

    def __init__(self, existing: BatchOperationRecord):
        super().__init__(f"Batch operation {existing.job_id} already exists.")
        self.existing = existing


class ExecutionStore(Protocol):
    """What the history engine needs from durable storage."""

    async def init_cluster(self, num_shards: int) -> int: ...
    async def cluster_id(self) -> str: ...
    async def create_namespace(self, ns: NamespaceRecord) -> None: ...
    async def update_namespace(self, ns: NamespaceRecord) -> None: ...
    async def delete_namespace(self, namespace_id: str) -> None: ...
    async def list_runs(self, namespace_id: str, limit: int, running_only: bool = False) -> list[tuple[str, str]]: ...
    async def get_namespace(self, *, name: str | None = None, id: str | None = None) -> NamespaceRecord | None: ...
    async def list_namespaces(self) -> list[NamespaceRecord]: ...
    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentExecution | None: ...
    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRecord | None: ...
    async def commit(self, batch: Batch) -> None: ...
    async def read_events(self, run_id: str, first_event_id: int, next_event_id: int, limit: int | None = None) -> list[HistoryEvent]: ...
    async def delete_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> None: ...
    async def get_visibility(self, namespace_id: str, run_id: str) -> dict | None: ...
    async def list_visibility(self, namespace_id: str, where: Any, order_by: list, limit: int, offset: int) -> list[dict]: ...
    async def count_visibility(self, namespace_id: str, where: Any, group_by_status: bool) -> tuple[int, list[tuple[int, int]]]: ...
    async def get_search_attributes(self, namespace_id: str) -> dict[str, int]: ...
    async def add_search_attributes(self, namespace_id: str, attributes: dict[str, int]) -> None: ...
    async def remove_search_attributes(self, namespace_id: str, names: list[str]) -> None: ...
    @property
    def dialect_name(self) -> str:
        """The SQL dialect behind the store ("postgresql", "mysql", "sqlite")."""
        ...
    async def list_transfer_tasks(
        self,
        limit: int,
        shard_ids: list[int] | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[OutboxTask]: ...
    async def closed_runs_before(self, namespace_id: str, closed_before: datetime, limit: int) -> list[tuple[str, str]]: ...
    async def delete_transfer_task(self, task_id: str) -> None: ...
    async def due_timer_tasks(self, now: datetime, limit: int, shard_ids: list[int] | None = None) -> list[OutboxTask]: ...
    async def outbox_stats(self, now: datetime, shard_ids: list[int] | None) -> dict[str, tuple[int, float]]: ...
    async def get_timer_task(self, task_id: str) -> OutboxTask | None: ...
    async def next_timer_time(self) -> datetime | None: ...
    async def delete_timer_task(self, task_id: str, fence: tuple[int, int] | None = None) -> None: ...
    async def acquire_shards(self, shard_ids: list[int], owner: str, expires_at: datetime | None) -> dict[int, int]: ...
    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None: ...
    async def get_activity_execution(self, namespace_id: str, activity_id: str) -> ActivityExecutionRecord | None: ...
    async def list_activity_executions(self, namespace_id: str, offset: int, limit: int) -> list[ActivityExecutionRecord]: ...
    async def delete_activity_execution(self, namespace_id: str, activity_id: str, run_id: str) -> bool: ...
    async def list_schedules(self, namespace_id: str, after: str, limit: int) -> list[ScheduleRecord]: ...
    async def release_shards(self, shard_ids: list[int], owner: str) -> None: ...
    async def create_batch_operation(self, record: BatchOperationRecord, max_running: int) -> None: ...
    async def get_batch_operation(self, namespace_id: str, job_id: str) -> BatchOperationRecord | None: ...
    async def list_batch_operations(
        self, namespace_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[BatchOperationRecord]: ...
    async def running_batch_operations(self, now: datetime, limit: int) -> list[BatchOperationRecord]: ...
    async def claim_batch_operation(self, namespace_id: str, job_id: str, owner: str, now: datetime, until: datetime) -> bool: ...
    async def save_batch_progress(self, record: BatchOperationRecord, owner: str, until: datetime) -> bool: ...
    async def stop_batch_operation(
        self, namespace_id: str, job_id: str, reason: str, identity: str, now: datetime
    ) -> bool: ...
    async def visibility_runs_after(
        self, namespace_id: str, where: Any, after_run_id: str, limit: int
    ) -> list[tuple[str, str]]: ...
    async def delete_batch_operations_closed_before(self, namespace_id: str, closed_before: datetime) -> int: ...
    async def delete_activity_executions_closed_before(self, namespace_id: str, closed_before: datetime) -> int: ...
    async def get_worker_deployment(self, namespace_id: str, name: str) -> DeploymentRecord | None: ...
    async def list_worker_deployments(self, namespace_id: str) -> list[DeploymentRecord]: ...
    async def save_worker_deployment(self, record: DeploymentRecord) -> None: ...
    async def delete_worker_deployment(self, namespace_id: str, name: str, db_version: int) -> None: ...


class Database:
    """A SQLAlchemy engine plus the threads that run its calls."""

    def __init__(self, url: str):
        if url.startswith("sqlite"):
            kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
            if ":memory:" in url:
                kwargs["poolclass"] = StaticPool
            self.engine = sa.create_engine(url, **kwargs)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            threads = 1
        else:
            kwargs = {}
            if url.startswith(("mysql", "mariadb")):
                kwargs = {
                    # InnoDB's default REPEATABLE READ takes gap locks that make concurrent group
                    # commits deadlock far more often; every guard Odin relies on (the CAS update,
                    # the fence's shared lock, unique keys) reads the newest committed row anyway.
                    "isolation_level": "READ COMMITTED",
                    # The server closes connections idle for wait_timeout (8 h by default).
                    "pool_recycle": 3600,
                    # The server's max_allowed_packet is the limit that counts (docs/operations.md#mysql).
                    "connect_args": {"charset": "utf8mb4", "init_command": MYSQL_INIT, "max_allowed_packet": 1 << 30},
                }
            # No pre-ping (a round trip per call): a connection found dead is retried once instead.
            self.engine = sa.create_engine(url, pool_size=POSTGRES_THREADS, max_overflow=4, **kwargs)
            # Rows inserted together (a transition's events, outbox rows) go as one multi-row
            # INSERT instead of one statement per row.
            self.engine.dialect.use_insertmanyvalues_wo_returning = True
            threads = POSTGRES_THREADS
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_mysql = self.engine.dialect.name in t.MYSQL_DIALECTS
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # Reads need no transaction. psycopg switches a connection to autocommit without a round
        # trip; PyMySQL's switch is a statement each way, so MySQL reads get a pool of their own
        # whose connections stay in autocommit (nothing to roll back when one is returned).
        self.reader = self.engine
        if self.is_mysql:
            reader_kwargs = {**kwargs, "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
            self.reader = sa.create_engine(url, pool_size=POSTGRES_THREADS, max_overflow=4, **reader_kwargs)
        elif not self.is_sqlite:
            self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        tracing.instrument_engine(self.engine)
        if self.is_mysql:
            tracing.instrument_engine(self.reader)
        metrics.watch_pool("sql", self.engine.pool)
        if self.is_mysql:
            metrics.watch_pool("sql", self.reader.pool)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="odin-sql")
        # Commits that are one statement go from the event loop (as many at once as group commits).
        self.loop_postgres: _LoopPostgres | None = None
        if self.is_postgres:
            libpq = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            self.loop_postgres = _LoopPostgres(libpq, MAX_GROUPS)

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        if tracing.enabled:  # a span per store call, its statements below it
            fn = tracing.sql_group(fn)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def dispose(self) -> None:
        if self.loop_postgres is not None:
            await self.loop_postgres.close()
        await self.run(self.engine.dispose)
        if self.is_mysql:
            await self.run(self.reader.dispose)
        self._executor.shutdown(wait=False)


def _retry_dead_connection(call: Callable[[], R]) -> R:
    """Run ``call``; if it failed because its pooled connection had died (a database restart, a
    terminated backend), run it once more on a fresh one. A transaction cut off before COMMIT
    wrote nothing; one cut off during COMMIT may have landed, and then its retry meets the
    compare-and-swap or a unique key and fails as a conflict instead of writing twice.

    A transaction InnoDB chose as a deadlock's victim (or whose lock wait timed out) wrote nothing
    either, and runs again, a few times at most."""
    lock_retries = 0
    while True:
        try:
            return call()
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                break
            if lock_retries < _MAX_LOCK_RETRIES and _mysql_error_code(exc) in _MYSQL_RETRYABLE:
                lock_retries += 1
                continue
            raise
    metrics.persistence_retries.get("dead_connection").inc()
    return call()


def _mysql_error_code(exc: sa.exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_COMMIT_METRICS = metrics.persistence_call("commit")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash (SIGKILL); only power loss can drop the tail.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def open_database(url: str) -> Database:
    return Database(url)


class SqlExecutionStore:
    def __init__(self, db: Database):
        self.db = db
        self.engine = db.engine
        self._reader = db.reader
        self.is_sqlite = db.is_sqlite
        self.is_mysql = db.is_mysql
        self.is_postgres = db.is_postgres
        # Group commits: batches waiting for a transaction, and how many group transactions may
        # run at once (SQLite has one writer; a database server overlaps a few so none waits on another).
        self._pending: list[tuple[Batch, asyncio.Future]] = []
        self._in_flight = 0
        self._max_groups = 1 if db.is_sqlite else MAX_GROUPS
        self._group_loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        await self.db.dispose()

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one())

    async def database_time(self) -> datetime | None:
        """The database server's clock now (PostgreSQL's ``clock_timestamp()``, MySQL's
        ``UTC_TIMESTAMP(6)``), or None when the database has no server of its own (SQLite reads this
        process's clock)."""
        if self.is_sqlite:
            return None
        if self.is_mysql:
            # The statement's start, in UTC whatever the session's zone: naive, to the microsecond.
            value = await self._read(lambda conn: conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar_one())
            return value.replace(tzinfo=UTC)
        value = await self._read(lambda conn: conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one())
        return value.astimezone(UTC)

    async def _read(self, fn: Callable[[sa.Connection], R]) -> R:
        """Run ``fn`` on a connection in autocommit mode (a read needs no transaction to end)."""

        def call() -> R:
            with self._reader.connect() as conn:
                return fn(conn)

        # Counted under the store method that called (a frame lookup, no formatting).
        requests, errors, latency = metrics.persistence_call(sys._getframe(1).f_code.co_name)
        requests.inc()
        started = time.perf_counter()
        try:
            return await self.db.run(_retry_dead_connection, call)
        except Exception:
            errors.inc()
            raise
        finally:
            latency.observe(time.perf_counter() - started)

    async def _write(self, fn: Callable[[sa.Connection], R]) -> R:
        """Run ``fn`` in one transaction."""

        def call() -> R:
            with self.engine.begin() as conn:
                return fn(conn)

        requests, errors, latency = metrics.persistence_call(sys._getframe(1).f_code.co_name)
        requests.inc()
        started = time.perf_counter()
        try:
            return await self.db.run(_retry_dead_connection, call)
        except ConcurrentUpdate:
            raise  # a lost compare-and-swap: persistence_cas_conflicts, not an error of the store
        except Exception:
            errors.inc()
            raise
        finally:
            latency.observe(time.perf_counter() - started)

    # -- cluster and namespaces ------------------------------------------------------------

    async def init_cluster(self, num_shards: int) -> int:
        """Fix the shard count on first use; later calls return the stored count. Safe to race:
        processes starting together on a fresh database insert only what is absent, and every
        one of them then reads the values the first writer stored."""
        m = t.cluster_metadata
        insert = _insert_if_absent(self.engine.dialect.name)

        def run(conn: sa.Connection) -> int:
            conn.execute(insert(m).values(key="cluster_id", value=str(uuid.uuid4())))
            conn.execute(insert(m).values(key="num_shards", value=str(num_shards)))
            stored = int(conn.execute(sa.select(m.c.value).where(m.c.key == "num_shards")).scalar_one())
            conn.execute(insert(t.history_shards), [{"shard_id": i, "range_id": 0} for i in range(stored)])
            return stored

        return await self._write(run)

    async def cluster_id(self) -> str:
        m = t.cluster_metadata
        row = await self._read(lambda conn: conn.execute(sa.select(m.c.value).where(m.c.key == "cluster_id")).first())
        return row[0] if row else ""

    async def create_namespace(self, ns: NamespaceRecord) -> None:
        insert = t.namespaces.insert().values(
            id=ns.id, name=ns.name, state=ns.state, data=json.dumps(ns.data), created_at=ns.created_at
        )
        try:
            await self._write(lambda conn: conn.execute(insert))
        except IntegrityError as exc:
            raise AlreadyExists(f"Namespace {ns.name} already exists.") from exc

    async def update_namespace(self, ns: NamespaceRecord) -> None:
        update = (
            t.namespaces.update()
            .where(t.namespaces.c.id == ns.id)
            .values(name=ns.name, state=ns.state, data=json.dumps(ns.data))
        )
        try:
            await self._write(lambda conn: conn.execute(update))
        except IntegrityError as exc:
            raise AlreadyExists(f"Namespace {ns.name} already exists.") from exc

    async def delete_namespace(self, namespace_id: str) -> None:
        """Remove a namespace row, its search-attribute registry, its schedules, its batch
        operations and its standalone activities (its runs must be gone)."""

        def run(conn: sa.Connection) -> None:
            conn.execute(t.search_attributes.delete().where(t.search_attributes.c.namespace_id == namespace_id))
            conn.execute(t.batch_operations.delete().where(t.batch_operations.c.namespace_id == namespace_id))
            conn.execute(t.worker_deployments.delete().where(t.worker_deployments.c.namespace_id == namespace_id))
            conn.execute(t.schedules.delete().where(t.schedules.c.namespace_id == namespace_id))
            conn.execute(t.activity_executions.delete().where(t.activity_executions.c.namespace_id == namespace_id))
            x = t.timer_tasks.c
            conn.execute(t.timer_tasks.delete().where(x.namespace_id == namespace_id, x.kind.in_(_NAMESPACE_TIMER_KINDS)))
            y = t.transfer_tasks.c
            conn.execute(t.transfer_tasks.delete().where(y.namespace_id == namespace_id, y.kind == "standalone_activity_task"))
            conn.execute(t.namespaces.delete().where(t.namespaces.c.id == namespace_id))

        await self._write(run)

    async def list_runs(self, namespace_id: str, limit: int, running_only: bool = False) -> list[tuple[str, str]]:
        """(workflow_id, run_id) of a namespace's runs (only the running ones if asked)."""
        w = t.workflow_executions.c
        query = sa.select(w.workflow_id, w.run_id).where(w.namespace_id == namespace_id).limit(limit)
        if running_only:
            query = query.where(w.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [(r[0], r[1]) for r in rows]

    async def get_namespace(self, *, name: str | None = None, id: str | None = None) -> NamespaceRecord | None:
        cond = t.namespaces.c.name == name if name is not None else t.namespaces.c.id == id
        row = await self._read(lambda conn: conn.execute(sa.select(t.namespaces).where(cond)).first())
        return _namespace(row) if row else None

    async def list_namespaces(self) -> list[NamespaceRecord]:
        rows = await self._read(lambda conn: conn.execute(sa.select(t.namespaces).order_by(t.namespaces.c.name)).all())
        return [_namespace(r) for r in rows]

    # -- executions ------------------------------------------------------------------------

    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentExecution | None:
        if self.is_postgres:
            found = await self._read(lambda conn: _pg_fetchone(conn, _PG_GET_CURRENT, (namespace_id, workflow_id)))
            return CurrentExecution(*found) if found else None
        params = {"ns": namespace_id, "wf": workflow_id}
        row = await self._read(lambda conn: conn.execute(_GET_CURRENT, params).first())
        return CurrentExecution(**row._mapping) if row else None

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRecord | None:
        if self.is_postgres:
            key = (namespace_id, workflow_id, run_id)
            found = await self._read(lambda conn: _pg_fetchone(conn, _PG_GET_EXECUTION, key))
            return ExecutionRecord(*found) if found else None
        params = {"ns": namespace_id, "wf": workflow_id, "run": run_id}
        row = await self._read(lambda conn: conn.execute(_GET_EXECUTION, params).first())
        return ExecutionRecord(**row._mapping) if row else None

    async def commit(self, batch: Batch) -> None:
        """Apply a batch atomically; raise ``ConcurrentUpdate`` if any guard no longer holds.

        Batches committed at the same moment share one transaction (a group commit: one
        hand-off to the database thread and one COMMIT for all of them). Each caller returns only
        once the transaction holding its batch has committed. If any batch of a group fails, the
        group is rolled back and each batch is committed on its own, so one caller's conflict is
        never another's."""
        loop = asyncio.get_running_loop()
        if self._group_loop is None:
            self._group_loop = loop
        if loop is not self._group_loop:  # a store shared with another loop: no grouping there
            await self._commit_alone(batch)
            return
        done = loop.create_future()
        self._pending.append((batch, done))
        if self._in_flight < self._max_groups:
            self._start_group()
        requests, errors, latency = _COMMIT_METRICS
        requests.inc()
        started = time.perf_counter()
        try:
            await done
        except ConcurrentUpdate:
            raise  # a lost compare-and-swap: persistence_cas_conflicts, not an error of the store
        except Exception:
            errors.inc()
            raise
        finally:
            latency.observe(time.perf_counter() - started)

    def _start_group(self) -> None:
        group, self._pending = self._pending, []
        if not group:
            return
        self._in_flight += 1
        batches = [b for b, _ in group]
        if self.db.loop_postgres is not None and not tracing.enabled and all(_one_statement(b) for b in batches):
            task = asyncio.ensure_future(self._commit_group_on_loop(batches))
        else:
            task = asyncio.ensure_future(self.db.run(self._commit_group, batches))
        task.add_done_callback(lambda finished: self._group_done(group, finished))

    def _group_done(self, group: list, finished: asyncio.Future) -> None:
        self._in_flight -= 1
        if finished.cancelled():  # the loop is shutting down
            for _, done in group:
                done.cancel()
            return
        error = finished.exception()
        outcomes = [error] * len(group) if error is not None else finished.result()
        for (_, done), outcome in zip(group, outcomes):
            if done.done():
                continue
            if outcome is None:
                done.set_result(None)
            else:
                done.set_exception(ConcurrentUpdate(str(outcome)) if isinstance(outcome, IntegrityError) else outcome)
        if self._pending:
            self._start_group()

    async def _commit_group_on_loop(self, batches: list[Batch]) -> list[BaseException | None]:
        """``_commit_group`` for batches PostgreSQL takes as one statement each, sent from the
        event loop: the group as one statement if no two batches touch the same run, otherwise
        (or if that fails) each batch in its own."""
        assert self.db.loop_postgres is not None
        metrics.commit_group_size.get().observe(len(batches))

        async def commit(together: list[Batch]) -> None:
            change = _PgChange()
            for batch in together:
                self._pg_change(change, batch)
            await self.db.loop_postgres.run(change)  # type: ignore[union-attr]

        if len(batches) > 1 and _disjoint(batches):
            try:
                await commit(batches)
                return [None] * len(batches)
            except Exception:
                metrics.persistence_retries.get("group_split").inc()
        outcomes: list[BaseException | None] = []
        for batch in batches:
            try:
                await commit([batch])
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit_group(self, batches: list[Batch]) -> list[BaseException | None]:
        """Commit the batches in one transaction or, if that fails, each in its own (runs in the
        database thread). Returns each batch's error, or None."""
        metrics.commit_group_size.get().observe(len(batches))
        if len(batches) > 1:
            try:
                _retry_dead_connection(lambda: self._commit_together(batches))
                return [None] * len(batches)
            except Exception:
                metrics.persistence_retries.get("group_split").inc()
                pass  # rolled back: each batch now finds out for itself
        outcomes: list[BaseException | None] = []
        for batch in batches:
            try:
                _retry_dead_connection(lambda batch=batch: self._commit_together([batch]))
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit_together(self, batches: list[Batch]) -> None:
        with self.engine.begin() as conn:
            for batch in batches:
                self._commit(conn, batch)

    async def _commit_alone(self, batch: Batch) -> None:
        try:
            await self._write(lambda conn: self._commit(conn, batch))
        except IntegrityError as exc:
            raise ConcurrentUpdate(str(exc)) from exc

    def _commit(self, conn: sa.Connection, batch: Batch) -> None:
        if self.is_postgres and _one_statement(batch):
            self._commit_pg(conn, batch)
            return
        if batch.fence is not None:
            _check_fence(conn, batch.fence)
        for sw in batch.schedules:
            _write_schedule(conn, sw)
        for aw in batch.activities:
            _write_activity(conn, aw)
        for w in batch.workflows:
            self._write_workflow(conn, w)
        for cw in batch.current:
            self._write_current(conn, cw)
        if self.is_postgres:
            self._commit_outbox_pg(conn, batch)
            return
        if batch.delete_transfer_ids:
            conn.execute(_DELETE_TRANSFER, [{"id": i} for i in batch.delete_transfer_ids])
        if batch.delete_timer_ids:
            conn.execute(_DELETE_TIMER, [{"id": i} for i in batch.delete_timer_ids])
        for w in batch.workflows:
            if w.closed:
                conn.execute(_DELETE_RUN_TRANSFERS, {"run": w.record.run_id})
                conn.execute(_DELETE_RUN_TIMERS, {"run": w.record.run_id})
        for aw in batch.activities:
            if aw.closed_run_id:
                conn.execute(_DELETE_RUN_TRANSFERS, {"run": aw.closed_run_id})
                conn.execute(_DELETE_RUN_TIMERS, {"run": aw.closed_run_id})
        if batch.transfer_tasks:
            conn.execute(_INSERT_TRANSFER, [_transfer_row(x) for x in batch.transfer_tasks])
        if batch.timer_tasks:
            conn.execute(_INSERT_TIMER, [_timer_row(x) for x in batch.timer_tasks])

    @staticmethod
    def _commit_pg(conn: sa.Connection, batch: Batch) -> None:
        """``_commit`` on PostgreSQL for a batch ``_one_statement`` admits: the same writes, as one
        statement (one round trip)."""
        change = _PgChange()
        SqlExecutionStore._pg_change(change, batch)
        change.run(conn)

    @staticmethod
    def _pg_change(change: _PgChange, batch: Batch) -> None:
        """Add a batch's writes to ``change``, in ``_commit``'s order. A visibility row is upserted
        (``_pg_write_visibility`` updates, or inserts a missing one)."""
        for w in batch.workflows:
            r = w.record
            if w.expected_db_version is None:
                columns = (r.namespace_id, r.workflow_id, r.run_id, r.shard_id, r.status, r.next_event_id, r.db_version, r.state)
                change.add(_pg_insert("workflow_executions", _PG_EXECUTION_COLUMNS, 1), columns)
            else:
                cas = (r.status, r.next_event_id, r.db_version, r.state, r.namespace_id, r.workflow_id, r.run_id, w.expected_db_version)
                change.add(_PG_CAS_EXECUTION, cas, f"workflow {r.workflow_id}/{r.run_id} changed concurrently")
            if w.events:
                params: list = []
                for e in w.events:
                    params += (r.run_id, e.event_id, r.namespace_id, e.event_type, e.SerializeToString())
                change.add(_pg_insert("history_events", _PG_EVENT_COLUMNS, len(w.events)), params)
            if w.visibility is not None:
                change.add(_PG_UPSERT_VISIBILITY, (r.namespace_id, r.run_id, *_pg_visibility_values(w.visibility)))
                if w.expected_db_version is not None and w.had_search_values:
                    change.add(_PG_DELETE_SEARCH_VALUES, (r.namespace_id, r.run_id))
        for cw in batch.current:
            c = cw.record
            if cw.expected_run_id is None:
                row = (c.namespace_id, c.workflow_id, c.run_id, c.first_execution_run_id, c.create_request_id, c.status)
                change.add(_pg_insert("current_executions", _PG_CURRENT_COLUMNS, 1), row)
            else:
                move = (c.run_id, c.first_execution_run_id, c.create_request_id, c.status, c.namespace_id, c.workflow_id, cw.expected_run_id)
                change.add(_PG_MOVE_CURRENT, move, f"current run of {c.workflow_id} changed concurrently")
        if batch.delete_transfer_ids:
            change.add(_PG_DELETE_TRANSFERS, (list(batch.delete_transfer_ids),))
        if batch.delete_timer_ids:
            change.add(_PG_DELETE_TIMERS, (list(batch.delete_timer_ids),))
        for w in batch.workflows:
            if w.closed:
                # Rows inserted by this same statement are not seen: the batch's new tasks stay.
                change.add(_PG_DELETE_RUN_TRANSFERS, (w.record.run_id,))
                change.add(_PG_DELETE_RUN_TIMERS, (w.record.run_id,))
        if batch.transfer_tasks:
            sql = _pg_insert("transfer_tasks", (*_PG_OUTBOX_COLUMNS, "created_at"), len(batch.transfer_tasks))
            change.add(sql, _pg_outbox_rows(batch.transfer_tasks, timers=False))
        if batch.timer_tasks:
            sql = _pg_insert("timer_tasks", (*_PG_OUTBOX_COLUMNS, "fire_at"), len(batch.timer_tasks))
            change.add(sql, _pg_outbox_rows(batch.timer_tasks, timers=True))

    @staticmethod
    def _commit_outbox_pg(conn: sa.Connection, batch: Batch) -> None:
        """``_commit``'s outbox deletes and inserts on PostgreSQL, in the same order."""
        if batch.delete_transfer_ids:
            _pg_execute(conn, _PG_DELETE_TRANSFERS, (list(batch.delete_transfer_ids),))
        if batch.delete_timer_ids:
            _pg_execute(conn, _PG_DELETE_TIMERS, (list(batch.delete_timer_ids),))
        for w in batch.workflows:
            if w.closed:
                _pg_execute(conn, _PG_DELETE_RUN_TRANSFERS, (w.record.run_id,))
                _pg_execute(conn, _PG_DELETE_RUN_TIMERS, (w.record.run_id,))
        for aw in batch.activities:
            if aw.closed_run_id:
                _pg_execute(conn, _PG_DELETE_RUN_TRANSFERS, (aw.closed_run_id,))
                _pg_execute(conn, _PG_DELETE_RUN_TIMERS, (aw.closed_run_id,))
        if batch.transfer_tasks:
            sql = _pg_insert("transfer_tasks", (*_PG_OUTBOX_COLUMNS, "created_at"), len(batch.transfer_tasks))
            _pg_execute(conn, sql, _pg_outbox_rows(batch.transfer_tasks, timers=False))
        if batch.timer_tasks:
            sql = _pg_insert("timer_tasks", (*_PG_OUTBOX_COLUMNS, "fire_at"), len(batch.timer_tasks))
            _pg_execute(conn, sql, _pg_outbox_rows(batch.timer_tasks, timers=True))

    def _write_workflow(self, conn: sa.Connection, w: WorkflowWrite) -> None:
        r = w.record
        new = w.expected_db_version is None
        if self.is_postgres:
            if new:
                sql = _pg_insert("workflow_executions", _PG_EXECUTION_COLUMNS, 1)
                _pg_execute(conn, sql, (r.namespace_id, r.workflow_id, r.run_id, r.shard_id, r.status, r.next_event_id, r.db_version, r.state))
            else:
                cas = (r.status, r.next_event_id, r.db_version, r.state, r.namespace_id, r.workflow_id, r.run_id, w.expected_db_version)
                if _pg_execute(conn, _PG_CAS_EXECUTION, cas) != 1:
                    raise ConcurrentUpdate(f"workflow {r.workflow_id}/{r.run_id} changed concurrently")
            if w.events:
                params: list = []
                for e in w.events:
                    params += (r.run_id, e.event_id, r.namespace_id, e.event_type, e.SerializeToString())
                _pg_execute(conn, _pg_insert("history_events", _PG_EVENT_COLUMNS, len(w.events)), params)
        else:
            values = {"status": r.status, "next_event_id": r.next_event_id, "db_version": r.db_version, "state": r.state}
            if new:
                conn.execute(
                    _INSERT_EXECUTION,
                    {"namespace_id": r.namespace_id, "workflow_id": r.workflow_id, "run_id": r.run_id, "shard_id": r.shard_id, **values},
                )
            else:
                result = conn.execute(
                    _CAS_EXECUTION,
                    {"ns": r.namespace_id, "wf": r.workflow_id, "run": r.run_id, "expected": w.expected_db_version, **values},
                )
                if result.rowcount != 1:
                    raise ConcurrentUpdate(f"workflow {r.workflow_id}/{r.run_id} changed concurrently")
            if w.events:
                conn.execute(
                    _INSERT_EVENTS,
                    [
                        {
                            "run_id": r.run_id,
                            "event_id": e.event_id,
                            "namespace_id": r.namespace_id,
                            "event_type": e.event_type,
                            "data": e.SerializeToString(),
                        }
                        for e in w.events
                    ],
                )
        if w.visibility is not None:
            self._write_visibility(conn, w, new)

    @staticmethod
    def _write_visibility(conn: sa.Connection, w: WorkflowWrite, new: bool) -> None:
        """Insert (a new run) or replace the visibility row and its typed search-attribute values."""
        r = w.record
        exists = False
        if conn.dialect.name == "postgresql":
            exists = _pg_write_visibility(conn, r, w.visibility or {}, new)
        elif not new:
            params = {f"v_{name}": w.visibility[name] for name in _VISIBILITY_COLUMNS}
            exists = conn.execute(_UPDATE_VISIBILITY, {"key_ns": r.namespace_id, "key_run": r.run_id, **params}).rowcount != 0
        if not exists and conn.dialect.name != "postgresql":
            conn.execute(_INSERT_VISIBILITY, {"namespace_id": r.namespace_id, "run_id": r.run_id, **w.visibility})
        if exists and w.had_search_values:
            conn.execute(_DELETE_SEARCH_VALUES, {"ns": r.namespace_id, "run": r.run_id})
        if w.search_values:
            conn.execute(
                _INSERT_SEARCH_VALUES,
                [
                    {
                        "namespace_id": r.namespace_id,
                        "run_id": r.run_id,
                        "name": v.name,
                        "seq": i,
                        "type": v.type,
                        "value_text": v.text,
                        "value_int": v.integer,
                        "value_double": v.double,
                        "value_time": v.time,
                    }
                    for i, v in enumerate(w.search_values)
                ],
            )

    def _write_current(self, conn: sa.Connection, cw: CurrentWrite) -> None:
        r = cw.record
        if self.is_postgres:
            if cw.expected_run_id is None:
                sql = _pg_insert("current_executions", _PG_CURRENT_COLUMNS, 1)
                _pg_execute(conn, sql, (r.namespace_id, r.workflow_id, r.run_id, r.first_execution_run_id, r.create_request_id, r.status))
                return
            move = (r.run_id, r.first_execution_run_id, r.create_request_id, r.status, r.namespace_id, r.workflow_id, cw.expected_run_id)
            if _pg_execute(conn, _PG_MOVE_CURRENT, move) != 1:
                raise ConcurrentUpdate(f"current run of {r.workflow_id} changed concurrently")
            return
        if cw.expected_run_id is None:
            conn.execute(_INSERT_CURRENT, dict(r.__dict__))
            return
        result = conn.execute(
            _MOVE_CURRENT,
            {
                "key_ns": r.namespace_id,
                "key_wf": r.workflow_id,
                "expected": cw.expected_run_id,
                "v_run_id": r.run_id,
                "v_first": r.first_execution_run_id,
                "v_request": r.create_request_id,
                "v_status": r.status,
            },
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"current run of {r.workflow_id} changed concurrently")

    async def delete_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        def run(conn: sa.Connection) -> None:
            conn.execute(t.history_events.delete().where(t.history_events.c.run_id == run_id))
            conn.execute(t.transfer_tasks.delete().where(t.transfer_tasks.c.run_id == run_id))
            conn.execute(t.timer_tasks.delete().where(t.timer_tasks.c.run_id == run_id))
            v = t.visibility_records.c
            conn.execute(t.visibility_records.delete().where(v.namespace_id == namespace_id, v.run_id == run_id))
            x = t.visibility_search_attributes.c
            conn.execute(t.visibility_search_attributes.delete().where(x.namespace_id == namespace_id, x.run_id == run_id))
            c = t.current_executions.c
            conn.execute(
                t.current_executions.delete().where(
                    c.namespace_id == namespace_id, c.workflow_id == workflow_id, c.run_id == run_id
                )
            )
            w = t.workflow_executions.c
            conn.execute(
                t.workflow_executions.delete().where(
                    w.namespace_id == namespace_id, w.workflow_id == workflow_id, w.run_id == run_id
                )
            )

        await self._write(run)

    # -- visibility queries and the search-attribute registry -------------------------------

    async def list_visibility(self, namespace_id: str, where, order_by: list, limit: int, offset: int) -> list[dict]:
        v = t.visibility_records
        stmt = sa.select(v).where(v.c.namespace_id == namespace_id, where).order_by(*order_by).limit(limit).offset(offset)
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        return [dict(r._mapping) for r in rows]

    async def count_visibility(self, namespace_id: str, where, group_by_status: bool) -> tuple[int, list[tuple[int, int]]]:
        v = t.visibility_records
        if not group_by_status:
            stmt = sa.select(sa.func.count()).select_from(v).where(v.c.namespace_id == namespace_id, where)
            return await self._read(lambda conn: conn.execute(stmt).scalar_one()), []
        stmt = (
            sa.select(v.c.status, sa.func.count())
            .where(v.c.namespace_id == namespace_id, where)
            .group_by(v.c.status)
            .order_by(v.c.status)
        )
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        groups = [(int(status), int(n)) for status, n in rows]
        return sum(n for _, n in groups), groups

    async def get_search_attributes(self, namespace_id: str) -> dict[str, int]:
        x = t.search_attributes
        stmt = sa.select(x.c.name, x.c.type).where(x.c.namespace_id == namespace_id)
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        return {name: int(type_) for name, type_ in rows}

    async def add_search_attributes(self, namespace_id: str, attributes: dict[str, int]) -> None:
        x = t.search_attributes

        def run(conn: sa.Connection) -> None:
            existing = dict(conn.execute(sa.select(x.c.name, x.c.type).where(x.c.namespace_id == namespace_id)).all())
            new = [
                {"namespace_id": namespace_id, "name": name, "type": type_}
                for name, type_ in attributes.items()
                if name not in existing
            ]
            if new:
                conn.execute(x.insert(), new)

        await self._write(run)

    async def remove_search_attributes(self, namespace_id: str, names: list[str]) -> None:
        x = t.search_attributes
        stmt = x.delete().where(x.c.namespace_id == namespace_id, x.c.name.in_(names))
        await self._write(lambda conn: conn.execute(stmt))

    # -- history ---------------------------------------------------------------------------

    async def read_events(
        self, run_id: str, first_event_id: int, next_event_id: int, limit: int | None = None
    ) -> list[HistoryEvent]:
        query = _READ_EVENTS.limit(limit) if limit else _READ_EVENTS
        params = {"run": run_id, "first": first_event_id, "next": next_event_id}
        rows = await self._read(lambda conn: conn.execute(query, params).all())
        return [HistoryEvent.FromString(r[0]) for r in rows]

    async def closed_runs_before(self, namespace_id: str, closed_before: datetime, limit: int) -> list[tuple[str, str]]:
        """(workflow_id, run_id) of runs of a namespace closed before the given time."""
        v = t.visibility_records.c
        query = (
            sa.select(v.workflow_id, v.run_id)
            .where(v.namespace_id == namespace_id, v.close_time.isnot(None), v.close_time < closed_before)
            .order_by(v.close_time)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [(r[0], r[1]) for r in rows]

    async def get_visibility(self, namespace_id: str, run_id: str) -> dict | None:
        v = t.visibility_records.c
        query = sa.select(t.visibility_records).where(v.namespace_id == namespace_id, v.run_id == run_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return dict(row._mapping) if row else None

    # -- outbox ----------------------------------------------------------------------------

    async def list_transfer_tasks(
        self,
        limit: int,
        shard_ids: list[int] | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[OutboxTask]:
        """Transfer tasks oldest first (``after``: continue past this (created_at, task_id))."""
        c = t.transfer_tasks.c
        query = sa.select(t.transfer_tasks).order_by(c.created_at, c.task_id).limit(limit)
        if shard_ids is not None:
            query = query.where(c.shard_id.in_(shard_ids))
        if created_before is not None:
            query = query.where(c.created_at < created_before)
        if after is not None:
            query = query.where(sa.tuple_(c.created_at, c.task_id) > sa.tuple_(*after))
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_outbox(r) for r in rows]

    async def delete_transfer_task(self, task_id: str) -> None:
        await self._write(lambda conn: conn.execute(_DELETE_TRANSFER, {"id": task_id}))

    async def due_timer_tasks(self, now: datetime, limit: int, shard_ids: list[int] | None = None) -> list[OutboxTask]:
        c = t.timer_tasks.c
        query = sa.select(t.timer_tasks).where(c.fire_at <= now).order_by(c.fire_at).limit(limit)
        if shard_ids is not None:
            query = query.where(c.shard_id.in_(shard_ids))
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_outbox(r) for r in rows]

    async def outbox_stats(self, now: datetime, shard_ids: list[int] | None) -> dict[str, tuple[int, float]]:
        """For the metrics: per outbox queue of these shards (None: all), (rows, seconds): ``transfer``
        rows and the age of the oldest; ``timer_due`` rows due by ``now`` and how overdue the oldest is."""
        tr, tm = t.transfer_tasks.c, t.timer_tasks.c
        transfers = sa.select(sa.func.count(), sa.func.min(tr.created_at))
        timers = sa.select(sa.func.count(), sa.func.min(tm.fire_at)).where(tm.fire_at <= now)
        if shard_ids is not None:
            transfers = transfers.where(tr.shard_id.in_(shard_ids))
            timers = timers.where(tm.shard_id.in_(shard_ids))

        def run(conn: sa.Connection) -> dict[str, tuple[int, float]]:
            out = {}
            for queue, query in (("transfer", transfers), ("timer_due", timers)):
                count, oldest = conn.execute(query).one()
                age = (now - (oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC))).total_seconds() if oldest else 0.0
                out[queue] = (int(count), max(age, 0.0))
            return out

        return await self._read(run)

    async def get_timer_task(self, task_id: str) -> OutboxTask | None:
        query = sa.select(t.timer_tasks).where(t.timer_tasks.c.task_id == task_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return _outbox(row) if row else None

    async def next_timer_time(self) -> datetime | None:
        return await self._read(lambda conn: conn.execute(sa.select(sa.func.min(t.timer_tasks.c.fire_at))).scalar())

    async def delete_timer_task(self, task_id: str, fence: tuple[int, int] | None = None) -> None:
        def run(conn: sa.Connection) -> None:
            if fence is not None:
                _check_fence(conn, fence)
            conn.execute(_DELETE_TIMER, {"id": task_id})

        await self._write(run)

    # -- schedules -------------------------------------------------------------------------

    async def get_schedule(self, namespace_id: str, schedule_id: str) -> ScheduleRecord | None:
        c = t.schedules.c
        query = sa.select(t.schedules).where(c.namespace_id == namespace_id, c.schedule_id == schedule_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return ScheduleRecord(**row._mapping) if row else None

    async def list_schedules(self, namespace_id: str, after: str, limit: int) -> list[ScheduleRecord]:
        """A namespace's schedules in id order, starting after the id ``after``."""
        c = t.schedules.c
        query = (
            sa.select(t.schedules)
            .where(c.namespace_id == namespace_id, c.schedule_id > after)
            .order_by(c.schedule_id)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [ScheduleRecord(**r._mapping) for r in rows]

    # -- standalone activities -------------------------------------------------------------

    async def get_activity_execution(self, namespace_id: str, activity_id: str) -> ActivityExecutionRecord | None:
        c = t.activity_executions.c
        query = sa.select(t.activity_executions).where(c.namespace_id == namespace_id, c.activity_id == activity_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return ActivityExecutionRecord(**row._mapping) if row else None

    async def list_activity_executions(self, namespace_id: str, offset: int, limit: int) -> list[ActivityExecutionRecord]:
        """A namespace's standalone activities, newest start first (ties by id), from ``offset``."""
        c = t.activity_executions.c
        query = (
            sa.select(t.activity_executions)
            .where(c.namespace_id == namespace_id)
            .order_by(c.start_time.desc(), c.activity_id)
            .offset(offset)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [ActivityExecutionRecord(**r._mapping) for r in rows]

    async def delete_activity_execution(self, namespace_id: str, activity_id: str, run_id: str) -> bool:
        """Remove a standalone activity's row and outbox rows; False if that run is not the id's row."""

        def run(conn: sa.Connection) -> bool:
            c = t.activity_executions.c
            gone = conn.execute(
                t.activity_executions.delete().where(c.namespace_id == namespace_id, c.activity_id == activity_id, c.run_id == run_id)
            ).rowcount
            if gone:
                conn.execute(_DELETE_RUN_TRANSFERS, {"run": run_id})
                conn.execute(_DELETE_RUN_TIMERS, {"run": run_id})
            return bool(gone)

        return await self._write(run)

    # -- shard leases ----------------------------------------------------------------------

    async def acquire_shards(self, shard_ids: list[int], owner: str, expires_at: datetime | None) -> dict[int, int]:
        """Record a new holder of these shards: bump each ``range_id`` (fencing off writes made
        under an older one) and return the new values."""
        h = t.history_shards.c

        def run(conn: sa.Connection) -> dict[int, int]:
            conn.execute(
                t.history_shards.update()
                .where(h.shard_id.in_(shard_ids))
                .values(range_id=h.range_id + 1, owner=owner, lease_expires_at=expires_at)
            )
            rows = conn.execute(sa.select(h.shard_id, h.range_id).where(h.shard_id.in_(shard_ids))).all()
            return {int(shard): int(range_id) for shard, range_id in rows}

        return await self._write(run)

    async def release_shards(self, shard_ids: list[int], owner: str) -> None:
        h = t.history_shards.c
        stmt = (
            t.history_shards.update()
            .where(h.shard_id.in_(shard_ids), h.owner == owner)
            .values(owner=None, lease_expires_at=None)
        )
        await self._write(lambda conn: conn.execute(stmt))

    # -- batch operations ------------------------------------------------------------------

    async def create_batch_operation(self, record: BatchOperationRecord, max_running: int) -> None:
        """Insert a new job. ResourceExhausted if ``max_running`` jobs of the namespace are running
        (checked first, as Temporal does); else BatchOperationExists if the namespace has a job with
        this id."""
        b = t.batch_operations.c

        def run(conn: sa.Connection) -> None:
            running = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.batch_operations)
                .where(b.namespace_id == record.namespace_id, b.state == "running")
            ).scalar_one()
            if running >= max_running:
                raise ResourceExhausted("Max concurrent batch operations is reached")
            existing = conn.execute(
                sa.select(t.batch_operations).where(b.namespace_id == record.namespace_id, b.job_id == record.job_id)
            ).first()
            if existing is not None:
                raise BatchOperationExists(BatchOperationRecord(**existing._mapping))
            try:
                conn.execute(t.batch_operations.insert().values(**record.__dict__))
            except IntegrityError:
                # A racing start with the same id committed first.
                row = conn.execute(
                    sa.select(t.batch_operations).where(b.namespace_id == record.namespace_id, b.job_id == record.job_id)
                ).one()
                raise BatchOperationExists(BatchOperationRecord(**row._mapping)) from None

        await self._write(run)

    async def get_batch_operation(self, namespace_id: str, job_id: str) -> BatchOperationRecord | None:
        b = t.batch_operations.c
        query = sa.select(t.batch_operations).where(b.namespace_id == namespace_id, b.job_id == job_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return BatchOperationRecord(**row._mapping) if row else None

    async def list_batch_operations(
        self, namespace_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[BatchOperationRecord]:
        """A namespace's jobs, newest first, starting after (start_time, job_id) ``before``."""
        b = t.batch_operations.c
        query = sa.select(t.batch_operations).where(b.namespace_id == namespace_id)
        if before is not None:
            at, job_id = before
            query = query.where(sa.or_(b.start_time < at, sa.and_(b.start_time == at, b.job_id < job_id)))
        query = query.order_by(b.start_time.desc(), b.job_id.desc()).limit(limit)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [BatchOperationRecord(**r._mapping) for r in rows]

    async def running_batch_operations(self, now: datetime, limit: int) -> list[BatchOperationRecord]:
        """Running jobs nobody holds a live lease on, oldest first."""
        b = t.batch_operations.c
        query = (
            sa.select(t.batch_operations)
            .where(b.state == "running", sa.or_(b.lease_expires_at.is_(None), b.lease_expires_at < now))
            .order_by(b.start_time)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [BatchOperationRecord(**r._mapping) for r in rows]

    async def claim_batch_operation(self, namespace_id: str, job_id: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take the job's lease if it is running and its lease is free or expired (or already ours)."""
        b = t.batch_operations.c
        stmt = (
            t.batch_operations.update()
            .where(
                b.namespace_id == namespace_id,
                b.job_id == job_id,
                b.state == "running",
                sa.or_(b.lease_expires_at.is_(None), b.lease_expires_at < now, b.owner == owner),
            )
            .values(owner=owner, lease_expires_at=until)
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount) == 1

    async def save_batch_progress(self, record: BatchOperationRecord, owner: str, until: datetime) -> bool:
        """Write the job's counts, cursor, state and close time, and renew the lease, if the job is
        still running under ``owner``'s lease. False if it was stopped or taken over meanwhile."""
        b = t.batch_operations.c
        stmt = (
            t.batch_operations.update()
            .where(
                b.namespace_id == record.namespace_id,
                b.job_id == record.job_id,
                b.state == "running",
                b.owner == owner,
            )
            .values(
                total=record.total,
                completed=record.completed,
                failed=record.failed,
                cursor=record.cursor,
                state=record.state,
                close_time=record.close_time,
                lease_expires_at=until if record.state == "running" else None,
                owner=owner if record.state == "running" else None,
            )
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount) == 1

    async def stop_batch_operation(self, namespace_id: str, job_id: str, reason: str, identity: str, now: datetime) -> bool:
        """Mark a running job stopped; False if it is not running."""
        b = t.batch_operations.c
        stmt = (
            t.batch_operations.update()
            .where(b.namespace_id == namespace_id, b.job_id == job_id, b.state == "running")
            .values(state="stopped", close_time=now, stop_reason=reason, stop_identity=identity, owner=None, lease_expires_at=None)
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount) == 1

    async def delete_batch_operations_closed_before(self, namespace_id: str, closed_before: datetime) -> int:
        """Forget a namespace's jobs that ended before ``closed_before`` (past its retention, as
        Temporal's batch workflows go). Returns how many went."""
        b = t.batch_operations.c
        stmt = t.batch_operations.delete().where(
            b.namespace_id == namespace_id, b.state != "running", b.close_time < closed_before
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount)

    async def delete_activity_executions_closed_before(self, namespace_id: str, closed_before: datetime) -> int:
        """Forget a namespace's standalone activities that closed before ``closed_before`` (past its
        retention). A closed one has no outbox rows left. Returns how many went."""
        c = t.activity_executions.c
        stmt = t.activity_executions.delete().where(c.namespace_id == namespace_id, c.close_time < closed_before)
        return await self._write(lambda conn: conn.execute(stmt).rowcount)

    # -- worker deployments ----------------------------------------------------------------

    async def get_worker_deployment(self, namespace_id: str, name: str) -> DeploymentRecord | None:
        d = t.worker_deployments.c
        query = sa.select(t.worker_deployments).where(d.namespace_id == namespace_id, d.name == name)
        row = await self._read(lambda conn: conn.execute(query).first())
        return DeploymentRecord(**row._mapping) if row else None

    async def list_worker_deployments(self, namespace_id: str) -> list[DeploymentRecord]:
        """A namespace's deployments, by name."""
        d = t.worker_deployments.c
        query = sa.select(t.worker_deployments).where(d.namespace_id == namespace_id).order_by(d.name)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [DeploymentRecord(**r._mapping) for r in rows]

    async def save_worker_deployment(self, record: DeploymentRecord) -> None:
        """Write a deployment whose stored ``db_version`` is still ``record.db_version`` (0: not
        stored yet), as version ``db_version + 1``; ConcurrentUpdate if someone wrote first."""
        d = t.worker_deployments.c
        values = {"data": record.data, "db_version": record.db_version + 1, "updated_at": record.updated_at}

        def run(conn: sa.Connection) -> None:
            if record.db_version == 0:
                conn.execute(
                    t.worker_deployments.insert().values(
                        namespace_id=record.namespace_id, name=record.name, created_at=record.created_at, **values
                    )
                )
                return
            stmt = (
                t.worker_deployments.update()
                .where(d.namespace_id == record.namespace_id, d.name == record.name, d.db_version == record.db_version)
                .values(**values)
            )
            if conn.execute(stmt).rowcount != 1:
                raise ConcurrentUpdate(f"worker deployment {record.name} changed concurrently")

        try:
            await self._write(run)
        except IntegrityError as exc:  # a racing first poller created it
            raise ConcurrentUpdate(str(exc)) from exc

    async def delete_worker_deployment(self, namespace_id: str, name: str, db_version: int) -> None:
        """Delete a deployment still at ``db_version``; ConcurrentUpdate if it changed."""
        d = t.worker_deployments.c
        stmt = t.worker_deployments.delete().where(
            d.namespace_id == namespace_id, d.name == name, d.db_version == db_version
        )
        if await self._write(lambda conn: conn.execute(stmt).rowcount) != 1:
            raise ConcurrentUpdate(f"worker deployment {name} changed concurrently")

    async def visibility_runs_after(self, namespace_id: str, where, after_run_id: str, limit: int) -> list[tuple[str, str]]:
        """(workflow_id, run_id) of runs matching ``where``, in run id order after ``after_run_id``: a
        page that does not shift when the runs before it change or go."""
        v = t.visibility_records
        stmt = (
            sa.select(v.c.workflow_id, v.c.run_id)
            .where(v.c.namespace_id == namespace_id, where, v.c.run_id > after_run_id)
            .order_by(v.c.run_id)
            .limit(limit)
        )
        rows = await self._read(lambda conn: conn.execute(stmt).all())
        return [(r.workflow_id, r.run_id) for r in rows]

    async def shard_range_ids(self) -> dict[int, int]:
        h = t.history_shards.c
        rows = await self._read(lambda conn: conn.execute(sa.select(h.shard_id, h.range_id)).all())
        return {int(shard): int(range_id) for shard, range_id in rows}


def _insert_if_absent(dialect: str) -> Callable[[sa.Table], Any]:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect; on MySQL an ``ON DUPLICATE KEY UPDATE``
    that sets the first key column to itself (``INSERT IGNORE`` would also swallow other errors)."""
    if dialect in t.MYSQL_DIALECTS:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        def insert(table: sa.Table) -> Any:
            key = table.primary_key.columns[0]
            return mysql_insert(table).on_duplicate_key_update({key.name: key})

        return insert
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return lambda table: dialect_insert(table).on_conflict_do_nothing()


_FENCE = (
    sa.select(t.history_shards.c.range_id)
    .where(t.history_shards.c.shard_id == sa.bindparam("shard"), t.history_shards.c.range_id == sa.bindparam("range"))
    .with_for_update(read=True)
)
# SQLite has one writer at a time and no row locks: a no-op update takes the write lock at once.
_FENCE_SQLITE = (
    t.history_shards.update()
    .where(t.history_shards.c.shard_id == sa.bindparam("shard"), t.history_shards.c.range_id == sa.bindparam("range"))
    .values(range_id=t.history_shards.c.range_id)
)


def _check_fence(conn: sa.Connection, fence: tuple[int, int]) -> None:
    """Refuse the transaction unless the shard still has the given range_id. On PostgreSQL and MySQL
    the check takes a share lock on the shard row (``FOR SHARE``; MariaDB's ``LOCK IN SHARE MODE``): fenced
    transactions of one shard run side by side, while a new holder's bump waits for them to commit
    (and they, for it)."""
    shard_id, range_id = fence
    params = {"shard": shard_id, "range": range_id}
    if conn.dialect.name == "sqlite":
        held = conn.execute(_FENCE_SQLITE, params).rowcount == 1
    else:
        held = conn.execute(_FENCE, params).first() is not None
    if not held:
        raise ShardOwnershipLost(f"shard {shard_id} has a newer owner than range {range_id}")


def _write_schedule(conn: sa.Connection, sw: ScheduleWrite) -> None:
    """Insert, compare-and-swap or delete a schedule row; a lost race raises ScheduleConflict (an
    insert of a taken id raises IntegrityError, which the caller sees as ConcurrentUpdate)."""
    r = sw.record
    c = t.schedules.c
    key = (c.namespace_id == r.namespace_id) & (c.schedule_id == r.schedule_id)
    if sw.expected_db_version is None:
        conn.execute(t.schedules.insert().values(**r.__dict__))
        return
    guard = key & (c.db_version == sw.expected_db_version)
    if sw.delete:
        result = conn.execute(t.schedules.delete().where(guard))
        x = t.timer_tasks.c
        conn.execute(
            t.timer_tasks.delete().where(
                x.namespace_id == r.namespace_id, x.workflow_id == r.schedule_id, x.run_id == "", x.kind == "schedule"
            )
        )
    else:
        values = {k: v for k, v in r.__dict__.items() if k not in ("namespace_id", "schedule_id", "created_at")}
        result = conn.execute(t.schedules.update().where(guard).values(**values))
    if result.rowcount != 1:
        raise ScheduleConflict(f"schedule {r.schedule_id} changed concurrently")


def _write_activity(conn: sa.Connection, aw: ActivityWrite) -> None:
    """Insert or compare-and-swap a standalone activity's row; a lost race raises ConcurrentUpdate
    (an insert of a taken id raises IntegrityError, which the caller sees as the same)."""
    r = aw.record
    if aw.expected_db_version is None:
        conn.execute(t.activity_executions.insert().values(**r.__dict__))
        return
    c = t.activity_executions.c
    guard = (c.namespace_id == r.namespace_id) & (c.activity_id == r.activity_id) & (c.db_version == aw.expected_db_version)
    values = {k: v for k, v in r.__dict__.items() if k not in ("namespace_id", "activity_id")}
    if conn.execute(t.activity_executions.update().where(guard).values(**values)).rowcount != 1:
        raise ConcurrentUpdate(f"activity {r.activity_id} changed concurrently")


def _namespace(row) -> NamespaceRecord:
    m = row._mapping
    return NamespaceRecord(id=m["id"], name=m["name"], state=m["state"], data=json.loads(m["data"]), created_at=m["created_at"])


def _common_row(x: OutboxTask) -> dict:
    return {
        "task_id": x.task_id,
        "shard_id": x.shard_id,
        "namespace_id": x.namespace_id,
        "workflow_id": x.workflow_id,
        "run_id": x.run_id,
        "kind": str(x.kind),  # a TransferKind/TimerKind, stored as its plain value
        "data": json.dumps(x.data),
    }


def _transfer_row(x: OutboxTask) -> dict:
    return {**_common_row(x), "created_at": x.created_at}


def _timer_row(x: OutboxTask) -> dict:
    return {**_common_row(x), "fire_at": x.fire_at}


def _outbox(row) -> OutboxTask:
    m = row._mapping
    return OutboxTask(
        task_id=m["task_id"],
        shard_id=m["shard_id"],
        namespace_id=m["namespace_id"],
        workflow_id=m["workflow_id"],
        run_id=m["run_id"],
        kind=m["kind"],
        data=json.loads(m["data"]),
        created_at=m.get("created_at") or m["fire_at"],
        fire_at=m.get("fire_at"),
    )
