"""The workflow state machine: pure transitions of one run's mutable state.

A ``Transition`` wraps a ``MutableState`` and the current time. Operations append history events
(assigning contiguous ids, or buffering them while a workflow task is in flight), change the state
and collect the outbox tasks the change implies. The engine persists all of it in one transaction.
No I/O happens here.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

from google.protobuf.message import Message
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import (
    ParentClosePolicy,
    SuggestContinueAsNewReason,
    TaskQueueKind,
    TimeoutType,
    WorkflowTaskFailedCause,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.api.taskqueue.v1 import TaskQueue

from odin.errors import NotFound
from odin.history import updates
from odin.history.events import attributes_of, duration, make_event
from odin.history.state import MutableState, WorkflowTaskInfo
from odin.history.tasks import TimerKind, TransferKind
from odin.history.tokens import WorkflowTaskToken
from odin.history.validation import DEFAULT_CONTINUE_AS_NEW, ContinueAsNewThresholds, SizeLimits
from odin.uuids import uuid7

if TYPE_CHECKING:
    from temporalio.api.common.v1 import Header, Payloads, WorkflowExecution
    from temporalio.api.protocol.v1 import Message as ProtocolMessage

    from odin.history.chains import Successor
    from odin.history.validation import PendingLimits

# How many signal request ids a run remembers for de-duplication.
SIGNAL_REQUEST_ID_WINDOW = 1000
DEFAULT_STICKY_SCHEDULE_TO_START = 10.0

CHILD_OUTCOMES = {
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
}

ACTIVITY_OUTCOMES = {
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


# A run whose history reaches either limit is terminated (Temporal's defaults and wording).
HISTORY_COUNT_LIMIT = 51_200
HISTORY_SIZE_LIMIT = 50 * 1024 * 1024
HISTORY_COUNT_EXCEEDED = "Workflow history count exceeds limit."
HISTORY_SIZE_EXCEEDED = "Workflow history size exceeds limit."
HISTORY_SERVICE_IDENTITY = "history-service"
# From this size on, each workflow task tells the worker to continue as new (Temporal's defaults;
# the SDKs expose it as ``workflow.info().is_continue_as_new_suggested()``).


def outcome_scheduled_event_id(event: HistoryEvent) -> int:
    """The scheduled event id an activity outcome event (one of ``ACTIVITY_OUTCOMES``) names."""
    outcome: Any = attributes_of(event)
    scheduled_event_id: int = outcome.scheduled_event_id
    return scheduled_event_id


class StaleTask(Exception):
    """An outbox task or queue entry that no longer matches the state; dropped without effect."""


@dataclass
class TransferSpec:
    kind: TransferKind
    data: dict[str, Any]


@dataclass
class TimerSpec:
    kind: TimerKind
    fire_at: float
    data: dict[str, Any]


class Transition:
    def __init__(self, state: MutableState, now: datetime):
        self.state = state
        self.now = now
        self.ts = now.timestamp()
        self.events: list[HistoryEvent] = []
        self.transfers: list[TransferSpec] = []
        self.timers: list[TimerSpec] = []
        self.closed = False
        self.wft_needed = False
        # While a completion's commands are applied, new workflow tasks wait until all are done.
        self.hold_workflow_task = False
        # An error for the caller that must not roll the transition back (e.g. UnhandledCommand).
        self.deferred_error: Exception | None = None
        # Runs this transition creates (continue-as-new), committed with it in one transaction.
        self.new_runs: list[Transition] = []
        # A retry/cron successor the engine must create (it needs the run's start event).
        self.successor: Successor | None = None
        # The namespace's settable search attributes (name -> IndexedValueType), for commands
        # that set them; None skips the type checks.
        self.search_attribute_types: dict[str, int] | None = None
        # Protocol messages of the completion being applied (update acceptances, responses...), by id.
        self.protocol_messages: dict[str, ProtocolMessage] = {}
        self.used_messages: set[str] = set()
        self._started_ids: dict[int, int] = {}
        self._child_started_ids: dict[int, int] = {}
        # Eager activity execution: set by the caller to a request id to allow activities that
        # ask for it to start in this transition (handed to the completing worker); their
        # scheduled event ids are collected here.
        # The run's limits on pending activities, children and external signals/cancels (None:
        # the defaults), set by the caller from the namespace's configuration.
        self.pending_limits: PendingLimits | None = None
        # The namespace's payload size limits for commands (None: the defaults), and the payloads
        # found over the warning limit, (what, size, warn limit, error limit), for the caller to log.
        self.size_limits: SizeLimits | None = None
        self.size_warnings: list[tuple[str, int, int, int]] = []
        self.eager_request_id: str | None = None
        self.eager_identity = ""
        self.eager_activities: list[int] = []

    def new_run_id(self) -> str:
        """The id of a run this transition creates (retry, cron or continue-as-new successor): a
        version-7 UUID of the transition's time whose other bits derive from this run's id and
        position, so the core needs no random source."""
        s = self.state
        derived = uuid.uuid5(uuid.NAMESPACE_URL, f"odin:{s.namespace_id}/{s.run_id}/{s.next_event_id}")
        return str(uuid7(int(self.ts * 1000), derived.bytes))

    # -- events ----------------------------------------------------------------------------

    @overload
    def append(self, event_type: E.ValueType, attributes: Message, *, bufferable: Literal[False] = False) -> HistoryEvent: ...

    @overload
    def append(self, event_type: E.ValueType, attributes: Message, *, bufferable: bool) -> HistoryEvent | None: ...

    def append(self, event_type: E.ValueType, attributes: Message, *, bufferable: bool = False) -> HistoryEvent | None:
        """Add an event. Bufferable events wait (no id, None returned) while a workflow task is started."""
        event = make_event(event_type, attributes, self.now)
        s = self.state
        wft = s.wft
        if bufferable and wft is not None and wft.started_event_id:
            s.buffered_events.append(base64.b64encode(event.SerializeToString()).decode())
            return None
        if wft is not None and wft.transient and not wft.started_event_id:
            # New input: the retry becomes a fresh, stored task (attempt 1) after this event.
            s.wft = None
            s.next_wft_attempt = 1
            self.wft_needed = True
        self._assign_id(event)
        return event

    def _assign_id(self, event: HistoryEvent) -> None:
        s = self.state
        event.event_id = s.next_event_id
        s.next_event_id += 1
        if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            a = event.activity_task_started_event_attributes
            self._started_ids[a.scheduled_event_id] = event.event_id
        elif event.event_type in ACTIVITY_OUTCOMES:
            outcome: Any = attributes_of(event)  # each outcome's attributes have scheduled_/started_event_id
            if outcome.scheduled_event_id in self._started_ids:
                outcome.started_event_id = self._started_ids[outcome.scheduled_event_id]
        elif event.event_type == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            initiated = event.child_workflow_execution_started_event_attributes.initiated_event_id
            self._child_started_ids[initiated] = event.event_id
            if initiated in s.children:
                s.children[initiated].started_event_id = event.event_id
        elif event.event_type in CHILD_OUTCOMES:
            closed: Any = attributes_of(event)  # each outcome's attributes have initiated_/started_event_id
            if not closed.started_event_id and closed.initiated_event_id in self._child_started_ids:
                closed.started_event_id = self._child_started_ids[closed.initiated_event_id]
        s.history_size_bytes += event.ByteSize()
        self.events.append(event)

    def set_user_metadata(self, event: HistoryEvent, metadata: UserMetadata) -> None:
        """Attach a start's or a command's user metadata (summary, details) to its event."""
        before = event.ByteSize()
        event.user_metadata.CopyFrom(metadata)
        self.state.history_size_bytes += event.ByteSize() - before

    def take_buffered(self, match: Callable[[HistoryEvent], bool]) -> HistoryEvent | None:
        """Remove and return the first buffered event for which ``match(event)`` is true."""
        for i, raw in enumerate(self.state.buffered_events):
            event = HistoryEvent.FromString(base64.b64decode(raw))
            if match(event):
                del self.state.buffered_events[i]
                return event
        return None

    def has_buffered(self, match: Callable[[HistoryEvent], bool]) -> bool:
        return any(match(HistoryEvent.FromString(base64.b64decode(raw))) for raw in self.state.buffered_events)

    def deliver(self, event_type: E.ValueType, attributes: Message) -> None:
        """Add an event from outside the workflow code (signal, timer, activity outcome...): it is
        buffered while a task runs, and a workflow task is scheduled to deliver it."""
        self.append(event_type, attributes, bufferable=True)
        self.wft_needed = True
        self.finish()

    def flush_buffer(self) -> bool:
        buffered = self.state.buffered_events
        if not buffered:
            return False
        self.state.buffered_events = []
        for raw in buffered:
            self._assign_id(HistoryEvent.FromString(base64.b64decode(raw)))
        return True

    def timer(self, kind: TimerKind, fire_at: float, **data: Any) -> None:
        self.timers.append(TimerSpec(kind, fire_at, data))

    # -- workflow tasks --------------------------------------------------------------------

    def finish(self) -> None:
        """Schedule a workflow task if new events wait for one and none is pending."""
        s = self.state
        if self.hold_workflow_task:
            return
        if s.running and self.wft_needed and s.wft is None and not s.first_wft_backoff:
            self.schedule_workflow_task()
        self.wft_needed = False

    def schedule_workflow_task(self) -> None:
        s = self.state
        sticky = bool(s.sticky_queue)
        queue = s.sticky_queue if sticky else s.task_queue
        w = WorkflowTaskInfo(
            scheduled_event_id=s.next_event_id,
            attempt=s.next_wft_attempt,
            queue=queue,
            sticky=sticky,
            scheduled_time=self.ts,
            timeout=s.workflow_task_timeout,
            transient=s.next_wft_attempt > 1,
        )
        if not w.transient:
            self._assign_id(scheduled_event(s, w))
        s.wft = w
        data: dict[str, Any] = {"scheduled_event_id": w.scheduled_event_id, "queue": queue, "sticky": sticky}
        if s.priority:
            data["priority"] = s.priority
        if s.deployment_build or s.override_behavior:
            data.update(s.routing_data())
        self.transfers.append(TransferSpec(TransferKind.WORKFLOW_TASK, data))
        if sticky:
            self.timer(
                TimerKind.WFT_TIMEOUT,
                self.ts + (s.sticky_schedule_to_start or DEFAULT_STICKY_SCHEDULE_TO_START),
                scheduled_event_id=w.scheduled_event_id,
                started_event_id=0,
                timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            )

    def record_workflow_task_started(
        self,
        scheduled_event_id: int,
        from_sticky: bool,
        identity: str,
        request_id: str,
        thresholds: ContinueAsNewThresholds = DEFAULT_CONTINUE_AS_NEW,
    ) -> WorkflowTaskInfo:
        s = self.state
        w = s.wft
        if not s.running or w is None or w.scheduled_event_id != scheduled_event_id or w.started_event_id:
            raise StaleTask("workflow task is not pending")
        if from_sticky and not s.sticky_queue:
            raise StaleTask("stickiness was cleared")
        if not from_sticky:
            # A normal-queue poller takes over: it gets full history and the run is no longer sticky.
            s.sticky_queue = ""
        # Events may have arrived since a stored task was scheduled; a transient one converts instead.
        w.started_event_id = w.scheduled_event_id + 1 if w.transient else s.next_event_id
        w.started_time = self.ts
        w.identity = identity
        w.request_id = request_id
        w.suggest_continue_as_new = continue_as_new_reasons(s, thresholds)
        if not w.transient:
            self._assign_id(started_event(s, w))
        updates.send(s, w)
        self.timer(
            TimerKind.WFT_TIMEOUT,
            self.ts + w.timeout,
            scheduled_event_id=w.scheduled_event_id,
            started_event_id=w.started_event_id,
            timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
        )
        return w

    def persist_transient_task(self, w: WorkflowTaskInfo) -> None:
        """Write a completing transient attempt's Scheduled/Started events under the promised ids."""
        if w.transient:
            for event in transient_events(self.state, w):
                self._assign_id(event)
            w.transient = False

    def check_workflow_task(self, token: WorkflowTaskToken) -> WorkflowTaskInfo:
        s = self.state
        w = s.wft
        if (
            not s.running
            or w is None
            or w.scheduled_event_id != token.scheduled_event_id
            or w.started_event_id != token.started_event_id
            or w.attempt != token.attempt
            or not w.started_event_id
        ):
            raise NotFound("Workflow task not found.")
        return w

    def fail_workflow_task(
        self, cause: WorkflowTaskFailedCause.ValueType, failure: Failure | None = None, identity: str = ""
    ) -> None:
        """Fail the started workflow task (the caller has checked there is one)."""
        s = self.state
        w = s.wft
        assert w is not None
        if w.transient:  # a failed retry leaves no trace; the attempt count lives in the state
            self._retry_workflow_task(w, keep_attempt=False)
            return
        self._append_workflow_task_failed(w, cause, failure, identity)
        self._retry_workflow_task(w, keep_attempt=w.sticky)

    def _append_workflow_task_failed(
        self, w: WorkflowTaskInfo, cause: WorkflowTaskFailedCause.ValueType, failure: Failure | None, identity: str
    ) -> None:
        self.append(
            E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            h.WorkflowTaskFailedEventAttributes(
                scheduled_event_id=w.scheduled_event_id,
                started_event_id=w.started_event_id,
                cause=cause,
                failure=failure,
                identity=identity,
            ),
        )

    def fail_workflow_task_and_terminate(self, cause: WorkflowTaskFailedCause.ValueType, failure: Failure, identity: str) -> None:
        """Temporal's answer to a command over a size limit: the task fails (no retry is scheduled)
        and the server terminates the run, with the failure's message as the reason."""
        w = self.state.wft
        assert w is not None
        self._append_workflow_task_failed(w, cause, failure, identity)
        self.state.wft = None
        self.terminate(failure.message, None, HISTORY_SERVICE_IDENTITY)

    def time_out_workflow_task(self, scheduled_event_id: int, started_event_id: int, timeout_type: TimeoutType.ValueType) -> None:
        s = self.state
        w = s.wft
        if not s.running or w is None or w.scheduled_event_id != scheduled_event_id:
            raise StaleTask("workflow task already closed")
        if w.started_event_id != started_event_id:
            raise StaleTask("workflow task moved on")
        if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and not w.sticky:
            raise StaleTask("only sticky workflow tasks time out before start")
        keep_attempt = timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
        if w.transient:
            self._retry_workflow_task(w, keep_attempt=keep_attempt)
            return
        self.append(
            E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            h.WorkflowTaskTimedOutEventAttributes(
                scheduled_event_id=w.scheduled_event_id, started_event_id=started_event_id, timeout_type=timeout_type
            ),
        )
        self._retry_workflow_task(w, keep_attempt=keep_attempt)

    def _retry_workflow_task(self, w: WorkflowTaskInfo, keep_attempt: bool) -> None:
        s = self.state
        s.wft = None
        updates.unsend(s)
        s.sticky_queue = ""
        s.next_wft_attempt = w.attempt if keep_attempt else w.attempt + 1
        if self.flush_buffer():
            s.next_wft_attempt = 1
        self.schedule_workflow_task()

    def first_workflow_task_due(self) -> None:
        s = self.state
        if not s.running or not s.first_wft_backoff:
            raise StaleTask("first workflow task already scheduled")
        s.first_wft_backoff = False
        self.schedule_workflow_task()

    # -- workflow-level operations ---------------------------------------------------------

    def signal(
        self,
        signal_name: str,
        payloads: Payloads | None,
        identity: str,
        header: Header | None,
        request_id: str,
        external: WorkflowExecution | None = None,
    ) -> None:
        s = self.state
        if not s.running:
            raise NotFound("workflow execution already completed")
        if request_id and request_id in s.signal_request_ids:
            return
        if request_id:
            s.signal_request_ids = (s.signal_request_ids + [request_id])[-SIGNAL_REQUEST_ID_WINDOW:]
        self.deliver(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            h.WorkflowExecutionSignaledEventAttributes(
                signal_name=signal_name,
                input=payloads,
                identity=identity,
                header=header,
                request_id=request_id,
                external_workflow_execution=external,
            ),
        )

    def request_cancel(
        self, reason: str, identity: str, external_initiated_event_id: int = 0, external: WorkflowExecution | None = None
    ) -> None:
        s = self.state
        if not s.running or s.cancel_requested:
            return  # a closed run, or one asked already: success, nothing changes (as in Temporal)
        s.cancel_requested = True
        self.deliver(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            h.WorkflowExecutionCancelRequestedEventAttributes(
                cause=reason,
                identity=identity,
                external_initiated_event_id=external_initiated_event_id,
                external_workflow_execution=external,
            ),
        )

    def terminate(self, reason: str, details: Payloads | None, identity: str) -> None:
        if not self.state.running:
            raise NotFound("workflow execution already completed")
        self._end_started_task(identity)
        self.close(
            Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            h.WorkflowExecutionTerminatedEventAttributes(reason=reason, details=details, identity=identity),
        )

    def enforce_history_limits(self, count_limit: int, size_limit: int) -> None:
        """Terminate a running run whose history reached its event-count or byte-size limit
        (checked after every change, as Temporal does)."""
        s = self.state
        if not s.running:
            return
        if s.next_event_id - 1 >= count_limit:
            self.terminate(HISTORY_COUNT_EXCEEDED, None, HISTORY_SERVICE_IDENTITY)
        elif s.history_size_bytes >= size_limit:
            self.terminate(HISTORY_SIZE_EXCEEDED, None, HISTORY_SERVICE_IDENTITY)

    def run_timed_out(self) -> None:
        from odin.history import chains

        if not self.state.running:
            raise StaleTask("run already closed")
        self._end_started_task()
        retry_state, nxt = chains.after_failure(self, chains.run_timeout_failure())
        self.close(
            Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
            h.WorkflowExecutionTimedOutEventAttributes(
                retry_state=retry_state, new_execution_run_id=nxt.run_id if nxt else ""
            ),
            continued=nxt is not None,
        )
        self.successor = nxt

    def _end_started_task(self, identity: str = "") -> None:
        """Before the server closes a run: fail a started workflow task, then flush what it buffered,
        so nothing accepted is lost and no event lands between the task's start and its end."""
        s = self.state
        w = s.wft
        if w is not None and w.transient:
            s.wft = None
        elif w is not None and w.started_event_id:
            self.append(
                E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                h.WorkflowTaskFailedEventAttributes(
                    scheduled_event_id=w.scheduled_event_id,
                    started_event_id=w.started_event_id,
                    cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
                    identity=identity,
                ),
            )
            s.wft = None
        self.flush_buffer()

    def close(
        self, status: Status.ValueType, event_type: E.ValueType, attributes: Message, continued: bool = False
    ) -> HistoryEvent:
        """Close the run. ``continued``: a successor run carries the chain on (continue-as-new,
        retry, cron), so a parent hears nothing yet."""
        s = self.state
        s.status = status
        s.close_time = self.ts
        event = self.append(event_type, attributes)
        s.close_event_id = event.event_id
        s.wft = None
        s.activities.clear()
        s.timers.clear()
        s.buffered_events = []
        s.sticky_queue = ""
        # Tasks this transition made for the run are moot now that it is closed.
        self.transfers.clear()
        self.timers.clear()
        self.closed = True
        if s.parent_workflow_id and not continued:
            self.transfers.append(
                TransferSpec(
                    TransferKind.CHILD_CLOSED,
                    {
                        "parent_namespace_id": s.parent_namespace_id,
                        "parent_workflow_id": s.parent_workflow_id,
                        "parent_run_id": s.parent_run_id,
                        "initiated_event_id": s.parent_initiated_event_id,
                        "close_event_id": event.event_id,
                        "first_run_id": s.first_execution_run_id,
                    },
                )
            )
        if s.scheduled_by and not continued:
            self.transfers.append(TransferSpec(TransferKind.SCHEDULE_RUN_CLOSED, {"schedule_id": s.scheduled_by}))
        # Parent close policy: open children are terminated or asked to cancel, unless abandoned.
        affected = [
            {"namespace": c.namespace, "workflow_id": c.workflow_id, "run_id": c.run_id, "policy": c.parent_close_policy}
            for c in s.children.values()
            if c.run_id and c.parent_close_policy != ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON
        ]
        if affected:
            self.transfers.append(TransferSpec(TransferKind.PARENT_CLOSE_POLICY, {"children": affected}))
        s.children.clear()
        s.external_requests.clear()
        updates.close_open(s, continued)
        return event

    # -- user timers -----------------------------------------------------------------------

    def fire_timer(self, timer_id: str, started_event_id: int) -> None:
        s = self.state
        t = s.timers.get(timer_id)
        if not s.running or t is None or t.started_event_id != started_event_id:
            raise StaleTask("timer no longer pending")
        del s.timers[timer_id]
        self.deliver(
            E.EVENT_TYPE_TIMER_FIRED,
            h.TimerFiredEventAttributes(timer_id=timer_id, started_event_id=started_event_id),
        )


def scheduled_event(s: MutableState, w: WorkflowTaskInfo) -> HistoryEvent:
    tq = TaskQueue(
        name=w.queue,
        kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY if w.sticky else TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
        normal_name=s.task_queue if w.sticky else "",
    )
    return make_event(
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        h.WorkflowTaskScheduledEventAttributes(
            task_queue=tq, start_to_close_timeout=duration(w.timeout), attempt=w.attempt
        ),
        w.scheduled_time,
    )


def started_event(s: MutableState, w: WorkflowTaskInfo) -> HistoryEvent:
    return make_event(
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        h.WorkflowTaskStartedEventAttributes(
            scheduled_event_id=w.scheduled_event_id,
            identity=w.identity,
            request_id=w.request_id,
            history_size_bytes=s.history_size_bytes,
            suggest_continue_as_new=bool(w.suggest_continue_as_new),
            suggest_continue_as_new_reasons=w.suggest_continue_as_new,  # type: ignore[arg-type]
        ),
        w.started_time,
    )


def continue_as_new_reasons(s: MutableState, thresholds: ContinueAsNewThresholds) -> list[int]:
    """Why a workflow task started now should suggest continue-as-new (empty: it should not)."""
    reasons: list[int] = []
    if s.history_size_bytes >= thresholds.size:
        reasons.append(SuggestContinueAsNewReason.SUGGEST_CONTINUE_AS_NEW_REASON_HISTORY_SIZE_TOO_LARGE)
    if s.next_event_id - 1 >= thresholds.count:
        reasons.append(SuggestContinueAsNewReason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_HISTORY_EVENTS)
    return reasons


def transient_events(s: MutableState, w: WorkflowTaskInfo) -> list[HistoryEvent]:
    """The not-yet-stored Scheduled/Started events of a started transient task, with their ids."""
    if not w.transient or not w.started_event_id:
        return []
    events = [scheduled_event(s, w), started_event(s, w)]
    events[0].event_id, events[1].event_id = w.scheduled_event_id, w.started_event_id
    return events


# A transition's state and the lengths of what it collected, for ``restore``.
Snapshot = tuple[bytes, int, int, int, dict[int, int], dict[int, int]]


def snapshot(t: Transition) -> Snapshot:
    """Everything needed to roll a transition back to this point (the state as its encoding: cheaper
    to take than a deep copy, and decoded only if the roll-back happens)."""
    return (
        t.state.to_bytes(),
        len(t.events),
        len(t.transfers),
        len(t.timers),
        dict(t._started_ids),
        dict(t._child_started_ids),
    )


def restore(t: Transition, snap: Snapshot) -> None:
    state, n_events, n_transfers, n_timers, started, child_started = snap
    t._child_started_ids = child_started
    t.state = MutableState.from_bytes(state)
    del t.events[n_events:]
    del t.transfers[n_transfers:]
    del t.timers[n_timers:]
    t._started_ids = started
    t.eager_activities = []
    t.new_runs = []
    t.successor = None
    t.closed = False
    t.wft_needed = False
    t.hold_workflow_task = False


def wft_token(state: MutableState, w: WorkflowTaskInfo) -> WorkflowTaskToken:
    return WorkflowTaskToken(
        namespace_id=state.namespace_id,
        workflow_id=state.workflow_id,
        run_id=state.run_id,
        scheduled_event_id=w.scheduled_event_id,
        started_event_id=w.started_event_id,
        attempt=w.attempt,
    )


