"""Mutable state of one workflow run: what the engine must know beyond the history events.

Plain dataclasses, serialised to JSON for the ``workflow_executions.state`` column. Protobuf values
(failures, payloads) are kept as base64 of their serialized bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from google.protobuf.message import Message
from temporalio.api.enums.v1 import WorkflowExecutionStatus

RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
# Temporal's history.historyMaxAutoResetPoints default.
MAX_AUTO_RESET_POINTS = 20

M = TypeVar("M", bound=Message)


def pack(msg: Message | None) -> str | None:
    if msg is None or msg.ByteSize() == 0:
        return None
    return base64.b64encode(msg.SerializeToString()).decode()


def unpack(cls: type[M], data: str | None) -> M | None:
    return None if data is None else cls.FromString(base64.b64decode(data))


@dataclass
class RetryPolicyInfo:
    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval: float = 100.0
    maximum_attempts: int = 0
    non_retryable_error_types: list[str] = field(default_factory=list)


@dataclass
class WorkflowTaskInfo:
    scheduled_event_id: int
    attempt: int
    # Where the task was dispatched; sticky tasks fall back to ``task_queue`` of the run.
    queue: str
    sticky: bool
    scheduled_time: float
    timeout: float
    started_event_id: int = 0
    started_time: float = 0.0
    request_id: str = ""
    identity: str = ""
    # A retry (attempt >= 2) with no new events is transient: its Scheduled/Started events are not
    # stored, only shown to the worker, and written for real only if the attempt completes.
    transient: bool = False
    # Why the started task suggests continue-as-new (SuggestContinueAsNewReason values), decided at start.
    suggest_continue_as_new: list[int] = field(default_factory=list)


@dataclass
class ActivityInfo:
    scheduled_event_id: int
    activity_id: str
    activity_type: str
    task_queue: str
    attempt: int
    first_scheduled_time: float
    scheduled_time: float  # of the current attempt
    schedule_to_close: float
    schedule_to_start: float
    start_to_close: float
    heartbeat: float
    retry: RetryPolicyInfo
    started_time: float = 0.0
    started_identity: str = ""
    request_id: str = ""
    last_heartbeat_time: float = 0.0
    heartbeat_details: str | None = None  # Payloads
    last_failure: str | None = None  # Failure
    last_worker_identity: str = ""
    cancel_requested: bool = False
    cancel_requested_event_id: int = 0
    # Priority key its tasks are queued with: its own, else its workflow's (0: the default);
    # ``priority`` below, once UpdateActivityOptions set it, wins.
    priority_key: int = 0
    # At most max_concurrency attempts with this key run at once in the namespace ("": no limit).
    concurrency_key: str = ""
    max_concurrency: int = 0
    # Paused by an operator (PauseActivity): no attempt is dispatched until unpaused; one that is
    # running finishes, and its heartbeats answer ``activity_paused``.
    paused: bool = False
    pause_time: float = 0.0
    pause_identity: str = ""
    pause_reason: str = ""
    # ResetActivity while an attempt runs: its heartbeats answer ``activity_reset`` until it ends.
    reset_requested: bool = False
    last_attempt_complete_time: float = 0.0  # when the last failed or timed-out attempt ended
    # When the running attempt's start-to-close and heartbeat clocks were last restarted (a reset);
    # 0 means from its start.
    timeouts_from: float = 0.0
    # Options changed by UpdateActivityOptions: the task queue priority (Priority) and, once
    # changed, the options as scheduled (for ``restore_original``).
    priority: str | None = None  # Priority
    original_options: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.started_time > 0


@dataclass
class TimerInfo:
    timer_id: str
    started_event_id: int
    fire_time: float


@dataclass
class ChildInfo:
    """A child workflow this run started (StartChildWorkflowExecution), until its chain closes."""

    initiated_event_id: int
    workflow_id: str
    workflow_type: str
    namespace: str
    parent_close_policy: int
    run_id: str = ""  # set once the child run exists
    started_event_id: int = 0  # id of ChildWorkflowExecutionStarted, once it has one


@dataclass
class ExternalRequest:
    """A SignalExternal/RequestCancelExternal command waiting for its outcome."""

    initiated_event_id: int
    kind: str  # "signal" | "cancel"
    namespace: str
    workflow_id: str
    run_id: str
    child_workflow_only: bool


@dataclass
class UpdateInfo:
    """A workflow update from admission to outcome (kept a while after completion for lookups)."""

    update_id: str
    stage: str  # "admitted" | "sent" | "accepted" | "completed" | "aborted"
    seq: int
    request: str | None = None  # temporal.api.update.v1.Request
    # The workflow task (scheduled event id) that carries the request to the worker.
    sent_in: int = 0
    accepted_event_id: int = 0
    outcome: str | None = None  # temporal.api.update.v1.Outcome
    aborted: str = ""  # why an aborted update ended: "closed" | "continued" | "task_failed"
    # Completed by the run's close (a server failure), not by the worker.
    completed_by_close: bool = False
    # Set when the request is in the history (a WorkflowExecutionUpdateAdmitted event, as a reset
    # writes for an update it applies again): the worker reads it there, not in a message.
    admitted_event_id: int = 0


@dataclass
class ResetPoint:
    """An auto-reset point: the first workflow task a worker build completed in the run."""

    build_id: str
    run_id: str
    first_workflow_task_completed_id: int
    create_time: float


@dataclass
class MutableState:
    namespace_id: str
    namespace: str
    workflow_id: str
    run_id: str
    first_execution_run_id: str
    workflow_type: str
    task_queue: str
    start_time: float
    start_request_id: str
    workflow_task_timeout: float
    run_timeout: float = 0.0
    execution_timeout: float = 0.0
    execution_expiration: float = 0.0  # absolute; carried over by continue-as-new
    status: int = RUNNING
    close_time: float = 0.0
    next_event_id: int = 1
    history_size_bytes: int = 0
    # Build id of the worker that completed the last workflow task (its WorkerVersionStamp).
    last_build_id: str = ""
    wft: WorkflowTaskInfo | None = None
    # ``previous_started_event_id`` of the next poll: the started id of the last completed WFT.
    last_completed_wft_started_event_id: int = 0
    completed_wft_count: int = 0
    # Attempt number the next scheduled WFT gets (grows on failures/timeouts, back to 1 on success).
    next_wft_attempt: int = 1
    sticky_queue: str = ""
    sticky_schedule_to_start: float = 0.0
    buffered_events: list[str] = field(default_factory=list)  # HistoryEvent, no id yet
    activities: dict[int, ActivityInfo] = field(default_factory=dict)
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    signal_request_ids: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    # True while a start delay holds back the first workflow task.
    first_wft_backoff: bool = False
    memo: str | None = None  # Memo
    search_attributes: str | None = None  # SearchAttributes
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    close_event_id: int = 0
    children: dict[int, ChildInfo] = field(default_factory=dict)
    external_requests: dict[int, ExternalRequest] = field(default_factory=dict)
    parent_namespace: str = ""
    parent_namespace_id: str = ""
    parent_initiated_event_id: int = 0
    root_workflow_id: str = ""
    root_run_id: str = ""
    # Attempt of this run in a workflow-retry chain, and the chain's retry policy / cron schedule.
    attempt: int = 1
    retry_policy: str | None = None  # RetryPolicy
    cron_schedule: str = ""
    # When the first workflow task is due (start time plus any start delay / cron / retry backoff).
    execution_time: float = 0.0
    updates: dict[str, UpdateInfo] = field(default_factory=dict)
    update_seq: int = 0
    # The schedule that started this run's chain (its close is reported to the schedule).
    scheduled_by: str = ""
    # The start's user metadata (summary and details, a packed UserMetadata).
    user_metadata: str | None = None
    # The run's priority key (0: the default), inherited by its activities and children.
    priority: int = 0
    # Resets: the run a reset of this one created; for a run a reset created, the reset's request
    # id (a repeated request finds it), when the reset happened and when the run it replaces started.
    reset_run_id: str = ""
    reset_request_id: str = ""
    last_reset_time: float = 0.0
    original_start_time: float = 0.0
    # One reset point per worker build id (the newest MAX_AUTO_RESET_POINTS), as Temporal keeps them.
    auto_reset_points: list[ResetPoint] = field(default_factory=list)
    # The trace the run was started in (a W3C traceparent; "" without tracing): the parent of the
    # spans of every later change to it, carried over to its continue-as-new and retry successors.
    trace_context: str = ""
    # Worker deployments: the version (deployment, build id) whose worker completed the last
    # workflow task and the versioning behaviour it gave (VersioningBehavior: 1 pinned, 2 auto-
    # upgrade; empty for an unversioned worker), and an operator's override (behaviour, and the
    # version a pinned override names).
    deployment: str = ""
    deployment_build: str = ""
    versioning_behavior: int = 0
    override_behavior: int = 0
    override_deployment: str = ""
    override_build: str = ""

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    def note_reset_point(self, build_id: str, completed_event_id: int, ts: float) -> None:
        """A workflow task completed by ``build_id``: the first one of each build is a reset point."""
        if build_id and all(p.build_id != build_id for p in self.auto_reset_points):
            self.auto_reset_points.append(ResetPoint(build_id, self.run_id, completed_event_id, ts))
            del self.auto_reset_points[:-MAX_AUTO_RESET_POINTS]

    def pinned_version(self) -> tuple[str, str] | None:
        """The (deployment, build id) every task of the run must go to, if it is pinned (by an
        override, else by the behaviour its last workflow task completed with)."""
        if self.override_behavior == PINNED:
            return self.override_deployment, self.override_build
        if self.override_behavior == AUTO_UPGRADE or self.versioning_behavior != PINNED or not self.deployment_build:
            return None
        return self.deployment, self.deployment_build

    def routing_data(self) -> dict[str, Any]:
        """What a task's transfer row carries for matching to route it by version: the pinned
        version, else the version the run last ran on (a sticky task whose worker is no longer
        the one new work goes to is sent to the normal queue). Empty for unversioned runs."""
        pinned = self.pinned_version()
        if pinned is not None:
            return {"pin": list(pinned)}
        if self.deployment_build:
            return {"build": [self.deployment, self.deployment_build]}
        return {}

    def activity_by_id(self, activity_id: str) -> ActivityInfo | None:
        return next((a for a in self.activities.values() if a.activity_id == activity_id), None)

    # -- serialization ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        # JSON (orjson encodes the nested dataclasses itself; int keys become strings, as
        # ``from_bytes`` expects). It runs on every change of a run, so its speed counts.
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> MutableState:
        raw: dict[str, Any] = orjson.loads(data)
        wft = raw.pop("wft")
        activities = raw.pop("activities")
        timers = raw.pop("timers")
        children = raw.pop("children", {})
        external = raw.pop("external_requests", {})
        updates = raw.pop("updates", {})
        points = raw.pop("auto_reset_points", [])
        state = cls(**raw)
        state.auto_reset_points = [ResetPoint(**p) for p in points]
        state.updates = {k: UpdateInfo(**v) for k, v in updates.items()}
        state.children = {int(k): ChildInfo(**v) for k, v in children.items()}
        state.external_requests = {int(k): ExternalRequest(**v) for k, v in external.items()}
        state.wft = WorkflowTaskInfo(**wft) if wft else None
        state.activities = {
            int(k): ActivityInfo(**{**v, "retry": RetryPolicyInfo(**v["retry"])}) for k, v in activities.items()
        }
        state.timers = {k: TimerInfo(**v) for k, v in timers.items()}
        return state


# temporal.api.enums.v1.VersioningBehavior
PINNED = 1
AUTO_UPGRADE = 2

