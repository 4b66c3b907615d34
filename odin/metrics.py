"""Prometheus metrics (docs/architecture.md#observability, every one listed in docs/operations.md),
in the process's default registry.

The REST app serves them at ``/metrics``; ``odin server``, Celery workers and Celery beat serve
them on ``ODIN_METRICS_PORT`` when it is set. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` adds up every worker process.

Hot paths update metrics through ``Family.get(*labels)``: one dict lookup for a label set seen
before (prometheus_client's own ``.labels()`` builds and checks a key on every call). A family
keeps at most ``max_children`` label sets; further ones share the child whose labels are all
``"_other"``, so a caller sending endless namespace names cannot grow the exposition without end.
Names follow Temporal's server metrics where Temporal has one (``service_requests``, ...).
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import REGISTRY, Collector
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus, WorkflowTaskFailedCause

log = logging.getLogger(__name__)

M = TypeVar("M", bound=MetricWrapperBase)
OTHER = "_other"
MAX_CHILDREN = 2000


class Family(Generic[M]):
    """A labelled metric with a cache of its children (bounded, see the module's docstring)."""

    __slots__ = ("metric", "_children", "_max", "_width")

    def __init__(self, metric: M, max_children: int = MAX_CHILDREN):
        self.metric = metric
        self._width = len(metric._labelnames)
        # A metric without labels is its own (only) child.
        self._children: dict[tuple[str, ...], M] = {} if self._width else {(): metric}
        self._max = max_children

    def get(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            if len(self._children) >= self._max:
                labels = (OTHER,) * self._width
                child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = self.metric.labels(*labels)
        return child

    def forget(self, *labels: str) -> None:
        """Drop one label set (a gauge of something that went away)."""
        if self._children.pop(labels, None) is not None:
            try:
                self.metric.remove(*labels)
            except KeyError:
                pass

    def label_sets(self) -> list[tuple[str, ...]]:
        return list(self._children)


def _counter(name: str, doc: str, labels: Iterable[str]) -> Family[Counter]:
    return Family(Counter(name, doc, list(labels)))


def _histogram(name: str, doc: str, labels: Iterable[str], buckets: tuple[float, ...]) -> Family[Histogram]:
    return Family(Histogram(name, doc, list(labels), buckets=buckets))


def _gauge(name: str, doc: str, labels: Iterable[str], mode: str = "livesum") -> Family[Gauge]:
    # ``mode``: how gunicorn's worker processes add up under PROMETHEUS_MULTIPROC_DIR.
    return Family(Gauge(name, doc, list(labels), multiprocess_mode=mode))  # type: ignore[arg-type]


_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
_SIZE_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 50, 100, 250, 1000)

# -- the seed's four -------------------------------------------------------------------------

workflow_duration_seconds = Histogram(
    "workflow_duration_seconds",
    "From a run's start to its close, by how it closed.",
    ["namespace", "workflow_type", "status"],
    buckets=_DURATION_BUCKETS,
)
workflow_replay_count = Counter(
    "workflow_replay_count",
    "Workflow tasks handed to a worker with the whole history, which it replays from the start.",
    ["namespace", "workflow_type"],
)
task_queue_latency_seconds = Histogram(
    "task_queue_latency_seconds",
    "Schedule-to-start latency: from a task being scheduled to a worker taking it.",
    ["queue_name", "task_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
history_shard_ownership = Gauge(
    "history_shard_ownership",
    "1 for each history shard whose lease this process holds.",
    ["shard_id", "host"],
    multiprocess_mode="max",
)
shard_count = _gauge("history_shard_count", "The cluster's number of history shards (to compare with those owned).", (), "max")
duration_family = Family(workflow_duration_seconds)
replay_family = Family(workflow_replay_count)
schedule_to_start = Family(task_queue_latency_seconds)

# -- requests, both doors --------------------------------------------------------------------

service_requests = _counter(
    "service_requests", "Calls received, by door (grpc, rest), operation and namespace.", ("door", "operation", "namespace")
)
service_errors = _counter(
    "service_errors", "Calls that ended in an error, by gRPC status name.", ("door", "operation", "namespace", "status")
)
service_latency = _histogram(
    "service_latency_seconds",
    "From the gate taking a call to its answer (long polls included: filter them by operation).",
    ("door", "operation", "namespace"),
    _LATENCY_BUCKETS,
)

# -- persistence and Redis -------------------------------------------------------------------

persistence_requests = _counter("persistence_requests", "SQL store calls, by store method.", ("operation",))
persistence_errors = _counter("persistence_errors", "SQL store calls that raised, by store method.", ("operation",))
persistence_latency = _histogram(
    "persistence_latency_seconds", "SQL store call latency (waiting for a database thread included).", ("operation",), _LATENCY_BUCKETS
)
persistence_cas_conflicts = _counter(
    "persistence_cas_conflicts", "Commits refused by the compare-and-swap on a run's version (the update is retried).", ()
)
persistence_retries = _counter(
    "persistence_retries", "SQL work run again: dead_connection (a pooled connection had died), group_split "
    "(a group commit rolled back and its batches committed one by one).", ("reason",)
)
commit_group_size = _histogram(
    "persistence_commit_group_size", "Batches committed together in one transaction (group commit).", (), _SIZE_BUCKETS
)
redis_requests = _counter("redis_requests", "Redis commands sent (scripts as EVALSHA, pipelines as PIPELINE).", ("command",))
redis_errors = _counter("redis_errors", "Redis commands that raised.", ("command",))
redis_latency = _histogram("redis_latency_seconds", "Redis command latency (blocking reads included).", ("command",), _LATENCY_BUCKETS)

# -- history ---------------------------------------------------------------------------------

history_events = _counter(
    "history_events", "Events committed to histories, by event type (the kinds of state transition).", ("event_type",)
)
transaction_events = _histogram(
    "history_transaction_events", "Events written per committed transition (transaction size).", (), _SIZE_BUCKETS
)
shard_lease_latency = _histogram(
    "shard_lease_latency_seconds", "Shard lease work: acquire, renew, release.", ("action",), _LATENCY_BUCKETS
)
shard_lease_changes = _counter(
    "shard_lease_changes", "Shard leases acquired, lost (taken away or expired) and released.", ("change",)
)
outbox_depth = _gauge(
    "history_outbox_depth",
    "Outbox rows of this process's shards: transfer (not yet queued or taken) and timer_due (due, not fired).",
    ("queue",),
)
outbox_age = _gauge(
    "history_outbox_age_seconds",
    "Age of the oldest transfer row, and how overdue the most overdue timer row is, of this process's shards.",
    ("queue",),
    "max",
)
timer_lag = _histogram(
    "timer_lag_seconds", "How late a timer task fired: fire time minus due time, by timer kind.", ("kind",), _LAG_BUCKETS
)

# -- matching --------------------------------------------------------------------------------

_QUEUE = ("namespace", "task_queue", "task_type")
backlog_count = _gauge("approximate_backlog_count", "Tasks queued and not handed out, per task queue (sampled).", _QUEUE, "max")
backlog_age = _gauge(
    "approximate_backlog_age_seconds", "Age of the oldest queued task, per task queue (sampled).", _QUEUE, "max"
)
pollers = _gauge("task_queue_pollers", "Pollers seen on a task queue in the last minute (sampled).", _QUEUE, "max")
poll_success = _counter(
    "poll_success", "Polls that got a task: sync (it came while the poll waited) or backlog (it was queued).", ("task_type", "match")
)
poll_timeouts = _counter("poll_timeouts", "Polls that ended without a task.", ("task_type",))

_poll_children: dict[tuple[str, int], Counter] = {}


def count_poll(task_type: str, entry: object, sync: bool) -> None:
    """Count a poll's end: a task matched sync or from the backlog, or none (a timeout)."""
    key = (task_type, 0 if entry is None else 1 if sync else 2)
    child = _poll_children.get(key)
    if child is None:
        child = _poll_children[key] = (
            poll_timeouts.get(task_type) if entry is None else poll_success.get(task_type, "sync" if sync else "backlog")
        )
    child.inc()


# -- workflows and activities ----------------------------------------------------------------

workflow_started = _counter("workflow_started", "Runs started (continue-as-new, retry and cron runs included).", ("namespace", "workflow_type"))
workflow_closed = _counter(
    "workflow_closed",
    "Runs closed, by status: completed, failed, timed_out, canceled, terminated, continued_as_new.",
    ("namespace", "workflow_type", "status"),
)
workflow_task_failures = _counter(
    "workflow_task_failures", "Workflow tasks failed by the worker (by cause) or timed out (cause timeout).", ("namespace", "workflow_type", "cause")
)
activity_attempts = _counter("activity_attempts", "Activity attempts handed to a worker.", ("namespace", "activity_type"))
activity_failures = _counter(
    "activity_failures", "Activity attempts that did not complete: failed, timed_out, canceled.", ("namespace", "activity_type", "outcome")
)

# -- Celery system workers -------------------------------------------------------------------

celery_jobs = _counter("celery_jobs", "Odin's Celery jobs run, by job name and outcome (succeeded, failed, retried).", ("job", "outcome"))
celery_job_latency = _histogram("celery_job_latency_seconds", "Odin's Celery job run time.", ("job",), _LAG_BUCKETS)


# -- helpers for the hot paths ---------------------------------------------------------------


def status_name(status: int) -> str:
    return _STATUS_NAMES.get(status) or str(status)


_STATUS_NAMES: dict[int, str] = {
    v: WorkflowExecutionStatus.Name(v).removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()
    for v in WorkflowExecutionStatus.values()
}
_EVENT_NAMES: dict[int, str] = {v: EventType.Name(v).removeprefix("EVENT_TYPE_").lower() for v in EventType.values()}
_WFT_CAUSES: dict[int, str] = {
    v: WorkflowTaskFailedCause.Name(v).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").lower() for v in WorkflowTaskFailedCause.values()
}
_E = EventType
_STARTED = _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
# event type -> the child of history_events (filled on first use)
_event_children: dict[int, Counter] = {}


def record_transition(namespace: str, workflow_type: str, events: list[Any], closed_status: int | None) -> bool:
    """Count one committed transition: its events by type, its size, starts and closes
    (``events`` are HistoryEvent protos; ``closed_status`` set when the run closed). Returns
    whether it started a run."""
    transaction_events.get().observe(len(events))
    started = False
    for e in events:
        et = e.event_type
        child = _event_children.get(et)
        if child is None:
            child = _event_children[et] = history_events.get(_EVENT_NAMES.get(et, str(et)))
        child.inc()
        if et == _STARTED:
            workflow_started.get(namespace, workflow_type).inc()
            started = True
    if closed_status is not None:
        workflow_closed.get(namespace, workflow_type, status_name(closed_status)).inc()
    return started


_ACTIVITY_ENDS = {
    _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "",
    _E.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    _E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
    _E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled",
}


def record_workflow_task_failure(namespace: str, workflow_type: str, cause: int | None) -> None:
    """A workflow task the worker failed (``cause``) or that timed out (None). Counted per attempt:
    attempts after the first write no event (they are transient, as in Temporal)."""
    name = "timeout" if cause is None else _WFT_CAUSES.get(cause, "unspecified")
    workflow_task_failures.get(namespace, workflow_type, name).inc()


def record_activity_end(namespace: str, activity_type: str, events: list[Any], default: str = "failed") -> None:
    """Count an activity attempt that ended in a transition with ``events``, unless it completed:
    by its closing event, else (a retry was scheduled, which writes no event) as ``default``."""
    outcome = default
    for e in events:
        found = _ACTIVITY_ENDS.get(e.event_type)
        if found is not None:
            outcome = found
            break
    if outcome:
        activity_failures.get(namespace, activity_type, outcome).inc()


def record_shards(owner: str, held: set[int], previous: set[int]) -> None:
    for shard in previous - held:
        try:
            history_shard_ownership.remove(str(shard), owner)
        except KeyError:
            pass
    for shard in held:
        history_shard_ownership.labels(str(shard), owner).set(1)


class timed:
    """``with timed(histogram_child): ...`` observes the block's duration."""

    __slots__ = ("_h", "_t")

    def __init__(self, h: Histogram):
        self._h = h

    def __enter__(self) -> None:
        self._t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._h.observe(time.perf_counter() - self._t)


def persistence_call(operation: str) -> tuple[Counter, Counter, Histogram]:
    """The (requests, errors, latency) children of one store method (cached)."""
    found = _persistence_children.get(operation)
    if found is None:
        found = _persistence_children[operation] = (
            persistence_requests.get(operation),
            persistence_errors.get(operation),
            persistence_latency.get(operation),
        )
    return found


_persistence_children: dict[str, tuple[Counter, Counter, Histogram]] = {}


def redis_call(command: str) -> tuple[Counter, Counter, Histogram]:
    """The (requests, errors, latency) children of one Redis command (cached)."""
    found = _redis_children.get(command)
    if found is None:
        name = command.upper() if isinstance(command, str) else str(command)
        found = _redis_children[command] = (redis_requests.get(name), redis_errors.get(name), redis_latency.get(name))
    return found


_redis_children: dict[str, tuple[Counter, Counter, Histogram]] = {}


# -- pools, read when scraped ----------------------------------------------------------------

_pools: weakref.WeakSet[Any] = weakref.WeakSet()


def watch_pool(kind: str, pool: Any) -> None:
    """Report a connection pool's use when scraped: a SQLAlchemy pool (``kind`` "sql") or a
    redis-py connection pool ("redis")."""
    pool._odin_pool_kind = kind
    _pools.add(pool)


class _PoolCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "connection_pool_connections",
            "Connections of this process's SQL and Redis pools: in_use, idle, max.",
            labels=["pool", "state"],
        )
        totals: dict[tuple[str, str], float] = {}
        for pool in list(_pools):
            kind = pool._odin_pool_kind
            for state, value in _pool_use(kind, pool):
                totals[(kind, state)] = totals.get((kind, state), 0) + value
        for (kind, state), value in sorted(totals.items()):
            family.add_metric([kind, state], value)
        yield family


def _pool_use(kind: str, pool: Any) -> list[tuple[str, float]]:
    try:
        if kind == "sql":
            size = pool.size() if hasattr(pool, "size") else 1
            overflow = getattr(pool, "_max_overflow", 0)
            return [("in_use", pool.checkedout()), ("idle", pool.checkedin()), ("max", size + max(overflow, 0))]
        in_use = len(getattr(pool, "_in_use_connections", ()))
        idle = len(getattr(pool, "_available_connections", ()))
        return [("in_use", in_use), ("idle", idle), ("max", pool.max_connections)]
    except Exception:  # a pool type without these counters (SQLite's StaticPool)
        return []


pool_collector = _PoolCollector()
REGISTRY.register(pool_collector)


# -- sampled gauges --------------------------------------------------------------------------

# Task queues seen by this process's polls (namespace id, namespace, queue, task type): the ones
# the sampler reports on. Sticky queues are per worker process and never enter.
MAX_SAMPLED_QUEUES = 500
seen_queues: dict[tuple[str, str, str, str], None] = {}


def saw_queue(namespace_id: str, namespace: str, queue: str, task_type: str) -> None:
    key = (namespace_id, namespace, queue, task_type)
    if key not in seen_queues and len(seen_queues) < MAX_SAMPLED_QUEUES:
        seen_queues[key] = None


class Sampler:
    """Every ``every`` seconds: the outbox of this process's shards and the backlog and pollers of
    the task queues this process has seen polled, into gauges. Runs on the runtime's loop."""

    POLLER_WINDOW = 60.0

    def __init__(self, outbox: Callable[[], Awaitable[dict[str, tuple[int, float]]]], queues: Any, every: float = 10.0):
        self._outbox = outbox
        self._queues = queues
        self.every = every
        self._failed = False  # the first failure is a warning, later ones debug lines

    async def sample(self) -> None:
        for queue, (depth, age) in (await self._outbox()).items():
            outbox_depth.get(queue).set(depth)
            outbox_age.get(queue).set(age)
        now = time.time()
        for namespace_id, namespace, queue, task_type in list(seen_queues):
            stats = await self._queues.stats(namespace_id, queue, task_type)
            seen = await self._queues.pollers(namespace_id, queue, task_type)
            labels = (namespace, queue, task_type)
            backlog_count.get(*labels).set(stats.backlog)
            backlog_age.get(*labels).set(stats.backlog_age)
            pollers.get(*labels).set(sum(1 for p in seen if now - p.last_access_time <= self.POLLER_WINDOW))

    async def run(self) -> None:
        import asyncio

        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store or Redis hiccup: the next round tries again
                log.log(logging.DEBUG if self._failed else logging.WARNING, "metrics sample failed", exc_info=True)
                self._failed = True
            await asyncio.sleep(self.every)


def serve_from_env() -> int | None:
    """Serve ``/metrics`` on ``ODIN_METRICS_PORT`` if set (processes without the REST app)."""
    port = os.environ.get("ODIN_METRICS_PORT")
    if not port:
        return None
    from prometheus_client import start_http_server

    try:
        start_http_server(int(port), addr=os.environ.get("ODIN_METRICS_HOST", "0.0.0.0"))
    except OSError as exc:
        # Another process of this host serves it already (one shared environment file): this
        # process carries on without its own metrics endpoint rather than not at all.
        log.warning("metrics: not serving on port %s (%s)", port, exc)
        return None
    return int(port)
