"""Run chains beyond continue-as-new: workflow retries and cron schedules (pure).

Closing a run that retries or has a cron schedule names its successor in the close event
(``new_execution_run_id``). The successor repeats the first run's start (type, queue, input,
header, timeouts); since that start event lives in history, the engine reads it and calls
``successor_run`` before committing both runs in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.common.v1 import Memo, Payloads, Priority, RetryPolicy, SearchAttributes
from temporalio.api.enums.v1 import ContinueAsNewInitiator, RetryState, TaskQueueKind, TimeoutType
from temporalio.api.failure.v1 import Failure, TimeoutFailureInfo
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.history import cron, retry
from odin.history.events import duration, optional_duration
from odin.history.machine import Transition
from odin.history.start import Continuation, ParentInfo, new_run
from odin.history.state import MutableState, unpack


@dataclass
class Successor:
    run_id: str
    initiator: ContinueAsNewInitiator.ValueType
    backoff: float
    attempt: int
    failure: Failure | None = None
    last_completion_result: Payloads | None = None
    # A cron run that failed passes on the last successful result it was given.
    inherit_last_completion_result: bool = False


def after_failure(t: Transition, failure: Failure) -> tuple[RetryState.ValueType, Successor | None]:
    """What follows a failed (or timed-out) run: ``(retry_state, successor)``."""
    s = t.state
    policy = unpack(RetryPolicy, s.retry_policy)
    state = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    if policy is not None:
        info = retry.info_of(retry.normalize(policy))
        state, delay = retry.decide(info, s.attempt, failure, t.ts, s.execution_expiration)
        if state == RetryState.RETRY_STATE_IN_PROGRESS:
            return state, Successor(
                t.new_run_id(),
                ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY,
                delay,
                s.attempt + 1,
                failure=failure,
                inherit_last_completion_result=True,
            )
    if s.cron_schedule:
        return state, _cron(t, failure=failure, inherit=True)
    return state, None


def after_completion(t: Transition, result: Payloads) -> Successor | None:
    if not t.state.cron_schedule:
        return None
    return _cron(t, result=result)


def _cron(t: Transition, *, result: Payloads | None = None, failure: Failure | None = None, inherit: bool = False) -> Successor:
    s = t.state
    return Successor(
        t.new_run_id(),
        ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
        cron.backoff(s.cron_schedule, s.execution_time or s.start_time, t.ts),
        1,
        failure=failure,
        last_completion_result=result,
        inherit_last_completion_result=inherit,
    )


def run_timeout_failure() -> Failure:
    return Failure(
        message="workflow run timed out",
        timeout_failure_info=TimeoutFailureInfo(timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE),
    )


def successor_run(t: Transition, started: h.WorkflowExecutionStartedEventAttributes, nxt: Successor) -> Transition:
    """The successor run named by ``nxt``, started like the closing run ``t.state`` was."""
    s: MutableState = t.state
    execution_expiration = s.execution_expiration
    if nxt.initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE:
        # Each cron run gets the whole execution timeout, counted from when it is due.
        execution_expiration = t.ts + nxt.backoff + s.execution_timeout if s.execution_timeout else 0.0
    last_result = nxt.last_completion_result
    if last_result is None and nxt.inherit_last_completion_result and started.HasField("last_completion_result"):
        last_result = started.last_completion_result
    request = StartWorkflowExecutionRequest(
        namespace=s.namespace,
        workflow_id=s.workflow_id,
        workflow_type=started.workflow_type,
        task_queue=TaskQueue(name=s.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        input=started.input,
        workflow_execution_timeout=optional_duration(s.execution_timeout),
        workflow_run_timeout=started.workflow_run_timeout,
        workflow_task_timeout=started.workflow_task_timeout,
        workflow_start_delay=duration(nxt.backoff),
        header=started.header,
        memo=unpack(Memo, s.memo),
        search_attributes=unpack(SearchAttributes, s.search_attributes),
        retry_policy=started.retry_policy if started.HasField("retry_policy") else None,
        cron_schedule=s.cron_schedule,
        request_id=f"chain:{nxt.run_id}",
        priority=Priority(priority_key=s.priority),
    )
    return new_run(
        namespace_id=s.namespace_id,
        namespace=s.namespace,
        run_id=nxt.run_id,
        request=request,
        now=t.now,
        continuation=Continuation(
            previous_run_id=s.run_id,
            first_execution_run_id=s.first_execution_run_id,
            initiator=nxt.initiator,
            execution_expiration=execution_expiration,
            last_completion_result=last_result,
            failure=nxt.failure,
            attempt=nxt.attempt,
            parent=parent_of(s),
            reset_points=s.auto_reset_points,
        ),
        scheduled_by=s.scheduled_by,
    )


def parent_of(s: MutableState) -> ParentInfo | None:
    if not s.parent_workflow_id:
        return None
    return ParentInfo(
        s.parent_namespace,
        s.parent_namespace_id,
        s.parent_workflow_id,
        s.parent_run_id,
        s.parent_initiated_event_id,
        s.root_workflow_id,
        s.root_run_id,
    )
