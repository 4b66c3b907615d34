"""Matching: task queues that carry workflow, activity and query tasks to polling workers.

Queue entries are hints, not truth (docs/architecture.md#inv-queue-hints): the history engine
decides whether an entry still names a pending task when a poller takes it, and stale entries are
dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

WORKFLOW = "workflow"
ACTIVITY = "activity"

# Temporal's priority keys: 1 is the highest, PRIORITY_LEVELS the lowest, 0 (unset) the middle one.
# Within a queue, entries go out by priority, then in the order they were added. Keys beyond the
# lowest level count as the lowest.
PRIORITY_LEVELS = 5
DEFAULT_PRIORITY = 3
RATE_TTL = 300.0  # seconds a queue's dispatch rate outlives the last poll that set it


def priority_level(key: int) -> int:
    """The level (1..PRIORITY_LEVELS) an entry with priority key ``key`` waits at."""
    return DEFAULT_PRIORITY if key <= 0 else min(key, PRIORITY_LEVELS)


@dataclass(frozen=True)
class TaskEntry:
    """One queued task. ``task_id`` is the transfer task's id (or the query id for queries)."""

    task_id: str
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int = 0
    attempt: int = 0
    query_id: str = ""
    priority: int = 0  # Temporal's priority key: 1 highest; 0 is the default (DEFAULT_PRIORITY)
    # At most ``max_concurrency`` activity attempts with this key run at once, cluster-wide; a
    # slot is held ``lease`` seconds unless renewed (the heartbeat timeout, else start-to-close).
    concurrency_key: str = ""
    max_concurrency: int = 0
    lease: float = 0.0
    # A standalone activity's entry names the activity (its ``workflow_id`` is then empty).
    activity_id: str = ""
    # Set by a backend on the entries its polls return: what ``ack``/``requeue`` need to find the
    # delivery again (the in-memory backend needs nothing). Not part of the entry's identity.
    receipt: str = field(default="", compare=False)

    @property
    def is_query(self) -> bool:
        return bool(self.query_id)


@dataclass
class PollerInfo:
    identity: str
    last_access_time: float  # wall-clock seconds


@dataclass
class QueueStats:
    """A queue's backlog and traffic (DescribeTaskQueue's enhanced form reports them per type)."""

    backlog: int  # entries queued and not handed out
    backlog_age: float  # seconds since the oldest of them was added (0 without backlog)
    add_rate: float  # entries added per second over the last ``RATE_WINDOW`` seconds
    dispatch_rate: float  # entries handed to pollers per second, same window


# Seconds over which queues average their add and dispatch rates (Temporal's window).
RATE_WINDOW = 30


class TaskQueues(Protocol):
    # Whether a requeued entry is handed out before the entries already queued (else it goes last).
    requeue_first: bool

    async def add(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        """Queue an entry. Adding an entry whose ``task_id`` is already queued is a no-op."""

    async def poll(
        self,
        namespace_id: str,
        queue: str,
        task_type: str,
        timeout: float,
        identity: str,
        max_per_second: float | None = None,
    ) -> TaskEntry | None:
        """Wait up to ``timeout`` seconds for an entry, highest priority first; None when none came.

        ``max_per_second`` (Temporal's ``task_queue_metadata.max_tasks_per_second``) limits how fast
        the queue hands out entries to all its pollers together, in every process sharing the
        backend: a token bucket of that rate holding one token (so no burst), charged for each entry
        handed out. The latest rate a poll gave is the queue's, for polls without one too, until
        ``RATE_TTL`` seconds after the last poll that gave it."""

    async def requeue(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        """Give back an entry a poller took but could not deliver."""

    async def ack(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        """The history engine has decided on an entry a poll returned (its task started, or it was
        stale): forget it. An entry never acknowledged is handed out again later."""

    async def has_recent_poller(self, namespace_id: str, queue: str, task_type: str, within: float) -> bool: ...

    async def pollers(self, namespace_id: str, queue: str, task_type: str) -> list[PollerInfo]: ...

    async def backlog(self, namespace_id: str, queue: str, task_type: str) -> int: ...

    async def stats(self, namespace_id: str, queue: str, task_type: str) -> QueueStats: ...

    async def drain(self, namespace_id: str, queue: str, task_type: str) -> list[TaskEntry]:
        """Remove and return every queued entry (used to move a dead sticky queue's tasks); the
        queue counts as dead from then on: ``has_recent_poller`` says no even if a poll of its
        worker ends (and so records the poller) after the drain."""

    async def acquire_slot(self, namespace_id: str, key: str, limit: int, holder: str, lease: float) -> bool:
        """Take one of the ``limit`` slots of concurrency key ``key`` for ``holder`` (an activity
        attempt) for ``lease`` seconds; False if all are held. Taking a slot one already holds
        renews it. A slot whose lease ran out is free again (its holder died)."""

    async def release_slot(self, namespace_id: str, key: str, holder: str) -> None:
        """Give back ``holder``'s slot of ``key`` (no-op if it holds none)."""
