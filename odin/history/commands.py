"""Workflow task completion: validate the worker's commands and turn each into its event (pure)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from temporalio.api.command.v1 import message_pb2 as cmd
from temporalio.api.common.v1 import Memo, Payload, Priority, RetryPolicy, SearchAttributes, WorkflowType
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import (
    ContinueAsNewInitiator,
    TaskQueueKind,
    TimeoutType,
    WorkerVersioningMode,
)
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import Failure, ServerFailureInfo
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)

from odin.errors import InvalidArgument
from odin.history import activities, chains, children, deployments, retry, updates
from odin.history.events import duration, optional_duration, seconds
from odin.history.machine import (
    ACTIVITY_OUTCOMES,
    DEFAULT_STICKY_SCHEDULE_TO_START,
    Transition,
    outcome_scheduled_event_id,
    restore,
    snapshot,
)
from odin.history.start import Continuation, new_run
from odin.history.state import ActivityInfo, MutableState, TimerInfo, WorkflowTaskInfo, pack, unpack
from odin.history.tasks import TimerKind
from odin.history.tokens import WorkflowTaskToken
from odin.history.validation import (
    MAX_ID_LENGTH,
    BadCommand,
    check_id,
    check_pending,
    check_run_options,
    check_search_attribute_sizes,
    check_size,
    checked_search_attributes,
    payload_map_size,
    payloads_map_size,
)

if TYPE_CHECKING:
    from google.protobuf.internal.containers import MessageMap

CLOSE_COMMANDS = {
    C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
    C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
    C.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION,
    C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
}


def complete_workflow_task(t: Transition, token: WorkflowTaskToken, req: RespondWorkflowTaskCompletedRequest) -> None:
    """Apply a completion. Invalid commands fail the task instead; the caller then gets
    ``InvalidArgument`` (raised by the engine after the failure is committed)."""
    w = t.check_workflow_task(token)
    s = t.state
    if s.buffered_events and any(c.command_type in CLOSE_COMMANDS for c in req.commands):
        # New events arrived while the worker decided to close: it must see them first.
        updates.abort_sent(s, w)
        t.fail_workflow_task(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
            Failure(
                message="UnhandledCommand",
                server_failure_info=ServerFailureInfo(non_retryable=False),
            ),
            req.identity,
        )
        t.deferred_error = InvalidArgument("UnhandledCommand")
        return
    snap = snapshot(t)
    try:
        _apply(t, w, req)
    except BadCommand as bad:
        restore(t, snap)
        # The worker saw the updates this task carried: they fail with it rather than go out again.
        updates.abort_sent(t.state, w)
        failure = Failure(message=bad.message, server_failure_info=ServerFailureInfo())
        if bad.terminate and token.attempt == 1:
            t.fail_workflow_task_and_terminate(bad.cause, failure, req.identity)
        else:
            # A retried task (attempt > 1) is never the one that terminates, as in Temporal.
            t.fail_workflow_task(bad.cause, failure, req.identity)
        t.deferred_error = InvalidArgument(bad.message)


def _record_version(s: MutableState, attrs: h.WorkflowTaskCompletedEventAttributes, req: RespondWorkflowTaskCompletedRequest) -> None:
    """The run is now on the completing worker's deployment version with the behaviour it gave
    (or unversioned); the event records both, as Temporal's does."""
    options = req.deployment_options
    before = (s.deployment, s.deployment_build, s.versioning_behavior)
    if options.worker_versioning_mode == WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED and options.build_id:
        s.deployment, s.deployment_build = options.deployment_name, options.build_id
        s.versioning_behavior = req.versioning_behavior
        attrs.versioning_behavior = req.versioning_behavior
        attrs.deployment_version.deployment_name = options.deployment_name
        attrs.deployment_version.build_id = options.build_id
    elif s.deployment_build:
        s.deployment = s.deployment_build = ""
        s.versioning_behavior = 0
    if (s.deployment, s.deployment_build, s.versioning_behavior) != before:
        deployments.version_search_attributes(s)


def _apply(t: Transition, w: WorkflowTaskInfo, req: RespondWorkflowTaskCompletedRequest) -> None:
    s = t.state
    t.persist_transient_task(w)
    attrs = h.WorkflowTaskCompletedEventAttributes(
        scheduled_event_id=w.scheduled_event_id,
        started_event_id=w.started_event_id,
        identity=req.identity,
        sdk_metadata=req.sdk_metadata,
        metering_metadata=req.metering_metadata,
    )
    # The completing worker's build, as Temporal 1.32 records it: a worker version stamp (the
    # deprecated binary checksum, which the temporalio SDK sends its build id in, becomes one).
    build_id = req.deployment_options.build_id or req.worker_version_stamp.build_id or req.binary_checksum
    if build_id:
        attrs.worker_version.build_id = build_id
        attrs.worker_version.use_versioning = req.worker_version_stamp.use_versioning
        s.last_build_id = build_id
    _record_version(s, attrs, req)
    completed = t.append(E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, attrs)
    s.note_reset_point(build_id, completed.event_id, t.ts)
    s.wft = None
    s.last_completed_wft_started_event_id = w.started_event_id
    s.completed_wft_count += 1
    s.next_wft_attempt = 1
    sticky = req.sticky_attributes
    if sticky.worker_task_queue.name:
        s.sticky_queue = sticky.worker_task_queue.name
        s.sticky_schedule_to_start = seconds(sticky.schedule_to_start_timeout) or DEFAULT_STICKY_SCHEDULE_TO_START
    else:
        s.sticky_queue = ""
    t.hold_workflow_task = True
    t.eager_identity = req.identity
    t.protocol_messages = {m.id: m for m in req.messages}
    t.used_messages = set()
    for command in req.commands:
        if not s.running:
            raise BadCommand(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES,
                f"Command {C.Name(command.command_type)} follows a command that closed the workflow.",
            )
        handler = _HANDLERS.get(command.command_type)
        if handler is None:
            raise BadCommand(
                _UNSUPPORTED_CAUSE.get(command.command_type, Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND),
                f"Command {C.Name(command.command_type) if command.command_type in C.values() else command.command_type}"
                " is not supported by this server.",
            )
        field, cause = handler[1], handler[2]
        if command.WhichOneof("attributes") != field:
            raise BadCommand(cause, f"{C.Name(command.command_type)} requires {field}.")
        first = len(t.events)
        handler[0](t, getattr(command, field), completed.event_id)
        if command.HasField("user_metadata") and len(t.events) > first:
            t.set_user_metadata(t.events[first], command.user_metadata)  # on the command's own event
    if s.running:
        updates.finish_task_messages(t, w, t.protocol_messages, t.used_messages, completed.event_id)
    t.hold_workflow_task = False
    if s.running:
        if t.flush_buffer() or req.force_create_new_workflow_task or updates.has_admitted(s):
            t.wft_needed = True
        t.finish()


# -- command handlers ---------------------------------------------------------------------


def _schedule_activity(t: Transition, a: cmd.ScheduleActivityTaskCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    s = t.state
    check_id(a.activity_id, "ActivityId", bad)
    check_id(a.activity_type.name, "ActivityType", bad)
    if s.activity_by_id(a.activity_id) is not None:
        raise BadCommand(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
            f"Activity with id {a.activity_id} is already pending.",
        )
    queue = a.task_queue.name or s.task_queue
    if len(queue.encode()) > MAX_ID_LENGTH:
        raise BadCommand(bad, "TaskQueue exceeds length limit.")
    s2c, s2s = seconds(a.schedule_to_close_timeout), seconds(a.schedule_to_start_timeout)
    stc, hb = seconds(a.start_to_close_timeout), seconds(a.heartbeat_timeout)
    if min(s2c, s2s, stc, hb) < 0:
        raise BadCommand(bad, "A timeout on ScheduleActivityTaskCommand is negative.")
    run = s.run_timeout
    if s2c > 0:
        s2s = min(s2s or s2c, s2c)
        stc = min(stc or s2c, s2c)
    elif stc > 0:
        s2c = run
        s2s = s2s or run
    else:
        raise BadCommand(bad, "A valid StartToClose or ScheduleToCloseTimeout is not set on ScheduleActivityTaskCommand.")
    if run > 0:
        s2c, s2s, stc = (min(x or run, run) for x in (s2c, s2s, stc))
    if stc and hb > stc:
        hb = stc
    try:
        policy = retry.normalize(a.retry_policy if a.HasField("retry_policy") else None)
    except retry.InvalidRetryPolicy as exc:
        raise BadCommand(bad, str(exc)) from exc
    check_size(t, a.input.ByteSize(), "ScheduleActivityTask input", "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.", bad)
    concurrency_key, max_concurrency = _concurrency(a, bad)
    check_pending(t.pending_limits, "activities", len(s.activities))
    event = t.append(
        E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        h.ActivityTaskScheduledEventAttributes(
            activity_id=a.activity_id,
            activity_type=a.activity_type,
            task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            header=a.header,
            input=a.input,
            schedule_to_close_timeout=duration(s2c),
            schedule_to_start_timeout=duration(s2s),
            start_to_close_timeout=duration(stc),
            heartbeat_timeout=duration(hb),
            workflow_task_completed_event_id=completed_id,
            retry_policy=policy,
            priority=a.priority,
        ),
    )
    info = ActivityInfo(
        scheduled_event_id=event.event_id,
        activity_id=a.activity_id,
        activity_type=a.activity_type.name,
        task_queue=queue,
        attempt=1,
        first_scheduled_time=t.ts,
        scheduled_time=t.ts,
        schedule_to_close=s2c,
        schedule_to_start=s2s,
        start_to_close=stc,
        heartbeat=hb,
        retry=retry.info_of(policy),
        priority_key=a.priority.priority_key or s.priority,
        concurrency_key=concurrency_key,
        max_concurrency=max_concurrency,
    )
    s.activities[event.event_id] = info
    # An activity with a concurrency key must take its slot in matching: never started eagerly.
    eager = a.request_eager_execution and not concurrency_key
    if eager and t.eager_request_id is not None and _eager_allowed(t, queue):
        # Started here and handed to the completing worker: no queue round trip.
        activities.record_started(t, info.scheduled_event_id, 1, t.eager_identity, f"{t.eager_request_id}-{event.event_id}")
        t.eager_activities.append(event.event_id)
    else:
        activities.dispatch(t, info)
    if s2c:
        activities.arm_timeout(t, info, t.ts + s2c, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)


# At most this many activities start eagerly per workflow task completion (as Temporal's default).
MAX_EAGER_ACTIVITIES = 3


# The header an activity's concurrency limit rides in (Odin's SDK sets it): JSON {"key": str, "max": int}.
CONCURRENCY_HEADER = "odin-concurrency"


def _concurrency(a: cmd.ScheduleActivityTaskCommandAttributes, bad: Cause.ValueType) -> tuple[str, int]:
    """The concurrency key and limit an activity's header asks for ("", 0: none)."""
    if CONCURRENCY_HEADER not in a.header.fields:
        return "", 0
    message = f"Header {CONCURRENCY_HEADER} must be JSON {{\"key\": a non-empty string, \"max\": a positive integer}}."
    try:
        spec = json.loads(a.header.fields[CONCURRENCY_HEADER].data)
        key, limit = spec["key"], spec["max"]
    except (ValueError, KeyError, TypeError):
        raise BadCommand(bad, message) from None
    if not isinstance(key, str) or not key or len(key) > MAX_ID_LENGTH:
        raise BadCommand(bad, message)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadCommand(bad, message)
    return key, limit


def _eager_allowed(t: Transition, queue: str) -> bool:
    """Only activities on the workflow's own task queue, whose worker is the one completing."""
    return queue == t.state.task_queue and len(t.eager_activities) < MAX_EAGER_ACTIVITIES


def _request_cancel_activity(t: Transition, a: cmd.RequestCancelActivityTaskCommandAttributes, completed_id: int) -> None:
    s = t.state
    info = s.activities.get(a.scheduled_event_id)
    if info is None and t.has_buffered(
        lambda e: e.event_type in ACTIVITY_OUTCOMES and outcome_scheduled_event_id(e) == a.scheduled_event_id
    ):
        # The activity finished while this task ran; its buffered outcome is delivered next.
        t.append(
            E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
            h.ActivityTaskCancelRequestedEventAttributes(
                scheduled_event_id=a.scheduled_event_id, workflow_task_completed_event_id=completed_id
            ),
        )
        return
    if info is None:
        raise BadCommand(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
            f"No pending activity with scheduled event id {a.scheduled_event_id}.",
        )
    requested = t.append(
        E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
        h.ActivityTaskCancelRequestedEventAttributes(
            scheduled_event_id=a.scheduled_event_id, workflow_task_completed_event_id=completed_id
        ),
    )
    info.cancel_requested = True
    info.cancel_requested_event_id = requested.event_id
    if not info.started:
        # Not running anywhere (queued, or waiting for a retry): cancelled at once.
        activities.canceled(t, info, None, "")


def _start_timer(t: Transition, a: cmd.StartTimerCommandAttributes, completed_id: int) -> None:
    s = t.state
    check_id(a.timer_id, "TimerId", Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES)
    if a.timer_id in s.timers:
        raise BadCommand(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID, f"Timer with id {a.timer_id} is already pending."
        )
    fire_in = seconds(a.start_to_fire_timeout)
    if fire_in < 0:
        raise BadCommand(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
            "BadStartTimerAttributes: An invalid StartToFireTimeout is set on StartTimerCommand: negative duration."
            f" TimerId={a.timer_id}",
        )
    # A zero (or unset) duration is a timer due at once, as in Temporal: started, then fired.
    event = t.append(
        E.EVENT_TYPE_TIMER_STARTED,
        h.TimerStartedEventAttributes(
            timer_id=a.timer_id, start_to_fire_timeout=a.start_to_fire_timeout, workflow_task_completed_event_id=completed_id
        ),
    )
    s.timers[a.timer_id] = TimerInfo(a.timer_id, event.event_id, t.ts + fire_in)
    t.timer(TimerKind.USER_TIMER, t.ts + fire_in, timer_id=a.timer_id, started_event_id=event.event_id)


def _cancel_timer(t: Transition, a: cmd.CancelTimerCommandAttributes, completed_id: int) -> None:
    s = t.state
    timer = s.timers.pop(a.timer_id, None)
    if timer is not None:
        started_event_id = timer.started_event_id
    else:
        # A timer that fired while this task ran is still cancellable: its TimerFired is dropped.
        fired = t.take_buffered(
            lambda e: e.event_type == E.EVENT_TYPE_TIMER_FIRED and e.timer_fired_event_attributes.timer_id == a.timer_id
        )
        if fired is None:
            raise BadCommand(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES, f"No pending timer with id {a.timer_id}."
            )
        started_event_id = fired.timer_fired_event_attributes.started_event_id
    t.append(
        E.EVENT_TYPE_TIMER_CANCELED,
        h.TimerCanceledEventAttributes(
            timer_id=a.timer_id, started_event_id=started_event_id, workflow_task_completed_event_id=completed_id
        ),
    )


def _complete(t: Transition, a: cmd.CompleteWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    # Temporal names the activity cause here (its code does; read off Temporal Server 1.32).
    check_size(
        t, a.result.ByteSize(), "CompleteWorkflowExecution result",
        "CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit.",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    )
    nxt = chains.after_completion(t, a.result)
    t.close(
        Status.WORKFLOW_EXECUTION_STATUS_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        h.WorkflowExecutionCompletedEventAttributes(
            result=a.result, workflow_task_completed_event_id=completed_id, new_execution_run_id=nxt.run_id if nxt else ""
        ),
        continued=nxt is not None,
    )
    t.successor = nxt


def _fail(t: Transition, a: cmd.FailWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    check_size(
        t, a.failure.ByteSize(), "FailWorkflowExecution failure",
        "FailWorkflowExecutionCommandAttributes.Failure exceeds size limit.",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
    )
    retry_state, nxt = chains.after_failure(t, a.failure)
    t.close(
        Status.WORKFLOW_EXECUTION_STATUS_FAILED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        h.WorkflowExecutionFailedEventAttributes(
            failure=a.failure,
            retry_state=retry_state,
            workflow_task_completed_event_id=completed_id,
            new_execution_run_id=nxt.run_id if nxt else "",
        ),
        continued=nxt is not None,
    )
    t.successor = nxt


def _cancel(t: Transition, a: cmd.CancelWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    t.close(
        Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        h.WorkflowExecutionCanceledEventAttributes(details=a.details, workflow_task_completed_event_id=completed_id),
    )


def _record_marker(t: Transition, a: cmd.RecordMarkerCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES
    check_id(a.marker_name, "MarkerName", bad)
    check_size(t, payloads_map_size(a.details), "RecordMarker details", "RecordMarkerCommandAttributes.Details exceeds size limit.", bad)
    t.append(
        E.EVENT_TYPE_MARKER_RECORDED,
        h.MarkerRecordedEventAttributes(
            marker_name=a.marker_name,
            details=a.details,
            header=a.header if a.HasField("header") else None,
            # An absent failure must stay absent: a present one marks e.g. a failed local activity.
            failure=a.failure if a.HasField("failure") else None,
            workflow_task_completed_event_id=completed_id,
        ),
    )


def _merge(target: MessageMap[str, Payload], updates: Mapping[str, Payload]) -> None:
    """Merge a payload map; an empty, ``null`` or ``[]`` payload removes the key."""
    for name, payload in updates.items():
        if payload.data in (b"", b"null", b"[]"):
            target.pop(name, None)
        else:
            target[name].CopyFrom(payload)


def _upsert_search_attributes(t: Transition, a: cmd.UpsertWorkflowSearchAttributesCommandAttributes, completed_id: int) -> None:
    s = t.state
    checked = checked_search_attributes(t, a.search_attributes)
    check_size(
        t, payload_map_size(a.search_attributes.indexed_fields), "UpsertWorkflowSearchAttributes search attributes",
        "UpsertWorkflowSearchAttributesCommandAttributes exceeds size limit.", Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES,
    )
    merged = unpack(SearchAttributes, s.search_attributes) or SearchAttributes()
    _merge(merged.indexed_fields, checked.indexed_fields)
    check_search_attribute_sizes(merged, Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES)
    s.search_attributes = pack(merged)
    t.append(
        E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        h.UpsertWorkflowSearchAttributesEventAttributes(
            search_attributes=checked, workflow_task_completed_event_id=completed_id
        ),
    )


def _modify_properties(t: Transition, a: cmd.ModifyWorkflowPropertiesCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES
    s = t.state
    check_size(
        t, payload_map_size(a.upserted_memo.fields), "ModifyWorkflowProperties memo",
        "ModifyWorkflowPropertiesCommandAttributes exceeds size limit.", bad,
    )
    merged = unpack(Memo, s.memo) or Memo()
    _merge(merged.fields, a.upserted_memo.fields)
    # The memo as it would be after the change is held to the memo limits too.
    check_size(
        t, merged.ByteSize(), "ModifyWorkflowProperties merged memo",
        "ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit.", bad, memo=True,
    )
    s.memo = pack(merged)
    t.append(
        E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
        h.WorkflowPropertiesModifiedEventAttributes(
            upserted_memo=a.upserted_memo, workflow_task_completed_event_id=completed_id
        ),
    )


def _continue_as_new(t: Transition, a: cmd.ContinueAsNewWorkflowExecutionCommandAttributes, completed_id: int) -> None:
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES
    s = t.state
    workflow_type = a.workflow_type.name or s.workflow_type
    task_queue = a.task_queue.name or s.task_queue
    for value, what in ((workflow_type, "WorkflowType"), (task_queue, "TaskQueue")):
        if len(value.encode()) > MAX_ID_LENGTH:
            raise BadCommand(bad, f"{what} exceeds length limit.")
    check_run_options(
        a,
        (a.workflow_run_timeout, a.workflow_task_timeout, a.backoff_start_interval),
        bad,
        "ContinueAsNewWorkflowExecutionCommand",
    )
    search = checked_search_attributes(t, a.search_attributes) if a.HasField("search_attributes") else None
    # Temporal's messages, with their odd spaces (read off Temporal Server 1.32).
    check_size(
        t, a.input.ByteSize(), "ContinueAsNewWorkflowExecution input",
        "ContinueAsNewWorkflowExecutionCommandAttributes. Input exceeds size limit.", bad,
    )
    check_size(
        t, a.memo.ByteSize(), "ContinueAsNewWorkflowExecution memo",
        "ContinueAsNewWorkflowExecutionCommandAttributes. Memo exceeds size limit.", bad, memo=True,
    )
    check_search_attribute_sizes(search, bad)
    run_timeout = seconds(a.workflow_run_timeout) or s.run_timeout
    task_timeout = seconds(a.workflow_task_timeout) or s.workflow_task_timeout
    new_run_id = t.new_run_id()
    request = StartWorkflowExecutionRequest(
        namespace=s.namespace,
        workflow_id=s.workflow_id,
        workflow_type=WorkflowType(name=workflow_type),
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        input=a.input,
        workflow_execution_timeout=optional_duration(s.execution_timeout),
        workflow_run_timeout=optional_duration(run_timeout),
        workflow_task_timeout=duration(task_timeout),
        workflow_start_delay=a.backoff_start_interval,
        header=a.header,
        memo=a.memo if a.HasField("memo") else unpack(Memo, s.memo),
        search_attributes=search if search is not None else unpack(SearchAttributes, s.search_attributes),
        retry_policy=a.retry_policy if a.HasField("retry_policy") else unpack(RetryPolicy, s.retry_policy),
        cron_schedule=a.cron_schedule or s.cron_schedule,
        request_id=f"continue-as-new:{new_run_id}",
        priority=Priority(priority_key=s.priority),
    )
    initiator = a.initiator or ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
    t.close(
        Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        h.WorkflowExecutionContinuedAsNewEventAttributes(
            new_execution_run_id=new_run_id,
            workflow_type=request.workflow_type,
            task_queue=request.task_queue,
            input=a.input,
            workflow_run_timeout=optional_duration(run_timeout),
            workflow_task_timeout=duration(task_timeout),
            workflow_task_completed_event_id=completed_id,
            backoff_start_interval=a.backoff_start_interval,
            initiator=initiator,
            failure=a.failure if a.HasField("failure") else None,
            last_completion_result=a.last_completion_result if a.HasField("last_completion_result") else None,
            header=a.header,
            memo=request.memo,
            search_attributes=request.search_attributes,
        ),
        continued=True,
    )
    t.new_runs.append(
        new_run(
            namespace_id=s.namespace_id,
            namespace=s.namespace,
            run_id=new_run_id,
            request=request,
            now=t.now,
            continuation=Continuation(
                previous_run_id=s.run_id,
                first_execution_run_id=s.first_execution_run_id,
                initiator=initiator,
                execution_expiration=s.execution_expiration,
                last_completion_result=a.last_completion_result if a.HasField("last_completion_result") else None,
                failure=a.failure if a.HasField("failure") else None,
                parent=chains.parent_of(s),
                reset_points=s.auto_reset_points,
                # A pinned run's successor on the same queue stays on its version (as Temporal's).
                pinned=s.pinned_version() if request.task_queue.name == s.task_queue else None,
            ),
            scheduled_by=s.scheduled_by,
        )
    )


def _protocol_message(t: Transition, a: cmd.ProtocolMessageCommandAttributes, completed_id: int) -> None:
    message = t.protocol_messages.get(a.message_id)
    if message is None or a.message_id in t.used_messages:
        raise BadCommand(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
            f"ProtocolMessageCommand names message {a.message_id!r}, which the completion does not carry (or names twice).",
        )
    t.used_messages.add(a.message_id)
    updates.apply_message(t, message, completed_id)


# (handler, the command's attributes field, the cause a bad command fails the task with); the
# handler gets that field's message, whose type depends on the command.
Handler = tuple[Callable[[Transition, Any, int], None], str, Cause.ValueType]

_HANDLERS: dict[C.ValueType, Handler] = {
    C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: (
        _schedule_activity,
        "schedule_activity_task_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: (
        _request_cancel_activity,
        "request_cancel_activity_task_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_START_TIMER: (
        _start_timer,
        "start_timer_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_CANCEL_TIMER: (
        _cancel_timer,
        "cancel_timer_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: (
        _complete,
        "complete_workflow_execution_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION: (
        _fail,
        "fail_workflow_execution_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION: (
        _cancel,
        "cancel_workflow_execution_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_WORKFLOW_EXECUTION_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_RECORD_MARKER: (
        _record_marker,
        "record_marker_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: (
        _upsert_search_attributes,
        "upsert_workflow_search_attributes_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: (
        _continue_as_new,
        "continue_as_new_workflow_execution_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES,
    ),
    C.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: (
        _modify_properties,
        "modify_workflow_properties_command_attributes",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
    ),
}

_HANDLERS.update(
    {
        C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: (
            children.start_child,
            "start_child_workflow_execution_command_attributes",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES,
        ),
        C.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: (
            children.signal_external,
            "signal_external_workflow_execution_command_attributes",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
        ),
        C.COMMAND_TYPE_PROTOCOL_MESSAGE: (
            _protocol_message,
            "protocol_message_command_attributes",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
        ),
        C.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: (
            children.request_cancel_external,
            "request_cancel_external_workflow_execution_command_attributes",
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
        ),
    }
)

# Commands this server does not carry out yet fail the task with the cause naming them.
_UNSUPPORTED_CAUSE = {
    C.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION: Cause.WORKFLOW_TASK_FAILED_CAUSE_FEATURE_DISABLED,
    C.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION: Cause.WORKFLOW_TASK_FAILED_CAUSE_FEATURE_DISABLED,
}
