"""SQLAlchemy Core tables (docs/architecture.md#tables). The schema itself is created only by Alembic migrations.

Columns use the portable types below (``Key``, ``Str``, ``Text``, ``Blob``, ``Double``, ``UtcDateTime``)
rather than SQLAlchemy's plain ones: they are the plain ones on PostgreSQL and SQLite, and on MySQL and
MariaDB the forms that keep the same guarantees (docs/operations.md#mysql).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator

# The dialect names SQLAlchemy gives the MySQL family (mysql+pymysql://, mariadb+pymysql://).
MYSQL_DIALECTS = ("mysql", "mariadb")


class UtcDateTime(TypeDecorator):
    """Timestamps stored as naive UTC on every backend, returned timezone-aware; to the microsecond
    (MySQL's plain DATETIME would keep whole seconds)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


class _Utf8Varbinary(TypeDecorator):
    """Text kept as UTF-8 bytes in a binary column (MySQL and MariaDB). Binary strings compare and
    sort byte by byte, as PostgreSQL's and SQLite's text does here, where MySQL's text collations
    ignore case, accents or trailing spaces; and a 1000-byte id fits an index key (3072 bytes), where
    VARCHAR(1000) in utf8mb4 counts 4000."""

    impl = mysql.VARBINARY
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.encode() if isinstance(value, str) else value

    def process_result_value(self, value, dialect):
        return value.decode() if isinstance(value, (bytes, bytearray)) else value


class _Utf8Longblob(TypeDecorator):
    """Unbounded text as UTF-8 bytes in a LONGBLOB (MySQL and MariaDB), for the same reasons."""

    impl = mysql.LONGBLOB
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.encode() if isinstance(value, str) else value

    def process_result_value(self, value, dialect):
        return value.decode() if isinstance(value, (bytes, bytearray)) else value


def Key(length: int) -> sa.types.TypeEngine:
    """An id or name that is part of a key or index: at most ``length`` characters on PostgreSQL,
    ``length`` bytes of UTF-8 on MySQL (ids are limited in bytes, as Temporal limits them)."""
    return sa.String(length).with_variant(_Utf8Varbinary(length), *MYSQL_DIALECTS)


def Str(length: int) -> sa.types.TypeEngine:
    """Free text of at most ``length`` characters, in no index (room for 4 bytes a character on MySQL)."""
    return sa.String(length).with_variant(_Utf8Varbinary(4 * length), *MYSQL_DIALECTS)


def Text() -> sa.types.TypeEngine:
    """Unbounded text (JSON documents, search-attribute values): LONGBLOB of UTF-8 on MySQL, whose
    TEXT would stop at 64 KiB and compare without regard to case."""
    return sa.Text().with_variant(_Utf8Longblob(), *MYSQL_DIALECTS)


def Blob() -> sa.types.TypeEngine:
    """Serialized protos and states: LONGBLOB on MySQL, whose BLOB would stop at 64 KiB."""
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL_DIALECTS)


def Double() -> sa.types.TypeEngine:
    """A 64-bit float (MySQL's FLOAT is 32 bits)."""
    return sa.Float().with_variant(mysql.DOUBLE(), *MYSQL_DIALECTS)


metadata = sa.MetaData()

namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("id", Key(36), primary_key=True),
    sa.Column("name", Key(255), nullable=False, unique=True),
    sa.Column("state", sa.Integer, nullable=False),
    # JSON document: description, owner_email, retention_seconds, data.
    sa.Column("data", Text(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

cluster_metadata = sa.Table(
    "cluster_metadata",
    metadata,
    sa.Column("key", Key(64), primary_key=True),
    sa.Column("value", Text(), nullable=False),
)

history_shards = sa.Table(
    "history_shards",
    metadata,
    sa.Column("shard_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("range_id", sa.BigInteger, nullable=False),
    sa.Column("owner", Str(255)),
    sa.Column("lease_expires_at", UtcDateTime),
)

workflow_executions = sa.Table(
    "workflow_executions",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("workflow_id", Key(1000), primary_key=True),
    sa.Column("run_id", Key(36), primary_key=True),
    sa.Column("shard_id", sa.Integer, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("next_event_id", sa.BigInteger, nullable=False),
    sa.Column("db_version", sa.BigInteger, nullable=False),
    sa.Column("state", Blob(), nullable=False),
)

current_executions = sa.Table(
    "current_executions",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("workflow_id", Key(1000), primary_key=True),
    sa.Column("run_id", Key(36), nullable=False),
    sa.Column("first_execution_run_id", Key(36), nullable=False),
    sa.Column("create_request_id", Str(1000), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
)

history_events = sa.Table(
    "history_events",
    metadata,
    sa.Column("run_id", Key(36), primary_key=True),
    sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("namespace_id", Key(36), nullable=False),
    sa.Column("event_type", sa.Integer, nullable=False),
    # Serialized temporal.api.history.v1.HistoryEvent.
    sa.Column("data", Blob(), nullable=False),
)

transfer_tasks = sa.Table(
    "transfer_tasks",
    metadata,
    sa.Column("task_id", Key(32), primary_key=True),
    sa.Column("shard_id", sa.Integer, nullable=False, index=True),
    sa.Column("namespace_id", Key(36), nullable=False),
    sa.Column("workflow_id", Key(1000), nullable=False),
    sa.Column("run_id", Key(36), nullable=False, index=True),
    sa.Column("kind", Key(32), nullable=False),
    sa.Column("data", Text(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_transfer_tasks_shard_created", "shard_id", "created_at"),
)

timer_tasks = sa.Table(
    "timer_tasks",
    metadata,
    sa.Column("task_id", Key(32), primary_key=True),
    sa.Column("shard_id", sa.Integer, nullable=False),
    sa.Column("fire_at", UtcDateTime, nullable=False, index=True),
    sa.Column("namespace_id", Key(36), nullable=False),
    sa.Column("workflow_id", Key(1000), nullable=False),
    sa.Column("run_id", Key(36), nullable=False, index=True),
    sa.Column("kind", Key(32), nullable=False),
    sa.Column("data", Text(), nullable=False),
    sa.Index("ix_timer_tasks_shard_fire", "shard_id", "fire_at"),
)

visibility_records = sa.Table(
    "visibility_records",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("run_id", Key(36), primary_key=True),
    sa.Column("workflow_id", Key(1000), nullable=False),
    sa.Column("workflow_type", Key(1000), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("execution_time", UtcDateTime, nullable=False),
    sa.Column("close_time", UtcDateTime),
    sa.Column("history_length", sa.BigInteger, nullable=False),
    sa.Column("history_size_bytes", sa.BigInteger, nullable=False),
    sa.Column("task_queue", Key(1000), nullable=False),
    sa.Column("first_execution_run_id", Key(36), nullable=False),
    sa.Column("parent_workflow_id", Key(1000)),
    sa.Column("parent_run_id", Key(36)),
    # Serialized temporal.api.common.v1.Memo / SearchAttributes.
    sa.Column("memo", Blob()),
    sa.Column("search_attributes", Blob()),
    sa.Index("ix_visibility_ns_status", "namespace_id", "status"),
    sa.Index("ix_visibility_ns_type", "namespace_id", "workflow_type"),
    sa.Index("ix_visibility_ns_start", "namespace_id", "start_time"),
    sa.Index("ix_visibility_ns_close", "namespace_id", "close_time"),
    sa.Index("ix_visibility_ns_wid", "namespace_id", "workflow_id"),
)

task_queues = sa.Table(
    "task_queues",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("name", Key(1000), primary_key=True),
    sa.Column("kind", sa.Integer, primary_key=True),
    # JSON document: partitions and other queue metadata.
    sa.Column("data", Text(), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

search_attributes = sa.Table(
    "search_attributes",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("name", Key(255), primary_key=True),
    sa.Column("type", sa.Integer, nullable=False),  # temporal.api.enums.v1.IndexedValueType
)

# One row per search attribute value of a run's visibility record (a KeywordList: one per element).
visibility_search_attributes = sa.Table(
    "visibility_search_attributes",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("run_id", Key(36), primary_key=True),
    sa.Column("name", Key(255), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.Integer, nullable=False),
    sa.Column("value_text", Text()),
    sa.Column("value_int", sa.BigInteger),
    sa.Column("value_double", Double()),
    sa.Column("value_time", UtcDateTime),
    sa.Index("ix_vsa_ns_name_text", "namespace_id", "name"),
)

# One row per schedule (docs/architecture.md#schedules): the Schedule proto, its runtime info (JSON,
# odin.history.schedules.ScheduleRuntime) and the columns ListSchedules shows and filters on.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("schedule_id", Key(1000), primary_key=True),
    sa.Column("shard_id", sa.Integer, nullable=False),
    sa.Column("conflict_token", sa.BigInteger, nullable=False),
    # Guards every change (compare-and-swap); the conflict token moves only on user-visible ones.
    sa.Column("db_version", sa.BigInteger, nullable=False),
    sa.Column("request_id", Str(1000), nullable=False),
    # Serialized temporal.api.schedule.v1.Schedule / common.v1.Memo / common.v1.SearchAttributes.
    sa.Column("schedule", Blob(), nullable=False),
    sa.Column("info", Text(), nullable=False),
    sa.Column("memo", Blob()),
    sa.Column("search_attributes", Blob()),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("next_action_at", UtcDateTime),
)

# One row per batch operation (docs/architecture.md#batch-operations): what to do and to which runs
# (the StartBatchOperationRequest), its progress (counts and the cursor of the last page done, both
# committed together after each page) and which process is running it until when (a lease).
batch_operations = sa.Table(
    "batch_operations",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("job_id", Key(1000), primary_key=True),
    # A run id of its own, named in the duplicate-job-id error as Temporal names its batch workflow's run.
    sa.Column("run_id", Key(36), nullable=False),
    sa.Column("request_id", Str(36), nullable=False),
    sa.Column("operation_type", sa.Integer, nullable=False),  # temporal.api.enums.v1.BatchOperationType
    # Serialized temporal.api.workflowservice.v1.StartBatchOperationRequest.
    sa.Column("request", Blob(), nullable=False),
    sa.Column("identity", Str(1000), nullable=False),
    sa.Column("reason", Text(), nullable=False),
    # running | completed | failed | stopped
    sa.Column("state", Key(16), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("completed", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    # Where the next page starts: the last run id acted on (a query) or the next index (a list).
    sa.Column("cursor", Str(1000), nullable=False),
    sa.Column("owner", Str(255)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("close_time", UtcDateTime),
    sa.Column("stop_reason", Text()),
    sa.Column("stop_identity", Str(1000)),
    sa.Index("ix_batch_operations_state", "state"),
    sa.Index("ix_batch_operations_ns_start", "namespace_id", "start_time"),
)

# One row per standalone activity id (docs/architecture.md#standalone-activities): the current run
# of the id, its state (JSON, odin.history.standalone.StandaloneActivity) under a compare-and-swap,
# and the columns ListActivityExecutions shows and filters on. A new run of an id replaces the row.
activity_executions = sa.Table(
    "activity_executions",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("activity_id", Key(1000), primary_key=True),
    sa.Column("run_id", Key(36), nullable=False),
    sa.Column("shard_id", sa.Integer, nullable=False),
    sa.Column("db_version", sa.BigInteger, nullable=False),
    sa.Column("request_id", Str(1000), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),  # temporal.api.enums.v1.ActivityExecutionStatus
    sa.Column("activity_type", Key(1000), nullable=False),
    sa.Column("task_queue", Key(1000), nullable=False),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("close_time", UtcDateTime),
    # Serialized temporal.api.common.v1.SearchAttributes.
    sa.Column("search_attributes", Blob()),
    sa.Column("state", Blob(), nullable=False),
    sa.Index("ix_activity_executions_ns_start", "namespace_id", "start_time"),
)

# One row per worker deployment (docs/architecture.md#worker-deployments): its versions, each
# version's task queues and metadata, and the routing (current and ramping version) as one JSON
# document (``odin.history.deployments.Deployment``), changed by compare-and-swap on ``db_version``.
worker_deployments = sa.Table(
    "worker_deployments",
    metadata,
    sa.Column("namespace_id", Key(36), primary_key=True),
    sa.Column("name", Key(1000), primary_key=True),
    sa.Column("data", Text(), nullable=False),
    sa.Column("db_version", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
