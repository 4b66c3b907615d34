"""Resetting a run (pure): the new run that ResetWorkflowExecution creates from a run's history.

The new run's history starts with the base run's events up to the reset point, copied as they are
(same ids and times). The run's mutable state is rebuilt from those events; the workflow task
pending at that point is failed with cause RESET_WORKFLOW (a WorkflowTaskStarted is written first
when it had not started), signals and updates the base run (and the runs it continued as) received
after the point are applied again unless excluded, pending activities, timers, children and
external requests are dispatched again, and a new workflow task is scheduled, as Temporal's
workflow resetter does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Memo, SearchAttributes
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import (
    ResetReapplyExcludeType,
    ResetReapplyType,
    TaskQueueKind,
    TimeoutType,
    UpdateAdmittedEventOrigin,
)
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import Failure, ResetWorkflowFailureInfo
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.history.v1 import message_pb2 as h

from odin.errors import InvalidArgument
from odin.history import activities, retry, updates
from odin.history.commands import CONCURRENCY_HEADER, _merge
from odin.history.events import attributes_of, reset_points_of, seconds
from odin.history.machine import (
    ACTIVITY_OUTCOMES,
    CHILD_OUTCOMES,
    HISTORY_SERVICE_IDENTITY,
    SIGNAL_REQUEST_ID_WINDOW,
    TransferSpec,
    Transition,
    outcome_scheduled_event_id,
)
from odin.history.state import (
    RUNNING,
    ActivityInfo,
    ChildInfo,
    ExternalRequest,
    MutableState,
    TimerInfo,
    UpdateInfo,
    WorkflowTaskInfo,
    pack,
    unpack,
)
from odin.history.tasks import TimerKind, TransferKind

# Who terminates the run a reset replaces (Temporal's resetter identity).
RESETTER_IDENTITY = "history-resetter"

FINISH_ID_RANGE = "Workflow task finish ID must be > 1 && <= workflow last event ID."

_EXTERNAL_OUTCOMES = {
    E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
    E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
}


@dataclass(frozen=True)
class Reapply:
    """Which events received after the reset point the new run gets again."""

    signals: bool = True
    updates: bool = True

    @classmethod
    def of(cls, reapply_type: int, exclude: Iterable[int]) -> Reapply:
        """Temporal's reading of ``reset_reapply_type`` (deprecated: SIGNAL means signals only, NONE
        nothing, UNSPECIFIED and ALL_ELIGIBLE everything) joined with ``reset_reapply_exclude_types``."""
        excluded = set(exclude)
        if reapply_type == ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL:
            excluded.add(ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE)
        elif reapply_type == ResetReapplyType.RESET_REAPPLY_TYPE_NONE:
            excluded |= {
                ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL,
                ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
            }
        return cls(
            signals=ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL not in excluded,
            updates=ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE not in excluded,
        )


def check_finish_event_id(finish_event_id: int, next_event_id: int) -> None:
    if finish_event_id <= 1 or finish_event_id >= next_event_id:
        raise InvalidArgument(FINISH_ID_RANGE)


def new_run(
    base: MutableState,
    events: list[HistoryEvent],
    *,
    finish_event_id: int,
    new_run_id: str,
    reason: str,
    request_id: str,
    later_events: Iterable[HistoryEvent],
    reapply: Reapply,
    now: datetime,
) -> Transition:
    """The transition that creates the reset run. ``events``: the base run's history from event 1
    (at least up to ``finish_event_id - 1``); ``later_events``: the events after the reset point
    (the base run's, then those of the runs it continued as), looked through for what to reapply."""
    check_finish_event_id(finish_event_id, base.next_event_id)
    kept = [e for e in events if e.event_id < finish_event_id]
    if len(kept) != finish_event_id - 1 or kept[0].event_type != E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        raise ValueError("the base run's events up to the reset point are needed")
    ts = now.timestamp()
    state = _rebuild(base, kept, new_run_id, ts)
    w = state.wft
    if w is None:
        raise InvalidArgument(
            "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: "
            f"{finish_event_id}"
        )
    state.reset_request_id = request_id
    state.original_start_time = base.original_start_time or base.start_time
    state.last_reset_time = ts
    t = Transition(state, now)
    t.events.extend(kept)
    if not w.started_event_id:
        w.started_event_id = state.next_event_id
        w.started_time = ts
        w.identity = HISTORY_SERVICE_IDENTITY
        t.append(
            E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            h.WorkflowTaskStartedEventAttributes(
                scheduled_event_id=w.scheduled_event_id,
                identity=HISTORY_SERVICE_IDENTITY,
                history_size_bytes=state.history_size_bytes,
            ),
        )
    t.append(
        E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        h.WorkflowTaskFailedEventAttributes(
            scheduled_event_id=w.scheduled_event_id,
            started_event_id=w.started_event_id,
            cause=Cause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
            failure=Failure(message=reason, reset_workflow_failure_info=ResetWorkflowFailureInfo()),
            identity=HISTORY_SERVICE_IDENTITY,
            base_run_id=base.run_id,
            new_run_id=new_run_id,
        ),
    )
    state.wft = None
    state.next_wft_attempt = 1
    _dispatch_pending(t)
    t.hold_workflow_task = True
    for event in later_events:
        _reapply(t, event, reapply)
    t.hold_workflow_task = False
    t.wft_needed = False
    t.schedule_workflow_task()
    return t


def _rebuild(base: MutableState, events: list[HistoryEvent], run_id: str, ts: float) -> MutableState:
    """The run's mutable state as of the last of ``events`` (its history from event 1), under a new
    run id; what no event records (parent, root, schedule, timeouts) comes from the base run."""
    started = events[0].workflow_execution_started_event_attributes
    s = MutableState(
        namespace_id=base.namespace_id,
        namespace=base.namespace,
        workflow_id=base.workflow_id,
        run_id=run_id,
        first_execution_run_id=base.first_execution_run_id,
        workflow_type=base.workflow_type,
        task_queue=base.task_queue,
        start_time=ts,
        start_request_id=base.start_request_id,
        workflow_task_timeout=base.workflow_task_timeout,
        run_timeout=base.run_timeout,
        execution_timeout=base.execution_timeout,
        execution_expiration=base.execution_expiration,
        memo=pack(started.memo),
        search_attributes=pack(started.search_attributes),
        parent_workflow_id=base.parent_workflow_id,
        parent_run_id=base.parent_run_id,
        parent_namespace=base.parent_namespace,
        parent_namespace_id=base.parent_namespace_id,
        parent_initiated_event_id=base.parent_initiated_event_id,
        root_workflow_id=base.root_workflow_id,
        root_run_id=base.root_run_id if base.parent_workflow_id else run_id,
        attempt=base.attempt,
        retry_policy=base.retry_policy,
        cron_schedule=base.cron_schedule,
        execution_time=ts,
        scheduled_by=base.scheduled_by,
        user_metadata=base.user_metadata,
        priority=base.priority,
    )
    s.auto_reset_points = reset_points_of(started.prev_auto_reset_points)
    for event in events:
        _fold(s, event)
    s.signal_request_ids = s.signal_request_ids[-SIGNAL_REQUEST_ID_WINDOW:]
    s.next_event_id = events[-1].event_id + 1
    s.history_size_bytes = sum(e.ByteSize() for e in events)
    s.status = RUNNING
    return s


def _fold(s: MutableState, e: HistoryEvent) -> None:
    """Apply one history event to the state being rebuilt."""
    et = e.event_type
    at = e.event_time.ToDatetime().timestamp() if e.HasField("event_time") else 0.0
    if et == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        a = e.workflow_task_scheduled_event_attributes
        sticky = a.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
        s.wft = WorkflowTaskInfo(
            scheduled_event_id=e.event_id,
            attempt=a.attempt or 1,
            queue=a.task_queue.name,
            sticky=sticky,
            scheduled_time=at,
            timeout=seconds(a.start_to_close_timeout) or s.workflow_task_timeout,
        )
    elif et == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        if s.wft is not None:
            b = e.workflow_task_started_event_attributes
            s.wft.started_event_id, s.wft.started_time = e.event_id, at
            s.wft.identity, s.wft.request_id = b.identity, b.request_id
    elif et == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        s.wft = None
        s.last_completed_wft_started_event_id = e.workflow_task_completed_event_attributes.started_event_id
        s.completed_wft_count += 1
        s.next_wft_attempt = 1
        wtc = e.workflow_task_completed_event_attributes
        build_id = wtc.worker_version.build_id or wtc.binary_checksum
        s.last_build_id = build_id or s.last_build_id
        s.note_reset_point(build_id, e.event_id, at)
    elif et in (E.EVENT_TYPE_WORKFLOW_TASK_FAILED, E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
        s.next_wft_attempt = (s.wft.attempt + 1) if s.wft is not None else 1
        s.wft = None
    elif et == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        c = e.activity_task_scheduled_event_attributes
        s.activities[e.event_id] = ActivityInfo(
            scheduled_event_id=e.event_id,
            activity_id=c.activity_id,
            activity_type=c.activity_type.name,
            task_queue=c.task_queue.name,
            attempt=1,
            first_scheduled_time=at,
            scheduled_time=at,
            schedule_to_close=seconds(c.schedule_to_close_timeout),
            schedule_to_start=seconds(c.schedule_to_start_timeout),
            start_to_close=seconds(c.start_to_close_timeout),
            heartbeat=seconds(c.heartbeat_timeout),
            retry=retry.info_of(c.retry_policy),
            priority_key=c.priority.priority_key or s.priority,
        )
        if CONCURRENCY_HEADER in c.header.fields:  # checked when the command was taken
            limit = json.loads(c.header.fields[CONCURRENCY_HEADER].data)
            s.activities[e.event_id].concurrency_key, s.activities[e.event_id].max_concurrency = limit["key"], limit["max"]
    elif et in ACTIVITY_OUTCOMES:
        s.activities.pop(outcome_scheduled_event_id(e), None)
    elif et == E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
        info = s.activities.get(e.activity_task_cancel_requested_event_attributes.scheduled_event_id)
        if info is not None:
            info.cancel_requested, info.cancel_requested_event_id = True, e.event_id
    elif et == E.EVENT_TYPE_TIMER_STARTED:
        d = e.timer_started_event_attributes
        s.timers[d.timer_id] = TimerInfo(d.timer_id, e.event_id, at + seconds(d.start_to_fire_timeout))
    elif et == E.EVENT_TYPE_TIMER_FIRED:
        s.timers.pop(e.timer_fired_event_attributes.timer_id, None)
    elif et == E.EVENT_TYPE_TIMER_CANCELED:
        s.timers.pop(e.timer_canceled_event_attributes.timer_id, None)
    elif et == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        i = e.start_child_workflow_execution_initiated_event_attributes
        s.children[e.event_id] = ChildInfo(e.event_id, i.workflow_id, i.workflow_type.name, i.namespace, i.parent_close_policy)
    elif et == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        g = e.child_workflow_execution_started_event_attributes
        child = s.children.get(g.initiated_event_id)
        if child is not None:
            child.run_id, child.started_event_id = g.workflow_execution.run_id, e.event_id
    elif et in CHILD_OUTCOMES or et == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
        closed: Any = attributes_of(e)
        s.children.pop(closed.initiated_event_id, None)
    elif et == E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        x = e.signal_external_workflow_execution_initiated_event_attributes
        s.external_requests[e.event_id] = ExternalRequest(
            e.event_id, "signal", x.namespace, x.workflow_execution.workflow_id, x.workflow_execution.run_id, x.child_workflow_only
        )
    elif et == E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        y = e.request_cancel_external_workflow_execution_initiated_event_attributes
        s.external_requests[e.event_id] = ExternalRequest(
            e.event_id, "cancel", y.namespace, y.workflow_execution.workflow_id, y.workflow_execution.run_id, y.child_workflow_only
        )
    elif et in _EXTERNAL_OUTCOMES:
        done: Any = attributes_of(e)
        s.external_requests.pop(done.initiated_event_id, None)
    elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        rid = e.workflow_execution_signaled_event_attributes.request_id
        if rid:
            s.signal_request_ids.append(rid)
    elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        s.cancel_requested = True
    elif et == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        merged = unpack(SearchAttributes, s.search_attributes) or SearchAttributes()
        _merge(merged.indexed_fields, e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        s.search_attributes = pack(merged)
    elif et == E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
        memo = unpack(Memo, s.memo) or Memo()
        _merge(memo.fields, e.workflow_properties_modified_event_attributes.upserted_memo.fields)
        s.memo = pack(memo)
    elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
        request = e.workflow_execution_update_admitted_event_attributes.request
        s.update_seq += 1
        s.updates[request.meta.update_id] = UpdateInfo(
            update_id=request.meta.update_id, stage=updates.ADMITTED, seq=s.update_seq, request=pack(request),
            admitted_event_id=e.event_id,
        )
    elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        u = e.workflow_execution_update_accepted_event_attributes
        known = s.updates.get(u.protocol_instance_id)
        if known is None:
            s.update_seq += 1
            known = s.updates[u.protocol_instance_id] = UpdateInfo(update_id=u.protocol_instance_id, stage="", seq=s.update_seq)
        known.stage, known.accepted_event_id, known.request = updates.ACCEPTED, e.event_id, None
    elif et == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        v = e.workflow_execution_update_completed_event_attributes
        done_update = s.updates.get(v.meta.update_id)
        if done_update is not None:
            done_update.stage, done_update.outcome = updates.COMPLETED, pack(v.outcome)


def _dispatch_pending(t: Transition) -> None:
    """Queue again what the rebuilt state has pending: activities (as scheduled now, attempt 1,
    as Temporal's resetter does), timers at their fire times, children not yet started, external
    signals and cancels; and the run's timeout, counted from the reset."""
    s = t.state
    for a in s.activities.values():
        a.scheduled_time = a.first_scheduled_time = t.ts
        activities.dispatch(t, a)
        if a.schedule_to_close:
            activities.arm_timeout(t, a, t.ts + a.schedule_to_close, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)
    for timer in s.timers.values():
        t.timer(TimerKind.USER_TIMER, timer.fire_time, timer_id=timer.timer_id, started_event_id=timer.started_event_id)
    for child in s.children.values():
        if not child.run_id:
            t.transfers.append(TransferSpec(TransferKind.START_CHILD, {"initiated_event_id": child.initiated_event_id}))
    for r in s.external_requests.values():
        t.transfers.append(TransferSpec(TransferKind(f"{r.kind}_external"), {"initiated_event_id": r.initiated_event_id}))
    run_timeout = s.run_timeout
    if s.execution_expiration:
        run_timeout = min(run_timeout or s.execution_expiration - t.ts, max(s.execution_expiration - t.ts, 0.001))
    if run_timeout:
        t.timer(TimerKind.RUN_TIMEOUT, t.ts + run_timeout)


def _reapply(t: Transition, e: HistoryEvent, reapply: Reapply) -> None:
    """One event received after the reset point, given to the new run again when eligible."""
    s = t.state
    et = e.event_type
    if et == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and reapply.signals:
        a = e.workflow_execution_signaled_event_attributes
        t.signal(
            a.signal_name,
            a.input if a.HasField("input") else None,
            a.identity,
            a.header if a.HasField("header") else None,
            a.request_id,
            a.external_workflow_execution if a.HasField("external_workflow_execution") else None,
        )
    elif et in (E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) and reapply.updates:
        # An update goes in again as a WorkflowExecutionUpdateAdmitted event (origin REAPPLY),
        # from its Admitted event, or from its Accepted one when that carries the request.
        if et == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
            request = e.workflow_execution_update_admitted_event_attributes.request
        elif e.workflow_execution_update_accepted_event_attributes.HasField("accepted_request"):
            request = e.workflow_execution_update_accepted_event_attributes.accepted_request
        else:
            return  # its Admitted event came first
        uid = request.meta.update_id
        if uid in s.updates:
            return
        admitted = t.append(
            E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
            h.WorkflowExecutionUpdateAdmittedEventAttributes(
                request=request, origin=UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
            ),
        )
        s.update_seq += 1
        s.updates[uid] = UpdateInfo(
            update_id=uid, stage=updates.ADMITTED, seq=s.update_seq, request=pack(request), admitted_event_id=admitted.event_id
        )
    elif et == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        # A child started before the point but recorded after it: the new run takes it over.
        g = e.child_workflow_execution_started_event_attributes
        child = s.children.get(g.initiated_event_id)
        if child is not None and not child.run_id:
            child.run_id = g.workflow_execution.run_id
            t.deliver(E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, _copy_attributes(e))
            t.transfers = [
                x for x in t.transfers
                if not (x.kind == TransferKind.START_CHILD and x.data.get("initiated_event_id") == g.initiated_event_id)
            ]
    elif et in CHILD_OUTCOMES:
        closed: Any = _copy_attributes(e)
        child = s.children.pop(closed.initiated_event_id, None)
        if child is not None:
            closed.started_event_id = child.started_event_id
            t.deliver(et, closed)


def _copy_attributes(e: HistoryEvent) -> Any:
    attributes = attributes_of(e)
    copy = type(attributes)()
    copy.CopyFrom(attributes)
    return copy
