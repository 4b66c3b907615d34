"""Property tests of the pure history core: event-id bookkeeping under random operation sequences,
and the retry back-off / decision math."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta

import pytest
from builders import cancel_timer, dur, request_cancel_activity, start_timer
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    RecordMarkerCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
)
from temporalio.api.common.v1 import (
    ActivityType,
    Payload,
    Payloads,
    RetryPolicy,
    WorkflowType,
)
from temporalio.api.enums.v1 import CommandType as C
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause
from temporalio.api.failure.v1 import (
    ApplicationFailureInfo,
    CanceledFailureInfo,
    Failure,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import (
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)

from odin.errors import NotFound
from odin.history import activities, commands, retry
from odin.history.events import attributes_of
from odin.history.machine import StaleTask, Transition, wft_token
from odin.history.start import new_run
from odin.history.state import MutableState, RetryPolicyInfo
from odin.history.tokens import ActivityTaskToken

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# No "explain" phase: it is slow and adds nothing to the printed minimal example.
FAST_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]


def dur_ms(ms: int) -> Duration:
    d = Duration()
    d.FromMilliseconds(ms)
    return d


PAYLOADS = Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])

WFT_CLOSE = {
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
RUN_CLOSE = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
ACTIVITY_OUTCOMES = {
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}
TIMEOUT_TYPES = [
    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
    TimeoutType.TIMEOUT_TYPE_HEARTBEAT,
]
ACTIVITY_IDS = ["a1", "a2", "a3"]
TIMER_IDS = ["t1", "t2"]


# == (a) random operation sequences ===========================================================


class Driver:
    """Applies operations like the engine: fresh state from bytes per step, kept only on success."""

    def __init__(self, run_timeout: float, start_delay: float = 0.0):
        req = StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id="wf",
            workflow_type=WorkflowType(name="W"),
            task_queue=TaskQueue(name="tq"),
            request_id="start",
        )
        if run_timeout:
            req.workflow_run_timeout.CopyFrom(dur(run_timeout))
        if start_delay:
            req.workflow_start_delay.CopyFrom(dur(start_delay))
        self.now = 0.0
        t = new_run(namespace_id="ns", namespace="default", run_id="run", request=req, now=T0)
        self.history = list(t.events)
        self.data = t.state.to_bytes()
        self.state = MutableState.from_bytes(self.data)
        self.accepted_signals = 0
        self.check_step(t, 1)

    def apply(self, op) -> Transition | None:
        first = self.state.next_event_id
        t = Transition(MutableState.from_bytes(self.data), T0 + timedelta(seconds=self.now))
        try:
            op(t)
        except (StaleTask, NotFound):
            return None
        self.history.extend(t.events)
        self.data = t.state.to_bytes()
        self.state = MutableState.from_bytes(self.data)
        self.check_step(t, first)
        return t

    def check_step(self, t: Transition, first: int) -> None:
        s = t.state
        assert [e.event_id for e in t.events] == list(range(first, first + len(t.events)))
        assert s.next_event_id == len(self.history) + 1
        if s.buffered_events:
            assert s.wft is not None and s.wft.started_event_id, "events buffered without a started task"
        if not s.running:
            assert s.wft is None and not s.activities and not s.timers and not s.buffered_events
            assert s.close_event_id == len(self.history)
        assert all(e.event_type != E.EVENT_TYPE_UNSPECIFIED for e in t.events)


def _schedule(draw, activity_id: str) -> Command:
    a = ScheduleActivityTaskCommandAttributes(activity_id=activity_id, activity_type=ActivityType(name="Act"))
    for field in draw(
        st.sampled_from(
            [
                ["start_to_close_timeout"],
                ["schedule_to_close_timeout"],
                ["start_to_close_timeout", "schedule_to_close_timeout"],
            ]
        )
    ):
        getattr(a, field).CopyFrom(dur(draw(st.sampled_from([5, 30]))))
    for field in draw(st.lists(st.sampled_from(["schedule_to_start_timeout", "heartbeat_timeout"]), max_size=2)):
        getattr(a, field).CopyFrom(dur(draw(st.sampled_from([3, 10]))))
    if draw(st.booleans()):
        a.retry_policy.CopyFrom(
            RetryPolicy(
                initial_interval=dur(draw(st.sampled_from([1, 2, 10]))),
                backoff_coefficient=draw(st.sampled_from([1.0, 2.0])),
                maximum_attempts=draw(st.integers(0, 3)),
                non_retryable_error_types=["Fatal"],
            )
        )
    return Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, schedule_activity_task_command_attributes=a)


def _marker(name: str) -> Command:
    return Command(
        command_type=C.COMMAND_TYPE_RECORD_MARKER,
        record_marker_command_attributes=RecordMarkerCommandAttributes(marker_name=name),
    )


COMPLETE = Command(
    command_type=C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
    complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(result=PAYLOADS),
)


@st.composite
def completion_commands(draw, state: MutableState) -> list[Command]:
    """Commands a worker might send: mostly valid for the current state, now and then a bad one."""
    timers = set(state.timers)
    activity_ids = {a.activity_id for a in state.activities.values()}
    pending = sorted(state.activities)
    cmds: list[Command] = []
    for _ in range(draw(st.integers(0, 4))):
        kinds = ["activity", "timer", "marker"]
        if timers:
            kinds.append("cancel_timer")
        if pending:
            kinds.append("cancel_activity")
        kind = draw(st.sampled_from(kinds * 6 + ["complete", "bad"]))
        if kind == "activity":
            free = [x for x in ACTIVITY_IDS if x not in activity_ids]
            if free:
                activity_id = draw(st.sampled_from(free))
                activity_ids.add(activity_id)
                cmds.append(_schedule(draw, activity_id))
        elif kind == "timer":
            free = [x for x in TIMER_IDS if x not in timers]
            if free:
                timer_id = draw(st.sampled_from(free))
                timers.add(timer_id)
                cmds.append(start_timer(timer_id, draw(st.sampled_from([1, 30]))))
        elif kind == "marker":
            cmds.append(_marker("m"))
        elif kind == "cancel_timer":
            timer_id = draw(st.sampled_from(sorted(timers)))
            timers.discard(timer_id)
            cmds.append(cancel_timer(timer_id))
        elif kind == "cancel_activity":
            scheduled = draw(st.sampled_from(pending))
            pending.remove(scheduled)
            cmds.append(request_cancel_activity(scheduled))
        elif kind == "complete":
            cmds.append(COMPLETE)
        else:
            cmds.append(
                draw(
                    st.sampled_from(
                        [
                            start_timer("", 5),
                            start_timer("t9", -1),
                            cancel_timer("unknown"),
                            request_cancel_activity(9999),
                            _marker(""),
                            Command(
                                command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                                schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                                    activity_id="", activity_type=ActivityType(name="Act")
                                ),
                            ),
                        ]
                    )
                )
            )
    return cmds


OP_WEIGHTS = {
    "advance": 3,
    "signal": 3,
    "start_wft": 6,
    "complete_wft": 8,
    "fail_wft": 1,
    "wft_timeout": 1,
    "fire_timer": 4,
    "activity_start": 5,
    "activity_complete": 3,
    "activity_fail": 3,
    "activity_cancel": 1,
    "activity_timeout": 3,
    "activity_retry_due": 3,
    "heartbeat": 1,
    "request_cancel": 1,
    "terminate": 1,
    "run_timeout": 1,
    "first_wft": 1,
}
CLOSING_OPS = {"terminate", "run_timeout"}
# Runs should live long enough to do interesting things: closing operations are rare.
OPS = [op for op, weight in OP_WEIGHTS.items() for _ in range(weight if op in CLOSING_OPS else 3 * weight)]


def applicable(op: str, s: MutableState) -> bool:
    started = [a for a in s.activities.values() if a.started]
    waiting = [a for a in s.activities.values() if not a.started]
    return {
        "start_wft": s.wft is not None and not s.wft.started_event_id,
        "complete_wft": s.wft is not None and bool(s.wft.started_event_id),
        "fail_wft": s.wft is not None and bool(s.wft.started_event_id),
        "wft_timeout": s.wft is not None,
        "fire_timer": bool(s.timers),
        "activity_start": bool(waiting),
        "activity_retry_due": bool(waiting),
        "activity_complete": bool(started),
        "activity_fail": bool(started),
        "activity_cancel": bool(started),
        "activity_timeout": bool(s.activities),
        "heartbeat": bool(started),
        "first_wft": s.first_wft_backoff,
    }.get(op, s.running)


def step(driver: Driver, data, ops: list[str] = OPS) -> None:
    s = driver.state
    # Mostly an operation that can apply now; sometimes any (stale deliveries must be harmless).
    candidates = [op for op in ops if applicable(op, s)]
    if not candidates or data.draw(st.integers(0, 9), label="any op") == 0:
        candidates = ops
    op = data.draw(st.sampled_from(candidates), label="op")
    if op == "advance":
        driver.now += data.draw(st.integers(0, 40), label="seconds")
    elif op == "signal":
        request_id = data.draw(st.sampled_from(["", "", "dup"]), label="request_id")
        duplicate = bool(request_id) and request_id in s.signal_request_ids
        t = driver.apply(lambda t: t.signal("sig", PAYLOADS, "client", None, request_id))
        if t is not None and not duplicate:
            driver.accepted_signals += 1
    elif op == "start_wft":
        scheduled = s.wft.scheduled_event_id if s.wft else 0
        if data.draw(st.integers(0, 9), label="stale id") == 0:
            scheduled += 1
        sticky = bool(s.sticky_queue) and data.draw(st.integers(0, 4), label="from normal queue") != 0
        driver.apply(lambda t: t.record_workflow_task_started(scheduled, sticky, "w", "r"))
    elif op == "complete_wft":
        if s.wft is None or not s.wft.started_event_id:
            return
        token = wft_token(s, s.wft)
        cmds = data.draw(completion_commands(s), label="commands")
        req = RespondWorkflowTaskCompletedRequest(
            commands=cmds, identity="w", force_create_new_workflow_task=data.draw(st.booleans(), label="force")
        )
        if data.draw(st.booleans(), label="sticky"):
            req.sticky_attributes.CopyFrom(StickyExecutionAttributes(worker_task_queue=TaskQueue(name="sticky")))
        driver.apply(lambda t: commands.complete_workflow_task(t, token, req))
    elif op == "fail_wft":
        if s.wft is None or not s.wft.started_event_id:
            return
        token = wft_token(s, s.wft)

        def fail(t: Transition) -> None:
            t.check_workflow_task(token)
            t.fail_workflow_task(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, Failure(message="x"), "w"
            )

        driver.apply(fail)
    elif op == "wft_timeout":
        if s.wft is None:
            return
        w = s.wft
        timeout_type = data.draw(
            st.sampled_from([TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START]),
            label="wft timeout type",
        )
        # The engine arms schedule-to-start timers with started_event_id 0, start-to-close with the started id.
        started = 0 if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START else w.started_event_id
        driver.apply(lambda t: t.time_out_workflow_task(w.scheduled_event_id, started, timeout_type))
    elif op == "fire_timer":
        timer_id = data.draw(st.sampled_from(TIMER_IDS), label="timer")
        started = s.timers[timer_id].started_event_id if timer_id in s.timers else 1
        driver.apply(lambda t: t.fire_timer(timer_id, started))
    elif op in (
        "activity_start",
        "activity_complete",
        "activity_fail",
        "activity_cancel",
        "activity_timeout",
        "activity_retry_due",
        "heartbeat",
    ):
        if not s.activities:
            return
        scheduled = data.draw(st.sampled_from(sorted(s.activities)), label="activity")
        a = s.activities[scheduled]
        attempt = a.attempt - data.draw(st.integers(0, 1), label="older attempt")
        token = ActivityTaskToken("ns", "wf", "run", scheduled, a.activity_id, attempt)
        if op == "activity_start":
            driver.apply(lambda t: activities.record_started(t, scheduled, attempt, "aw", "ar"))
        elif op == "activity_complete":
            driver.apply(lambda t: activities.completed(t, activities.for_token(t, token), PAYLOADS, "aw"))
        elif op == "activity_fail":
            failure = data.draw(
                st.sampled_from(
                    [
                        Failure(message="boom", application_failure_info=ApplicationFailureInfo(type="Transient")),
                        Failure(message="fatal", application_failure_info=ApplicationFailureInfo(type="Fatal")),
                        Failure(message="stop", application_failure_info=ApplicationFailureInfo(non_retryable=True)),
                    ]
                ),
                label="failure",
            )
            driver.apply(lambda t: activities.failed(t, activities.for_token(t, token), failure, "aw", PAYLOADS))
        elif op == "activity_cancel":
            driver.apply(lambda t: activities.canceled(t, activities.for_token(t, token), PAYLOADS, "aw"))
        elif op == "activity_timeout":
            timeout_type = data.draw(st.sampled_from(TIMEOUT_TYPES), label="timeout type")
            driver.apply(lambda t: activities.timed_out(t, scheduled, attempt, timeout_type))
        elif op == "activity_retry_due":
            driver.apply(lambda t: activities.retry_due(t, scheduled, attempt))
        else:
            driver.apply(lambda t: activities.heartbeat(t, activities.for_token(t, token), PAYLOADS))
    elif op == "request_cancel":
        driver.apply(lambda t: t.request_cancel("please", "client"))
    elif op == "terminate":
        driver.apply(lambda t: t.terminate("enough", None, "admin"))
    elif op == "run_timeout":
        driver.apply(lambda t: t.run_timed_out())
    elif op == "first_wft":
        driver.apply(lambda t: t.first_workflow_task_due())


def check_history(history) -> None:
    n = len(history)
    assert [e.event_id for e in history] == list(range(1, n + 1))
    assert history[0].event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    by_id = {e.event_id: e for e in history}
    pending_wft: int | None = None  # scheduled id of the open workflow task
    for i, e in enumerate(history):
        nxt = history[i + 1] if i + 1 < n else None
        if e.event_type in RUN_CLOSE:
            assert nxt is None, "events after the run closed"
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            assert pending_wft is None, "two workflow tasks open at once"
            pending_wft = e.event_id
        elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            assert e.workflow_task_started_event_attributes.scheduled_event_id == pending_wft
            if nxt is not None:
                assert nxt.event_type in WFT_CLOSE | RUN_CLOSE, (
                    f"WorkflowTaskStarted {e.event_id} followed by {E.Name(nxt.event_type)}"
                )
                if nxt.event_type in WFT_CLOSE:
                    a = attributes_of(nxt)
                    assert (a.scheduled_event_id, a.started_event_id) == (pending_wft, e.event_id)
        elif e.event_type in WFT_CLOSE:
            a = attributes_of(e)
            assert a.scheduled_event_id == pending_wft
            pending_wft = None
        elif e.event_type in RUN_CLOSE:
            pending_wft = None
        elif e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            scheduled = e.activity_task_started_event_attributes.scheduled_event_id
            assert by_id[scheduled].event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            assert nxt is not None and nxt.event_type in ACTIVITY_OUTCOMES
            a = attributes_of(nxt)
            assert (a.scheduled_event_id, a.started_event_id) == (scheduled, e.event_id)
        elif e.event_type in ACTIVITY_OUTCOMES:
            a = attributes_of(e)
            assert by_id[a.scheduled_event_id].event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            if a.started_event_id:
                assert a.started_event_id == e.event_id - 1
            outcomes = [
                x
                for x in history[: i + 1]
                if x.event_type in ACTIVITY_OUTCOMES and attributes_of(x).scheduled_event_id == a.scheduled_event_id
            ]
            assert len(outcomes) == 1, "an activity closed twice"
        elif e.event_type == E.EVENT_TYPE_TIMER_FIRED:
            started = e.timer_fired_event_attributes.started_event_id
            assert by_id[started].event_type == E.EVENT_TYPE_TIMER_STARTED


@settings(max_examples=150, deadline=None, phases=FAST_PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    run_timeout=st.sampled_from([0, 0, 3600]),
    start_delay=st.sampled_from([0, 0, 0, 10]),
    steps=st.integers(5, 60),
)
def test_random_operations_keep_event_ids_contiguous(data, run_timeout, start_delay, steps):
    driver = Driver(run_timeout, start_delay)
    for _ in range(steps):
        step(driver, data)
        if not driver.state.running and data.draw(st.booleans(), label="stop after close"):
            break
    history = driver.history
    n = len(history)
    assert [e.event_id for e in history] == list(range(1, n + 1))
    assert driver.state.next_event_id == n + 1
    check_history(history)


# Operations around workflow tasks and the ways a run closes.
SIGNAL_OPS = [
    "signal",
    "signal",
    "start_wft",
    "start_wft",
    "complete_wft",
    "fail_wft",
    "wft_timeout",
    "request_cancel",
    "terminate",
    "run_timeout",
]


@settings(max_examples=300, deadline=None, phases=FAST_PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(1, 30))
def test_every_accepted_signal_reaches_history(data, steps):
    # Includes a run timeout while a task is started: its buffered signals must still be flushed.
    driver = Driver(3600)
    for _ in range(steps):
        step(driver, data, SIGNAL_OPS)
    signaled = sum(e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in driver.history)
    buffered = [HistoryEvent.FromString(base64.b64decode(raw)) for raw in driver.state.buffered_events]
    signaled += sum(e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in buffered)
    assert signaled == driver.accepted_signals


# == (b) retry back-off and decision ==========================================================


@st.composite
def retry_infos(draw) -> RetryPolicyInfo:
    """A valid RetryPolicy (zero fields take Temporal's defaults), normalized like the server does."""
    initial_ms = draw(st.one_of(st.just(0), st.integers(1, 100_000)))
    coefficient = draw(st.one_of(st.just(0.0), st.floats(1.0, 10.0, allow_nan=False, allow_infinity=False)))
    effective_initial = initial_ms or 1000
    maximum_ms = draw(st.one_of(st.just(0), st.integers(effective_initial, effective_initial * 1000)))
    p = RetryPolicy(backoff_coefficient=coefficient, maximum_attempts=draw(st.integers(0, 20)))
    if initial_ms:
        p.initial_interval.CopyFrom(dur_ms(initial_ms))
    if maximum_ms:
        p.maximum_interval.CopyFrom(dur_ms(maximum_ms))
    info = retry.info_of(retry.normalize(p))
    assert info.initial_interval > 0 and info.backoff_coefficient >= 1
    assert info.maximum_interval >= info.initial_interval
    return info


@settings(max_examples=300, deadline=None, phases=FAST_PHASES)
@given(info=retry_infos(), attempt=st.integers(1, 100_000))
def test_backoff_is_bounded_and_non_decreasing(info, attempt):
    # Long retry chains (attempt >= 1025 with coefficient 2) overflow a float power: the cap must hold.
    b = retry.backoff(info, attempt)
    b_next = retry.backoff(info, attempt + 1)
    assert info.initial_interval <= b <= info.maximum_interval
    assert info.initial_interval <= b_next <= info.maximum_interval
    assert b <= b_next
    if attempt == 1:
        assert b == info.initial_interval


def test_backoff_of_a_long_retry_chain_is_the_maximum_interval():
    info = retry.info_of(retry.normalize(None))  # Temporal defaults: 1 s, x2, max 100 s, unlimited attempts
    assert retry.backoff(info, 20) == 100.0
    assert retry.backoff(info, 2000) == 100.0


@st.composite
def retryable_failures(draw) -> Failure:
    f = Failure(message="boom", application_failure_info=ApplicationFailureInfo(type="Transient"))
    explicit_ms = draw(st.one_of(st.just(0), st.integers(1, 600_000)))
    if explicit_ms:
        f.application_failure_info.next_retry_delay.CopyFrom(dur_ms(explicit_ms))
    return f


@settings(max_examples=300, deadline=None, phases=FAST_PHASES)
@given(
    info=retry_infos(),
    attempt=st.integers(1, 200),
    failure=retryable_failures(),
    now=st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
    expiration_offset=st.one_of(st.none(), st.floats(-1000, 100_000, allow_nan=False, allow_infinity=False)),
)
def test_decide_never_retries_past_maximum_attempts_or_expiration(info, attempt, failure, now, expiration_offset):
    expiration = 0.0 if expiration_offset is None else now + expiration_offset
    if expiration_offset is not None and expiration <= 0:
        expiration = 1e-3  # 0 means "no expiration"; keep a real (past) deadline instead
    state, delay = retry.decide(info, attempt, failure, now, expiration)
    if state == RetryState.RETRY_STATE_IN_PROGRESS:
        assert info.maximum_attempts == 0 or attempt < info.maximum_attempts
        assert not expiration or now + delay < expiration
        assert delay > 0
        explicit = failure.application_failure_info.next_retry_delay
        if explicit.ToNanoseconds() > 0:
            assert math.isclose(delay, explicit.ToTimedelta().total_seconds())
        else:
            assert delay == retry.backoff(info, attempt)
    else:
        assert delay == 0.0
        if info.maximum_attempts and attempt >= info.maximum_attempts:
            assert state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
        else:
            assert state == RetryState.RETRY_STATE_TIMEOUT
            explicit = failure.application_failure_info.next_retry_delay
            wanted = (
                explicit.ToTimedelta().total_seconds() if explicit.ToNanoseconds() > 0 else retry.backoff(info, attempt)
            )
            assert expiration and now + wanted >= expiration
    if info.maximum_attempts and attempt >= info.maximum_attempts:
        assert state != RetryState.RETRY_STATE_IN_PROGRESS
    if expiration and now >= expiration:
        assert state != RetryState.RETRY_STATE_IN_PROGRESS


@settings(max_examples=100, deadline=None, phases=FAST_PHASES)
@given(info=retry_infos(), attempt=st.integers(1, 50), cancel=st.booleans())
def test_decide_does_not_retry_non_retryable_or_cancelled(info, attempt, cancel):
    info.non_retryable_error_types = ["Fatal"]
    for failure in (
        Failure(message="x", application_failure_info=ApplicationFailureInfo(type="Fatal")),
        Failure(message="x", application_failure_info=ApplicationFailureInfo(type="Any", non_retryable=True)),
        Failure(message="x", canceled_failure_info=CanceledFailureInfo()),
    ):
        state, delay = retry.decide(info, attempt, failure, 0.0, 0.0, cancel_requested=cancel)
        expected = RetryState.RETRY_STATE_CANCEL_REQUESTED if cancel else RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
        assert (state, delay) == (expected, 0.0)


@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(initial_interval=Duration(seconds=-1)),
        RetryPolicy(backoff_coefficient=0.5),
        RetryPolicy(maximum_interval=Duration(seconds=-1)),
        RetryPolicy(initial_interval=Duration(seconds=10), maximum_interval=Duration(seconds=5)),
        RetryPolicy(maximum_attempts=-1),
    ],
    ids=["negative initial", "coefficient below 1", "negative maximum", "maximum below initial", "negative attempts"],
)
def test_normalize_rejects_invalid_policies(policy):
    with pytest.raises(retry.InvalidRetryPolicy):
        retry.normalize(policy)


def test_normalize_fills_temporal_defaults():
    p = retry.normalize(RetryPolicy(initial_interval=Duration(seconds=3)))
    assert p.backoff_coefficient == 2.0
    assert p.maximum_interval.ToTimedelta().total_seconds() == 300
    assert p.maximum_attempts == 0
