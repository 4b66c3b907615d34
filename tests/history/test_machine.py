"""Unit tests of the pure workflow state machine (``odin.history``), without any server.

Each step builds a fresh ``Transition`` on the run's state, like the engine does: the state is
re-loaded from its serialized bytes for every step and only kept when the step returns normally
(an exception such as ``StaleTask`` discards the step, as the engine discards the transaction).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from builders import cancel_timer, dur, request_cancel_activity, start_timer
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    RecordMarkerCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
)
from temporalio.api.common.v1 import (
    ActivityType,
    Memo,
    Payload,
    Payloads,
    Priority,
    RetryPolicy,
    SearchAttributes,
    WorkflowType,
)
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import RetryState, TaskQueueKind, TimeoutType
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import (
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)

from odin.errors import InvalidArgument, NotFound
from odin.history import activities, commands
from odin.history.machine import (
    StaleTask,
    TimerSpec,
    TransferSpec,
    Transition,
    transient_events,
    wft_token,
)
from odin.history.start import new_run
from odin.history.state import MutableState, unpack
from odin.history.tokens import ActivityTaskToken

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS0 = T0.timestamp()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def payloads(text: str) -> Payloads:
    return Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())])


def names(events) -> list[str]:
    return [E.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


def ids(events) -> list[int]:
    return [e.event_id for e in events]


def app_failure(message: str, type_: str = "AppError", non_retryable: bool = False) -> Failure:
    return Failure(
        message=message, application_failure_info=ApplicationFailureInfo(type=type_, non_retryable=non_retryable)
    )


def start_request(**overrides) -> StartWorkflowExecutionRequest:
    fields = dict(
        namespace="default",
        workflow_id="wf-1",
        workflow_type=WorkflowType(name="Greeter"),
        task_queue=TaskQueue(name="tq"),
        request_id="start-1",
        identity="client",
    )
    fields.update(overrides)
    return StartWorkflowExecutionRequest(**fields)


# -- commands ------------------------------------------------------------------------------


def schedule_activity(
    activity_id: str = "a1",
    activity_type: str = "Act",
    *,
    start_to_close: float = 0.0,
    schedule_to_close: float = 0.0,
    schedule_to_start: float = 0.0,
    heartbeat: float = 0.0,
    retry_policy: RetryPolicy | None = None,
    priority: int = 0,
    concurrency: bytes | None = None,
) -> Command:
    a = ScheduleActivityTaskCommandAttributes(activity_id=activity_id, activity_type=ActivityType(name=activity_type))
    if priority:
        a.priority.priority_key = priority
    if concurrency is not None:
        a.header.fields[commands.CONCURRENCY_HEADER].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=concurrency))
    if start_to_close:
        a.start_to_close_timeout.CopyFrom(dur(start_to_close))
    if schedule_to_close:
        a.schedule_to_close_timeout.CopyFrom(dur(schedule_to_close))
    if schedule_to_start:
        a.schedule_to_start_timeout.CopyFrom(dur(schedule_to_start))
    if heartbeat:
        a.heartbeat_timeout.CopyFrom(dur(heartbeat))
    if retry_policy is not None:
        a.retry_policy.CopyFrom(retry_policy)
    return Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, schedule_activity_task_command_attributes=a)


def record_marker(name: str = "m1") -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_RECORD_MARKER,
        record_marker_command_attributes=RecordMarkerCommandAttributes(
            marker_name=name, details={"data": payloads("x")}
        ),
    )


def complete_workflow(result: str = "done") -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(
            result=payloads(result)
        ),
    )


# -- a run driven like the engine drives it ----------------------------------------------------


class Run:
    def __init__(self, request: StartWorkflowExecutionRequest | None = None, now: float = 0.0):
        self.now = now
        t = new_run(
            namespace_id="ns-id", namespace="default", run_id="run-1", request=request or start_request(), now=at(now)
        )
        self.first = t
        self.state: MutableState = t.state
        self.history = list(t.events)
        self.last: Transition = t
        self.result = None

    def step(self, op, now: float | None = None) -> Transition:
        """One engine update: load the state from its bytes, apply ``op``, keep it if ``op`` returned."""
        if now is not None:
            self.now = now
        state = MutableState.from_bytes(self.state.to_bytes())
        t = Transition(state, at(self.now))
        self.result = op(t)
        self.state = t.state
        self.history.extend(t.events)
        self.last = t
        return t

    # workflow tasks
    def start_wft(self, now: float | None = None, sticky: bool = False) -> Transition:
        scheduled = self.state.wft.scheduled_event_id
        return self.step(lambda t: t.record_workflow_task_started(scheduled, sticky, "worker-1", "poll-1"), now)

    def token(self):
        return wft_token(self.state, self.state.wft)

    def complete(self, *cmds: Command, now: float | None = None, token=None, **request_fields) -> Transition:
        token = token or self.token()
        req = RespondWorkflowTaskCompletedRequest(commands=list(cmds), identity="worker-1", **request_fields)
        return self.step(lambda t: commands.complete_workflow_task(t, token, req), now)

    def task(self, *cmds: Command, now: float | None = None, **request_fields) -> Transition:
        """Start the pending workflow task and complete it with ``cmds``."""
        self.start_wft(now)
        return self.complete(*cmds, now=now, **request_fields)

    # workflow-level
    def signal(self, name: str = "sig", request_id: str = "", now: float | None = None) -> Transition:
        return self.step(lambda t: t.signal(name, payloads(name), "client", None, request_id), now)

    def terminate(self, now: float | None = None) -> Transition:
        return self.step(lambda t: t.terminate("stop it", payloads("why"), "admin"), now)

    def fire_timer(self, timer_id: str, started_event_id: int | None = None, now: float | None = None) -> Transition:
        if started_event_id is None:
            started_event_id = self.state.timers[timer_id].started_event_id
        return self.step(lambda t: t.fire_timer(timer_id, started_event_id), now)

    # activities
    def activity_token(self, scheduled_event_id: int) -> ActivityTaskToken:
        a = self.state.activities[scheduled_event_id]
        return ActivityTaskToken("ns-id", "wf-1", "run-1", scheduled_event_id, a.activity_id, a.attempt)

    def activity_started(
        self, scheduled_event_id: int, attempt: int | None = None, now: float | None = None
    ) -> Transition:
        if attempt is None:
            attempt = self.state.activities[scheduled_event_id].attempt
        return self.step(
            lambda t: activities.record_started(t, scheduled_event_id, attempt, "act-worker", "act-poll"), now
        )

    def activity_completed(self, scheduled_event_id: int, now: float | None = None) -> Transition:
        token = self.activity_token(scheduled_event_id)
        return self.step(
            lambda t: activities.completed(t, activities.for_token(t, token), payloads("result"), "act-worker"), now
        )

    def activity_failed(
        self, scheduled_event_id: int, failure: Failure, now: float | None = None, details=None
    ) -> Transition:
        token = self.activity_token(scheduled_event_id)
        return self.step(
            lambda t: activities.failed(
                t, activities.for_token(t, token), failure, "act-worker", details or Payloads()
            ),
            now,
        )

    def activity_canceled(self, scheduled_event_id: int, now: float | None = None) -> Transition:
        token = self.activity_token(scheduled_event_id)
        return self.step(
            lambda t: activities.canceled(t, activities.for_token(t, token), payloads("bye"), "act-worker"), now
        )

    def heartbeat(
        self, scheduled_event_id: int, details: Payloads | None = None, now: float | None = None
    ) -> Transition:
        token = self.activity_token(scheduled_event_id)
        return self.step(lambda t: activities.heartbeat(t, activities.for_token(t, token), details or Payloads()), now)

    def activity_timeout(
        self, scheduled_event_id: int, attempt: int, timeout_type: int, now: float | None = None
    ) -> Transition:
        return self.step(lambda t: activities.timed_out(t, scheduled_event_id, attempt, timeout_type), now)

    def retry_due(self, scheduled_event_id: int, attempt: int, now: float | None = None) -> Transition:
        return self.step(lambda t: activities.retry_due(t, scheduled_event_id, attempt), now)


def assert_contiguous(run: Run) -> None:
    assert ids(run.history) == list(range(1, len(run.history) + 1))
    assert run.state.next_event_id == len(run.history) + 1


def with_activity(*, retry_policy: RetryPolicy | None = None, **timeouts) -> tuple[Run, int]:
    """A run whose first workflow task scheduled activity ``a1``; returns it and the scheduled id."""
    run = Run()
    timeouts.setdefault("start_to_close", 10.0)
    run.task(schedule_activity("a1", retry_policy=retry_policy, **timeouts))
    [scheduled] = [e for e in run.history if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    return run, scheduled.event_id


def policy(initial: float = 1.0, coefficient: float = 2.0, maximum_attempts: int = 0, **kw) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=dur(initial), backoff_coefficient=coefficient, maximum_attempts=maximum_attempts, **kw
    )


# == starting a run ==========================================================================


def test_new_run_writes_started_and_first_workflow_task():
    run = Run()
    t = run.first
    assert names(t.events) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    assert ids(t.events) == [1, 2]
    started = t.events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "Greeter"
    assert started.task_queue.name == "tq"
    assert started.attempt == 1
    assert started.original_execution_run_id == "run-1"
    scheduled = t.events[1].workflow_task_scheduled_event_attributes
    assert scheduled.attempt == 1
    assert scheduled.task_queue.name == "tq"
    assert scheduled.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    assert t.transfers == [TransferSpec("workflow_task", {"scheduled_event_id": 2, "queue": "tq", "sticky": False})]
    assert t.timers == []  # no run timeout, no start delay
    s = t.state
    assert s.running and s.next_event_id == 3
    assert s.wft.scheduled_event_id == 2 and s.wft.started_event_id == 0 and s.wft.attempt == 1
    assert s.workflow_task_timeout == 10.0


def test_new_run_timeouts_cap_the_workflow_task_timeout_and_arm_the_run_timer():
    run = Run(start_request(workflow_run_timeout=dur(5), workflow_task_timeout=dur(30)))
    t = run.first
    assert t.state.run_timeout == 5.0
    assert t.state.workflow_task_timeout == 5.0
    assert TimerSpec("run_timeout", TS0 + 5, {}) in t.timers


def test_start_delay_holds_back_the_first_workflow_task():
    run = Run(start_request(workflow_start_delay=dur(60)))
    t = run.first
    assert names(t.events) == ["WORKFLOW_EXECUTION_STARTED"]
    assert t.events[0].workflow_execution_started_event_attributes.first_workflow_task_backoff.seconds == 60
    assert t.timers == [TimerSpec("first_wft", TS0 + 60, {})]
    assert t.transfers == []
    # A signal during the delay is recorded but does not schedule a task early.
    t = run.signal(now=10)
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED"]
    assert run.state.wft is None
    t = run.step(lambda t: t.first_workflow_task_due(), now=60)
    assert names(t.events) == ["WORKFLOW_TASK_SCHEDULED"]
    assert [x.kind for x in t.transfers] == ["workflow_task"]
    with pytest.raises(StaleTask):
        run.step(lambda t: t.first_workflow_task_due())
    assert_contiguous(run)


# == workflow tasks ==========================================================================


def test_record_workflow_task_started_and_stale_starts():
    run = Run()
    t = run.start_wft(now=1)
    assert names(t.events) == ["WORKFLOW_TASK_STARTED"]
    assert t.events[0].event_id == 3
    a = t.events[0].workflow_task_started_event_attributes
    assert a.scheduled_event_id == 2 and a.identity == "worker-1" and a.request_id == "poll-1"
    assert run.state.wft.started_event_id == 3
    assert t.timers == [
        TimerSpec(
            "wft_timeout",
            TS0 + 1 + 10,
            {"scheduled_event_id": 2, "started_event_id": 3, "timeout_type": TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE},
        )
    ]
    with pytest.raises(StaleTask):  # already started
        run.start_wft()
    with pytest.raises(StaleTask):  # not the pending task
        run.step(lambda t: t.record_workflow_task_started(99, False, "w", "r"))
    assert run.state.next_event_id == 4


def test_complete_with_activity_timer_and_marker_commands():
    run = Run()
    run.start_wft(now=1)
    t = run.complete(schedule_activity("a1", start_to_close=10), start_timer("t1", 30), record_marker("m1"), now=2)
    assert names(t.events) == [
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_SCHEDULED",
        "TIMER_STARTED",
        "MARKER_RECORDED",
    ]
    assert ids(t.events) == [4, 5, 6, 7]
    completed = t.events[0].workflow_task_completed_event_attributes
    assert (completed.scheduled_event_id, completed.started_event_id, completed.identity) == (2, 3, "worker-1")
    sched = t.events[1].activity_task_scheduled_event_attributes
    assert sched.activity_id == "a1" and sched.activity_type.name == "Act"
    assert sched.workflow_task_completed_event_id == 4
    assert sched.task_queue.name == "tq"  # defaults to the run's queue
    assert sched.retry_policy.initial_interval.seconds == 1  # defaults filled in
    assert sched.retry_policy.backoff_coefficient == 2.0
    assert t.events[2].timer_started_event_attributes.timer_id == "t1"
    assert t.events[2].timer_started_event_attributes.workflow_task_completed_event_id == 4
    assert t.events[3].marker_recorded_event_attributes.marker_name == "m1"
    assert t.events[3].marker_recorded_event_attributes.workflow_task_completed_event_id == 4

    assert t.transfers == [TransferSpec("activity_task", {"scheduled_event_id": 5, "attempt": 1, "queue": "tq"})]
    assert TimerSpec("user_timer", TS0 + 2 + 30, {"timer_id": "t1", "started_event_id": 6}) in t.timers
    s = run.state
    assert s.wft is None  # nothing new happened: no further task
    assert s.last_completed_wft_started_event_id == 3
    assert s.completed_wft_count == 1
    assert set(s.activities) == {5} and s.activities[5].attempt == 1 and s.activities[5].start_to_close == 10
    assert s.timers["t1"].started_event_id == 6 and s.timers["t1"].fire_time == TS0 + 32
    assert t.deferred_error is None
    assert_contiguous(run)


def test_priority_and_concurrency_ride_in_the_activity_transfer():
    run = Run(start_request(priority=Priority(priority_key=2)))
    run.start_wft(now=1)
    t = run.complete(
        schedule_activity("a1", start_to_close=10),  # inherits the run's key
        schedule_activity("a2", start_to_close=10, priority=5, concurrency=b'{"key": "customer-1", "max": 2}'),
        now=2,
    )
    assert run.state.priority == 2
    assert [x.data for x in t.transfers] == [
        {"scheduled_event_id": 5, "attempt": 1, "queue": "tq", "priority": 2},
        {"scheduled_event_id": 6, "attempt": 1, "queue": "tq", "priority": 5, "concurrency": ["customer-1", 2, 10]},
    ]
    a2 = run.state.activities[6]
    assert (a2.priority_key, a2.concurrency_key, a2.max_concurrency) == (5, "customer-1", 2)
    # Kept across a save and a load.
    again = MutableState.from_bytes(run.state.to_bytes()).activities[6]
    assert (again.priority_key, again.concurrency_key, again.max_concurrency) == (5, "customer-1", 2)


@pytest.mark.parametrize(
    "timeouts, run_timeout, expected",
    [
        # schedule-to-close alone bounds the others
        (dict(schedule_to_close=30), 0, dict(s2c=30, s2s=30, stc=30, hb=0)),
        # start-to-close alone: no overall bound without a run timeout
        (dict(start_to_close=10), 0, dict(s2c=0, s2s=0, stc=10, hb=0)),
        # heartbeat is capped by start-to-close
        (dict(start_to_close=10, heartbeat=60), 0, dict(s2c=0, s2s=0, stc=10, hb=10)),
        # the run timeout caps everything
        (dict(start_to_close=100), 60, dict(s2c=60, s2s=60, stc=60, hb=0)),
        (dict(schedule_to_close=30, start_to_close=50, schedule_to_start=5), 0, dict(s2c=30, s2s=5, stc=30, hb=0)),
    ],
)
def test_activity_timeouts_are_normalized(timeouts, run_timeout, expected):
    request = start_request(workflow_run_timeout=dur(run_timeout)) if run_timeout else start_request()
    run = Run(request)
    t = run.task(schedule_activity("a1", **timeouts))
    a = t.events[1].activity_task_scheduled_event_attributes
    got = dict(
        s2c=a.schedule_to_close_timeout.ToTimedelta().total_seconds(),
        s2s=a.schedule_to_start_timeout.ToTimedelta().total_seconds(),
        stc=a.start_to_close_timeout.ToTimedelta().total_seconds(),
        hb=a.heartbeat_timeout.ToTimedelta().total_seconds(),
    )
    assert got == expected
    info = run.state.activities[a.workflow_task_completed_event_id + 1]
    assert (info.schedule_to_close, info.schedule_to_start, info.start_to_close, info.heartbeat) == (
        expected["s2c"],
        expected["s2s"],
        expected["stc"],
        expected["hb"],
    )


def test_complete_workflow_execution_closes_the_run():
    run = Run()
    t = run.task(complete_workflow("bye"), now=3)
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED"]
    done = t.events[1].workflow_execution_completed_event_attributes
    assert done.workflow_task_completed_event_id == t.events[0].event_id
    assert done.result == payloads("bye")
    s = run.state
    assert s.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert s.close_event_id == t.events[1].event_id
    assert s.close_time == TS0 + 3
    assert t.closed
    assert s.wft is None and t.transfers == []
    with pytest.raises(NotFound):
        run.signal()
    assert_contiguous(run)


def test_empty_completion_schedules_nothing_unless_forced():
    run = Run()
    t = run.task()
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED"]
    assert run.state.wft is None and t.transfers == []
    run.signal()
    t = run.task(force_create_new_workflow_task=True)
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_SCHEDULED"]
    assert run.state.wft.scheduled_event_id == t.events[1].event_id
    assert_contiguous(run)


def test_stale_workflow_task_token_is_not_found():
    run = Run()
    run.start_wft()
    token = run.token()
    run.complete()
    with pytest.raises(NotFound):
        run.complete(token=token)
    run.signal()
    run.start_wft()
    with pytest.raises(NotFound):  # an older task's token does not complete the new one
        run.complete(token=token)
    assert_contiguous(run)


def test_sticky_completion_sends_the_next_task_to_the_sticky_queue():
    run = Run()
    sticky = StickyExecutionAttributes(worker_task_queue=TaskQueue(name="sticky-1"), schedule_to_start_timeout=dur(4))
    run.task(sticky_attributes=sticky, now=1)
    assert run.state.sticky_queue == "sticky-1"
    t = run.signal(now=2)
    sched = t.events[1].workflow_task_scheduled_event_attributes
    assert sched.task_queue.name == "sticky-1"
    assert sched.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
    assert sched.task_queue.normal_name == "tq"
    scheduled_id = t.events[1].event_id
    assert t.transfers == [
        TransferSpec("workflow_task", {"scheduled_event_id": scheduled_id, "queue": "sticky-1", "sticky": True})
    ]
    assert t.timers == [
        TimerSpec(
            "wft_timeout",
            TS0 + 2 + 4,
            {
                "scheduled_event_id": scheduled_id,
                "started_event_id": 0,
                "timeout_type": TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            },
        )
    ]
    # Nobody polled the sticky queue in time: the task moves to the normal queue.
    t = run.step(lambda t: t.time_out_workflow_task(scheduled_id, 0, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START), now=6)
    assert names(t.events) == ["WORKFLOW_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]
    assert t.events[1].workflow_task_scheduled_event_attributes.task_queue.name == "tq"
    assert run.state.sticky_queue == ""
    assert_contiguous(run)


# == signals and buffering ===================================================================


def test_signal_without_task_in_flight_schedules_one():
    run = Run()
    run.task()
    t = run.signal("hello", now=5)
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    assert t.events[0].workflow_execution_signaled_event_attributes.signal_name == "hello"
    assert [x.kind for x in t.transfers] == ["workflow_task"]
    assert_contiguous(run)


def test_signal_while_task_scheduled_is_written_without_a_second_task():
    run = Run()
    t = run.signal()
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED"]
    assert t.events[0].event_id == 3
    assert t.transfers == []
    assert run.state.wft.scheduled_event_id == 2
    assert_contiguous(run)


def test_signals_during_a_started_task_are_buffered_then_flushed_after_the_commands():
    run = Run()
    run.start_wft()
    t1 = run.signal("one")
    t2 = run.signal("two")
    assert t1.events == [] and t2.events == []
    assert t1.transfers == [] and t2.transfers == []
    assert len(run.state.buffered_events) == 2
    assert run.state.next_event_id == 4  # buffered events have no id yet

    t = run.complete(start_timer("t1", 10), record_marker("m"))
    assert names(t.events) == [
        "WORKFLOW_TASK_COMPLETED",
        "TIMER_STARTED",
        "MARKER_RECORDED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    assert ids(t.events) == [4, 5, 6, 7, 8, 9]
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in t.events[3:5]] == ["one", "two"]
    assert run.state.buffered_events == []
    assert run.state.wft.scheduled_event_id == 9 and run.state.wft.attempt == 1
    assert [x.kind for x in t.transfers] == ["workflow_task"]
    assert_contiguous(run)


def test_signal_request_id_deduplicates():
    run = Run()
    run.signal("s", request_id="r-1")
    t = run.signal("s", request_id="r-1")
    assert t.events == []
    t = run.signal("s", request_id="r-2")
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED"]
    assert run.state.signal_request_ids == ["r-1", "r-2"]


def test_close_command_with_buffered_events_fails_with_unhandled_command():
    run = Run()
    run.start_wft()
    scheduled_id, started_id = run.state.wft.scheduled_event_id, run.state.wft.started_event_id
    run.signal("late")
    t = run.complete(start_timer("t1", 10), complete_workflow())
    assert names(t.events) == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    failed = t.events[0].workflow_task_failed_event_attributes
    assert failed.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    assert failed.failure.message == "UnhandledCommand"
    assert (failed.scheduled_event_id, failed.started_event_id) == (scheduled_id, started_id)
    assert isinstance(t.deferred_error, InvalidArgument)
    assert t.deferred_error.message == "UnhandledCommand"
    assert str(t.deferred_error) == "UnhandledCommand"
    s = run.state
    assert s.running and not t.closed
    assert s.timers == {} and s.completed_wft_count == 0  # none of the commands applied
    assert all(x.kind != "user_timer" for x in t.timers)
    assert s.wft is not None and s.wft.scheduled_event_id == t.events[2].event_id and s.wft.started_event_id == 0
    assert s.buffered_events == []
    assert_contiguous(run)


# == bad commands =============================================================================


def _mismatched_attributes() -> Command:
    # START_TIMER carrying a marker's attributes.
    return Command(
        command_type=C.COMMAND_TYPE_START_TIMER,
        record_marker_command_attributes=RecordMarkerCommandAttributes(marker_name="m"),
    )


BAD_COMPLETIONS = {
    "activity without id": (
        [schedule_activity("", start_to_close=10)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity without type": (
        [schedule_activity("a1", "", start_to_close=10)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity without timeouts": (
        [schedule_activity("a1")],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity with invalid retry policy": (
        [schedule_activity("a1", start_to_close=10, retry_policy=policy(coefficient=0.5))],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity with a concurrency header that is not JSON": (
        [schedule_activity("a1", start_to_close=10, concurrency=b"customer-1")],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity with a concurrency limit below 1": (
        [schedule_activity("a1", start_to_close=10, concurrency=b'{"key": "c", "max": 0}')],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "activity with an empty concurrency key": (
        [schedule_activity("a1", start_to_close=10, concurrency=b'{"key": "", "max": 2}')],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
    ),
    "duplicate activity id": (
        [schedule_activity("a1", start_to_close=10), schedule_activity("a1", start_to_close=10)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
    ),
    "duplicate timer id": (
        [start_timer("t1", 5), start_timer("t1", 6)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
    ),
    "timer without id": ([start_timer("", 5)], Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES),
    "timer with a negative timeout": ([start_timer("t1", -1)], Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES),
    "cancel unknown timer": ([cancel_timer("nope")], Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES),
    "cancel unknown activity": (
        [request_cancel_activity(42)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
    ),
    "marker without name": ([record_marker("")], Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES),
    "attributes of another command": (
        [_mismatched_attributes()],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
    ),
    # Good commands before the bad one must be rolled back too.
    "good commands then a bad one": (
        [start_timer("t1", 5), schedule_activity("a1", start_to_close=10), record_marker("m"), start_timer("t2", -1)],
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
    ),
}


@pytest.mark.parametrize("cmds, cause", list(BAD_COMPLETIONS.values()), ids=list(BAD_COMPLETIONS))
def test_bad_command_fails_the_task_and_keeps_nothing_of_the_completion(cmds, cause):
    run = Run()
    run.start_wft(now=1)
    before = MutableState.from_bytes(run.state.to_bytes())
    sticky = StickyExecutionAttributes(worker_task_queue=TaskQueue(name="sticky-1"))
    t = run.complete(*cmds, now=2, sticky_attributes=sticky)

    # The retry (attempt 2) is transient: nothing of it is stored until it completes.
    assert names(t.events) == ["WORKFLOW_TASK_FAILED"]
    assert ids(t.events) == [4]
    failed = t.events[0].workflow_task_failed_event_attributes
    assert failed.cause == cause, Cause.Name(failed.cause)
    assert (failed.scheduled_event_id, failed.started_event_id) == (2, 3)
    assert failed.identity == "worker-1"
    assert failed.failure.message
    assert isinstance(t.deferred_error, InvalidArgument)
    assert t.deferred_error.message == failed.failure.message

    s = run.state
    assert s.running and not t.closed
    assert s.activities == {} and s.timers == {}
    assert s.completed_wft_count == before.completed_wft_count == 0
    assert s.last_completed_wft_started_event_id == 0
    assert s.sticky_queue == ""
    assert s.wft.scheduled_event_id == 5 and s.wft.attempt == 2 and s.wft.started_event_id == 0
    assert s.wft.transient
    assert t.transfers == [TransferSpec("workflow_task", {"scheduled_event_id": 5, "queue": "tq", "sticky": False})]
    assert t.timers == []
    assert_contiguous(run)


def test_command_after_the_close_command_fails_the_task():
    run = Run()
    run.start_wft()
    t = run.complete(complete_workflow(), start_timer("t1", 5))
    assert names(t.events) == ["WORKFLOW_TASK_FAILED"]
    assert isinstance(t.deferred_error, InvalidArgument)
    assert run.state.running and not t.closed
    assert run.state.close_event_id == 0
    assert_contiguous(run)


# == user timers ==============================================================================


def test_timer_fires_and_schedules_a_task():
    run = Run()
    run.task(start_timer("t1", 30), now=0)
    started_id = run.state.timers["t1"].started_event_id
    with pytest.raises(StaleTask):
        run.fire_timer("t1", started_event_id=started_id + 100, now=30)
    t = run.fire_timer("t1", now=30)
    assert names(t.events) == ["TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]
    fired = t.events[0].timer_fired_event_attributes
    assert (fired.timer_id, fired.started_event_id) == ("t1", started_id)
    assert run.state.timers == {}
    with pytest.raises(StaleTask):  # fired already: at-least-once delivery is harmless
        run.fire_timer("t1", started_event_id=started_id)
    assert_contiguous(run)


@pytest.mark.parametrize("seconds", [0, None], ids=["zero", "unset"])
def test_a_zero_or_unset_timer_is_due_at_once(seconds):
    # Temporal 1.32 accepts both and records TimerStarted then TimerFired.
    run = Run()
    t = run.task(start_timer("t0", seconds), now=7)
    assert t.deferred_error is None and names(t.events)[-1] == "TIMER_STARTED"
    assert [(x.kind, x.fire_at) for x in t.timers] == [("user_timer", TS0 + 7)]
    assert run.state.timers["t0"].fire_time == TS0 + 7
    t = run.fire_timer("t0", now=7)
    assert names(t.events) == ["TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]


def test_a_negative_timer_fails_the_task_with_temporals_message():
    run = Run()
    t = run.task(start_timer("t1", -1))
    assert t.deferred_error.message == (
        "BadStartTimerAttributes: An invalid StartToFireTimeout is set on StartTimerCommand: negative duration. TimerId=t1"
    )


def test_timer_fired_during_a_started_task_is_buffered():
    run = Run()
    run.task(start_timer("t1", 30))
    run.signal()
    run.start_wft(now=29)
    t = run.fire_timer("t1", now=30)
    assert t.events == [] and len(run.state.buffered_events) == 1
    t = run.complete(now=31)
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]
    assert_contiguous(run)


def test_cancel_timer_then_its_timer_task_is_stale():
    run = Run()
    run.task(start_timer("t1", 30))
    started_id = run.state.timers["t1"].started_event_id
    run.signal()
    t = run.task(cancel_timer("t1"))
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "TIMER_CANCELED"]
    canceled = t.events[1].timer_canceled_event_attributes
    assert (canceled.timer_id, canceled.started_event_id) == ("t1", started_id)
    assert canceled.workflow_task_completed_event_id == t.events[0].event_id
    assert run.state.timers == {} and run.state.wft is None
    with pytest.raises(StaleTask):
        run.fire_timer("t1", started_event_id=started_id)
    assert_contiguous(run)


def test_cancel_timer_whose_fired_event_is_buffered_cancels_it():
    # As in Temporal: the buffered TimerFired is dropped, TimerCanceled written, the completion accepted.
    run = Run()
    run.task(start_timer("t1", 30))
    started_id = run.state.timers["t1"].started_event_id
    run.signal("wake")
    run.start_wft(now=29)
    run.fire_timer("t1", now=30)  # buffered while the worker decides to cancel the timer
    t = run.complete(cancel_timer("t1"), now=31)
    assert t.deferred_error is None
    assert names(t.events)[:2] == ["WORKFLOW_TASK_COMPLETED", "TIMER_CANCELED"]
    assert t.events[1].timer_canceled_event_attributes.started_event_id == started_id
    assert "TIMER_FIRED" not in names(run.history)
    assert_contiguous(run)


# == activities ===============================================================================


def test_activity_completion_writes_started_and_completed():
    run, sched = with_activity()
    t = run.activity_started(sched, now=1)
    assert t.events == []  # ActivityTaskStarted is written when the attempt closes
    assert t.timers == [
        TimerSpec(
            "activity_timeout",
            TS0 + 1 + 10,
            {"scheduled_event_id": sched, "attempt": 1, "timeout_type": TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE},
        )
    ]
    with pytest.raises(StaleTask):
        run.activity_started(sched, now=1)
    t = run.activity_completed(sched, now=2)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED", "WORKFLOW_TASK_SCHEDULED"]
    started, completed = t.events[0], t.events[1]
    sa = started.activity_task_started_event_attributes
    assert (sa.scheduled_event_id, sa.attempt, sa.identity, sa.request_id) == (sched, 1, "act-worker", "act-poll")
    ca = completed.activity_task_completed_event_attributes
    assert (ca.scheduled_event_id, ca.started_event_id) == (sched, started.event_id)
    assert ca.result == payloads("result")
    assert run.state.activities == {}
    with pytest.raises(StaleTask):  # START_TO_CLOSE timer of the closed activity
        run.activity_timeout(sched, 1, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
    assert_contiguous(run)


def test_activity_completion_during_a_started_task_is_buffered_and_linked():
    run, sched = with_activity()
    run.activity_started(sched)
    run.signal()
    run.start_wft()
    t = run.activity_completed(sched)
    assert t.events == [] and len(run.state.buffered_events) == 2
    t = run.complete()
    assert names(t.events) == [
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    assert t.events[2].activity_task_completed_event_attributes.started_event_id == t.events[1].event_id
    assert_contiguous(run)


def test_activity_failure_retries_with_backoff_then_gives_up_at_maximum_attempts():
    run, sched = with_activity(retry_policy=policy(initial=1, coefficient=2, maximum_attempts=3))
    run.activity_started(sched, now=10)

    t = run.activity_failed(sched, app_failure("boom-1"), now=11)
    assert t.events == [] and t.transfers == []
    a = run.state.activities[sched]
    assert a.attempt == 2 and not a.started
    assert a.scheduled_time == TS0 + 12
    assert unpack(Failure, a.last_failure).message == "boom-1"
    assert t.timers == [TimerSpec("activity_retry", TS0 + 11 + 1, {"scheduled_event_id": sched, "attempt": 2})]

    with pytest.raises(StaleTask):  # an older attempt's retry timer
        run.retry_due(sched, 1, now=12)
    t = run.retry_due(sched, 2, now=12)
    assert t.events == []
    assert t.transfers == [TransferSpec("activity_task", {"scheduled_event_id": sched, "attempt": 2, "queue": "tq"})]
    with pytest.raises(StaleTask):  # the queue entry of attempt 1
        run.activity_started(sched, attempt=1, now=12)

    run.activity_started(sched, attempt=2, now=13)
    t = run.activity_failed(sched, app_failure("boom-2"), now=14)
    assert t.events == []
    assert run.state.activities[sched].attempt == 3
    assert t.timers == [TimerSpec("activity_retry", TS0 + 14 + 2, {"scheduled_event_id": sched, "attempt": 3})]

    run.retry_due(sched, 3, now=16)
    run.activity_started(sched, attempt=3, now=17)
    t = run.activity_failed(sched, app_failure("boom-3"), now=18)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    started, failed = t.events[0], t.events[1]
    sa = started.activity_task_started_event_attributes
    assert sa.scheduled_event_id == sched and sa.attempt == 3
    assert sa.last_failure.message == "boom-2"
    fa = failed.activity_task_failed_event_attributes
    assert fa.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert fa.scheduled_event_id == sched
    assert fa.started_event_id == started.event_id
    assert fa.failure.message == "boom-3"
    assert fa.identity == "act-worker"
    assert run.state.activities == {}
    assert [x for x in t.timers if x.kind == "activity_retry"] == []
    assert_contiguous(run)


@pytest.mark.parametrize(
    "failure",
    [app_failure("fatal", type_="FatalError"), app_failure("flagged", type_="Other", non_retryable=True)],
    ids=["type listed as non-retryable", "non_retryable flag"],
)
def test_non_retryable_failure_closes_the_activity_at_once(failure):
    run, sched = with_activity(retry_policy=policy(non_retryable_error_types=["FatalError"]))
    run.activity_started(sched)
    t = run.activity_failed(sched, failure)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    fa = t.events[1].activity_task_failed_event_attributes
    assert fa.retry_state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    assert fa.started_event_id == t.events[0].event_id
    assert t.events[0].activity_task_started_event_attributes.attempt == 1


def test_failure_of_another_type_is_retried():
    run, sched = with_activity(retry_policy=policy(non_retryable_error_types=["FatalError"]))
    run.activity_started(sched)
    t = run.activity_failed(sched, app_failure("transient", type_="TransientError"))
    assert t.events == []
    assert run.state.activities[sched].attempt == 2


def test_start_to_close_timeout_retries_then_times_out():
    run, sched = with_activity(start_to_close=5, retry_policy=policy(initial=1, maximum_attempts=2))
    run.activity_started(sched, now=10)
    stc = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE

    t = run.activity_timeout(sched, 1, stc, now=15)
    assert t.events == []
    assert run.state.activities[sched].attempt == 2
    assert t.timers == [TimerSpec("activity_retry", TS0 + 16, {"scheduled_event_id": sched, "attempt": 2})]
    last = unpack(Failure, run.state.activities[sched].last_failure)
    assert last.timeout_failure_info.timeout_type == stc

    with pytest.raises(StaleTask):  # the same timer delivered twice
        run.activity_timeout(sched, 1, stc, now=15)
    with pytest.raises(StaleTask):  # attempt 2 is not running yet
        run.activity_timeout(sched, 2, stc, now=15)

    run.retry_due(sched, 2, now=16)
    t = run.activity_started(sched, attempt=2, now=16)
    assert (
        TimerSpec("activity_timeout", TS0 + 21, {"scheduled_event_id": sched, "attempt": 2, "timeout_type": stc})
        in t.timers
    )
    t = run.activity_timeout(sched, 2, stc, now=21)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]
    ta = t.events[1].activity_task_timed_out_event_attributes
    assert ta.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert ta.failure.timeout_failure_info.timeout_type == stc
    assert ta.scheduled_event_id == sched
    assert ta.started_event_id == t.events[0].event_id
    assert t.events[0].activity_task_started_event_attributes.attempt == 2
    assert_contiguous(run)


def test_heartbeat_timeout_is_rearmed_after_a_heartbeat():
    run, sched = with_activity(start_to_close=100, heartbeat=10, retry_policy=policy(maximum_attempts=1))
    hb = TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    t = run.activity_started(sched, now=0)
    assert (
        TimerSpec("activity_timeout", TS0 + 10, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": hb})
        in t.timers
    )

    details = payloads("progress-1")
    t = run.heartbeat(sched, details, now=6)
    assert run.result == activities.HeartbeatAnswer()  # no cancellation, pause or reset requested
    assert t.events == []

    t = run.activity_timeout(sched, 1, hb, now=10)
    assert t.events == []
    assert t.timers == [
        TimerSpec("activity_timeout", TS0 + 16, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": hb})
    ]
    assert sched in run.state.activities

    t = run.activity_timeout(sched, 1, hb, now=16)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]
    ta = t.events[1].activity_task_timed_out_event_attributes
    assert ta.failure.timeout_failure_info.timeout_type == hb
    assert ta.failure.timeout_failure_info.last_heartbeat_details == details
    assert ta.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert ta.started_event_id == t.events[0].event_id
    assert_contiguous(run)


def test_heartbeat_timeout_without_any_heartbeat():
    run, sched = with_activity(start_to_close=100, heartbeat=10, retry_policy=policy(maximum_attempts=1))
    run.activity_started(sched, now=0)
    t = run.activity_timeout(sched, 1, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, now=10)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]


def test_schedule_to_close_timeout_while_running():
    run, sched = with_activity(schedule_to_close=30, start_to_close=0)
    t = run.last
    s2c = TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
    assert (
        TimerSpec("activity_timeout", TS0 + 30, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": s2c})
        in t.timers
    )
    run.activity_started(sched, now=5)
    with pytest.raises(StaleTask):  # started in time
        run.activity_timeout(sched, 1, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, now=30)
    t = run.activity_timeout(sched, 1, s2c, now=30)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]
    ta = t.events[1].activity_task_timed_out_event_attributes
    assert ta.retry_state == RetryState.RETRY_STATE_TIMEOUT
    assert ta.failure.timeout_failure_info.timeout_type == s2c
    assert ta.started_event_id == t.events[0].event_id
    assert_contiguous(run)


def test_schedule_to_close_timeout_while_waiting_for_a_retry():
    run, sched = with_activity(schedule_to_close=30, start_to_close=5, retry_policy=policy(initial=20, coefficient=1))
    run.activity_started(sched, now=5)
    t = run.activity_failed(sched, app_failure("boom"), now=9)  # retry at 29 < 30
    assert t.events == [] and run.state.activities[sched].attempt == 2
    run.retry_due(sched, 2, now=29)
    # The schedule-to-close timer carries attempt 1 but applies to every attempt.
    t = run.activity_timeout(sched, 1, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, now=30)
    assert names(t.events) == ["ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]  # attempt 2 never started
    ta = t.events[0].activity_task_timed_out_event_attributes
    assert ta.retry_state == RetryState.RETRY_STATE_TIMEOUT
    assert ta.started_event_id == 0
    assert ta.failure.cause.message == "boom"
    assert_contiguous(run)


def test_retry_that_would_pass_schedule_to_close_gives_up():
    run, sched = with_activity(schedule_to_close=10, start_to_close=10, retry_policy=policy(initial=5, coefficient=1))
    run.activity_started(sched, now=1)
    t = run.activity_failed(sched, app_failure("boom"), now=6)  # 6 + 5 >= 10
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    assert t.events[1].activity_task_failed_event_attributes.retry_state == RetryState.RETRY_STATE_TIMEOUT


def test_schedule_to_start_timeout():
    run, sched = with_activity(start_to_close=10, schedule_to_start=3)
    s2s = TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    assert (
        TimerSpec("activity_timeout", TS0 + 3, {"scheduled_event_id": sched, "attempt": 1, "timeout_type": s2s})
        in run.last.timers
    )
    with pytest.raises(StaleTask):  # not started: start-to-close does not apply yet
        run.activity_timeout(sched, 1, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, now=3)
    t = run.activity_timeout(sched, 1, s2s, now=3)
    assert names(t.events) == ["ACTIVITY_TASK_TIMED_OUT", "WORKFLOW_TASK_SCHEDULED"]
    ta = t.events[0].activity_task_timed_out_event_attributes
    assert ta.retry_state == RetryState.RETRY_STATE_TIMEOUT
    assert ta.failure.timeout_failure_info.timeout_type == s2s
    assert run.state.activities == {}


def test_request_cancel_of_a_queued_activity_cancels_it_at_once():
    run, sched = with_activity()
    run.signal()
    t = run.task(request_cancel_activity(sched))
    assert names(t.events) == [
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_CANCEL_REQUESTED",
        "ACTIVITY_TASK_CANCELED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    completed_id, requested_id = t.events[0].event_id, t.events[1].event_id
    req = t.events[1].activity_task_cancel_requested_event_attributes
    assert (req.scheduled_event_id, req.workflow_task_completed_event_id) == (sched, completed_id)
    canceled = t.events[2].activity_task_canceled_event_attributes
    assert canceled.scheduled_event_id == sched
    assert canceled.latest_cancel_requested_event_id == requested_id
    assert canceled.started_event_id == 0
    assert run.state.activities == {}
    with pytest.raises(StaleTask):  # its queue entry
        run.activity_started(sched, attempt=1)
    assert_contiguous(run)


def test_request_cancel_of_a_running_activity_waits_for_the_worker():
    run, sched = with_activity()
    run.activity_started(sched)
    run.signal()
    t = run.task(request_cancel_activity(sched))
    assert names(t.events) == ["WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_CANCEL_REQUESTED"]
    requested_id = t.events[1].event_id
    assert run.state.wft is None
    assert run.state.activities[sched].cancel_requested
    run.heartbeat(sched)
    assert run.result == activities.HeartbeatAnswer(cancel_requested=True)  # the heartbeat tells the worker to stop
    t = run.activity_canceled(sched)
    assert names(t.events) == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_CANCELED", "WORKFLOW_TASK_SCHEDULED"]
    canceled = t.events[1].activity_task_canceled_event_attributes
    assert canceled.started_event_id == t.events[0].event_id
    assert canceled.latest_cancel_requested_event_id == requested_id
    assert_contiguous(run)


def test_request_cancel_of_an_activity_whose_completion_is_buffered():
    # As in Temporal: cancelling an activity whose outcome is buffered is accepted; the outcome follows.
    run, sched = with_activity()
    run.activity_started(sched)
    run.signal()
    run.start_wft()
    run.activity_completed(sched)  # buffered while the worker decides to cancel the activity
    t = run.complete(request_cancel_activity(sched))
    assert t.deferred_error is None
    assert names(t.events)[:2] == ["WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_CANCEL_REQUESTED"]
    assert "ACTIVITY_TASK_COMPLETED" in names(t.events)
    assert_contiguous(run)


# == workflow task timeouts ===================================================================


def test_workflow_task_start_to_close_timeout_increments_the_attempt():
    run = Run()
    stc = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    run.start_wft(now=0)
    t = run.step(lambda t: t.time_out_workflow_task(2, 3, stc), now=10)
    assert names(t.events) == ["WORKFLOW_TASK_TIMED_OUT"]
    to = t.events[0].workflow_task_timed_out_event_attributes
    assert (to.scheduled_event_id, to.started_event_id, to.timeout_type) == (2, 3, stc)
    assert run.state.wft.attempt == 2 and run.state.wft.scheduled_event_id == 5 and run.state.wft.transient
    assert [x.kind for x in t.transfers] == ["workflow_task"]
    with pytest.raises(StaleTask):  # the same timer delivered again
        run.step(lambda t: t.time_out_workflow_task(2, 3, stc))
    with pytest.raises(StaleTask):  # non-sticky tasks have no schedule-to-start timeout
        run.step(lambda t: t.time_out_workflow_task(5, 0, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START))

    # Transient attempts time out without adding events; the attempt still counts up.
    t = run.start_wft(now=11)
    assert t.events == [] and run.token().attempt == 2 and run.token().started_event_id == 6
    shown = transient_events(run.state, run.state.wft)
    assert names(shown) == ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"] and ids(shown) == [5, 6]
    assert shown[0].workflow_task_scheduled_event_attributes.attempt == 2
    t = run.step(lambda t: t.time_out_workflow_task(5, 6, stc), now=21)
    assert t.events == [] and run.state.wft.attempt == 3
    run.start_wft(now=22)
    t = run.complete(now=23)
    # The completing attempt's Scheduled/Started are stored under the ids the worker saw.
    assert names(t.events) == ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
    assert ids(t.events) == [5, 6, 7]
    assert t.events[0].workflow_task_scheduled_event_attributes.attempt == 3
    assert run.state.next_wft_attempt == 1
    assert_contiguous(run)


def test_new_event_turns_a_waiting_transient_task_into_a_stored_one():
    run = Run()
    run.start_wft(now=0)
    run.step(lambda t: t.fail_workflow_task(Cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE), now=1)
    assert run.state.wft.transient and run.state.wft.scheduled_event_id == 5
    t = run.signal(now=2)
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    assert ids(t.events) == [5, 6]
    assert t.events[1].workflow_task_scheduled_event_attributes.attempt == 1
    assert not run.state.wft.transient
    with pytest.raises(StaleTask):  # the transient task's queue entry is stale now
        run.step(lambda t: t.record_workflow_task_started(5, False, "w", "r"))
    assert_contiguous(run)


def test_terminate_during_a_started_transient_task_stores_none_of_it():
    run = Run()
    run.start_wft(now=0)
    run.step(lambda t: t.fail_workflow_task(Cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE), now=1)
    run.start_wft(now=2)
    run.signal(now=3)  # buffered behind the transient task
    t = run.step(lambda t: t.terminate("stop", None, "admin"), now=4)
    assert names(t.events) == ["WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_EXECUTION_TERMINATED"]
    assert ids(t.events) == [5, 6]
    assert_contiguous(run)


def test_workflow_task_timeout_after_completion_is_stale():
    run = Run()
    run.start_wft()
    run.complete()
    with pytest.raises(StaleTask):
        run.step(lambda t: t.time_out_workflow_task(2, 3, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE))


# == terminate and run timeout ================================================================


def test_terminate_while_a_task_is_started():
    run, sched = with_activity()
    run.signal()
    run.task(start_timer("t1", 30))
    run.signal("s2")
    run.start_wft()
    scheduled_id, started_id = run.state.wft.scheduled_event_id, run.state.wft.started_event_id
    run.signal("buffered")
    assert len(run.state.buffered_events) == 1

    t = run.terminate(now=50)
    assert names(t.events) == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_EXECUTION_TERMINATED"]
    failed = t.events[0].workflow_task_failed_event_attributes
    assert failed.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    assert (failed.scheduled_event_id, failed.started_event_id) == (scheduled_id, started_id)
    assert t.events[1].workflow_execution_signaled_event_attributes.signal_name == "buffered"
    term = t.events[2].workflow_execution_terminated_event_attributes
    assert (term.reason, term.identity) == ("stop it", "admin")
    s = run.state
    assert s.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert t.closed and s.close_event_id == t.events[2].event_id and s.close_time == TS0 + 50
    assert s.wft is None and s.activities == {} and s.timers == {} and s.buffered_events == []
    assert t.transfers == []
    assert_contiguous(run)

    with pytest.raises(NotFound):
        run.terminate()
    with pytest.raises(NotFound):
        run.signal()


def test_terminate_with_a_scheduled_task_writes_only_the_terminated_event():
    run = Run()
    t = run.terminate()
    assert names(t.events) == ["WORKFLOW_EXECUTION_TERMINATED"]
    assert run.state.wft is None
    assert_contiguous(run)


def test_run_timeout_while_a_task_is_started_keeps_buffered_events():
    # The started task is failed (FORCE_CLOSE_COMMAND) and buffered events flushed before the close.
    run = Run(start_request(workflow_run_timeout=dur(60)))
    run.start_wft(now=55)
    run.signal("accepted", now=58)
    t = run.step(lambda t: t.run_timed_out(), now=60)
    assert names(t.events) == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_EXECUTION_TIMED_OUT"]
    assert (
        t.events[0].workflow_task_failed_event_attributes.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    )
    assert run.state.status == Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT
    assert_contiguous(run)


def test_run_timeout_without_a_started_task():
    run = Run(start_request(workflow_run_timeout=dur(60)))
    t = run.step(lambda t: t.run_timed_out(), now=60)
    assert names(t.events) == ["WORKFLOW_EXECUTION_TIMED_OUT"]
    assert run.state.status == Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT and t.closed
    with pytest.raises(StaleTask):
        run.step(lambda t: t.run_timed_out())
    assert_contiguous(run)


def _closed_run_with_pending_work() -> tuple[Run, int, int, int, int]:
    run, sched = with_activity(start_to_close=10, schedule_to_close=100, retry_policy=policy(maximum_attempts=5))
    run.activity_started(sched)
    run.activity_failed(sched, app_failure("boom"))  # waiting for retry attempt 2
    run.signal()
    run.task(start_timer("t1", 30))
    timer_started = run.state.timers["t1"].started_event_id
    run.signal()
    run.start_wft()
    wft_sched, wft_started = run.state.wft.scheduled_event_id, run.state.wft.started_event_id
    run.terminate()
    return run, sched, timer_started, wft_sched, wft_started


@pytest.mark.parametrize(
    "op",
    [
        "user_timer",
        "activity_retry",
        "activity_start_to_close",
        "activity_schedule_to_close",
        "wft_timeout",
        "run_timeout",
        "first_wft",
        "record_wft_started",
        "record_activity_started",
    ],
)
def test_timers_and_queue_entries_of_a_closed_run_are_stale(op):
    run, sched, timer_started, wft_sched, wft_started = _closed_run_with_pending_work()
    ops = {
        "user_timer": lambda t: t.fire_timer("t1", timer_started),
        "activity_retry": lambda t: activities.retry_due(t, sched, 2),
        "activity_start_to_close": lambda t: activities.timed_out(t, sched, 2, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE),
        "activity_schedule_to_close": lambda t: activities.timed_out(
            t, sched, 1, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
        ),
        "wft_timeout": lambda t: t.time_out_workflow_task(
            wft_sched, wft_started, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
        ),
        "run_timeout": lambda t: t.run_timed_out(),
        "first_wft": lambda t: t.first_workflow_task_due(),
        "record_wft_started": lambda t: t.record_workflow_task_started(wft_sched, False, "w", "r"),
        "record_activity_started": lambda t: activities.record_started(t, sched, 2, "w", "r"),
    }
    before = run.state.to_bytes()
    with pytest.raises(StaleTask):
        run.step(ops[op])
    assert run.state.to_bytes() == before


# == serialization ============================================================================


def test_mutable_state_round_trip():
    memo = Memo(fields={"owner": Payload(metadata={"encoding": b"json/plain"}, data=b'"me"')})
    search = SearchAttributes(indexed_fields={"CustomKeywordField": Payload(data=b'"k"')})
    run = Run(start_request(memo=memo, search_attributes=search, workflow_run_timeout=dur(3600)))
    run.task(
        schedule_activity("a1", start_to_close=10, heartbeat=5, retry_policy=policy(non_retryable_error_types=["X"])),
        schedule_activity("a2", schedule_to_close=100),
        start_timer("t1", 30),
        sticky_attributes=StickyExecutionAttributes(worker_task_queue=TaskQueue(name="sticky-1")),
    )
    sched = min(run.state.activities)
    run.activity_started(sched)
    run.heartbeat(sched, payloads("hb"))
    run.activity_failed(sched, app_failure("boom"), details=payloads("hb2"))
    run.signal("s1", request_id="req-1")
    run.start_wft(sticky=True)
    run.signal("s2", request_id="req-2")
    s = run.state

    assert s.wft is not None and s.wft.started_event_id
    assert s.buffered_events and s.activities and s.timers and s.memo and s.search_attributes
    assert s.activities[sched].last_failure and s.activities[sched].heartbeat_details
    data = s.to_bytes()
    back = MutableState.from_bytes(data)
    assert back == s
    assert back.to_bytes() == data
    assert all(isinstance(k, int) for k in back.activities)
    assert back.activities[sched].retry.non_retryable_error_types == ["X"]
    assert unpack(Memo, back.memo) == memo
    assert unpack(SearchAttributes, back.search_attributes) == search


def test_round_trip_of_a_closed_run():
    run = Run()
    run.task(complete_workflow())
    back = MutableState.from_bytes(run.state.to_bytes())
    assert back == run.state
    assert back.wft is None and not back.running


# == continue-as-new ==========================================================================


def test_continue_as_new_closes_the_run_and_creates_its_successor():
    from temporalio.api.command.v1 import (
        ContinueAsNewWorkflowExecutionCommandAttributes,
    )

    run = Run(start_request(workflow_execution_timeout=dur(3600)))
    cmd = Command(
        command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
        continue_as_new_workflow_execution_command_attributes=ContinueAsNewWorkflowExecutionCommandAttributes(
            input=payloads("next"), backoff_start_interval=dur(5)
        ),
    )
    t = run.task(start_timer("t1", 30), cmd, now=10)
    assert names(t.events)[-1] == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    assert t.closed and run.state.status == Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
    assert t.timers == [] and t.transfers == []  # a closed run keeps no tasks of its last transition
    can = t.events[-1].workflow_execution_continued_as_new_event_attributes
    [successor] = t.new_runs
    s2 = successor.state
    assert can.new_execution_run_id == s2.run_id != run.state.run_id
    assert s2.first_execution_run_id == run.state.first_execution_run_id == run.state.run_id
    assert s2.workflow_type == run.state.workflow_type and s2.task_queue == run.state.task_queue
    assert s2.execution_expiration == run.state.execution_expiration == TS0 + 3600
    assert names(successor.events) == ["WORKFLOW_EXECUTION_STARTED"]  # the first task waits for the backoff
    assert ids(successor.events) == [1]
    started = successor.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id == run.state.run_id
    assert started.original_execution_run_id == s2.run_id
    assert started.first_workflow_task_backoff.seconds == 5
    assert started.input == payloads("next")
    assert [x.kind for x in successor.timers] == ["run_timeout", "first_wft"]
    # The successor records its nominal run timeout (as Temporal does: 3600, not what is left of
    # the chain's hour), and is timed out at the chain's expiration all the same.
    assert started.workflow_run_timeout.seconds == 3600 and s2.run_timeout == 3600
    assert successor.timers[0].fire_at == TS0 + 3600
    assert uuid.UUID(s2.run_id).version == 7 and uuid.UUID(s2.run_id).int >> 80 == int((TS0 + 10) * 1000)
    assert_contiguous(run)
