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

    async def poll(self, namespace_id: str, queue: str, task_type: str, timeout: float, identity: str) -> TaskEntry | None:
        """Wait up to ``timeout`` seconds for an entry; None when none came."""

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
        """Remove and return every queued entry (used to move a dead sticky queue's tasks)."""
