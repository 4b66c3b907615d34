"""Creating a new run: its mutable state and first events (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio.api.common.v1 import Header, Payloads, WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import ContinueAsNewInitiator, TaskQueueKind
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import message_pb2 as h
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.history import cron, deployments
from odin.history.events import duration, optional_duration, reset_points, seconds, timestamp
from odin.history.machine import Transition
from odin.history.state import PINNED, MutableState, ResetPoint, pack
from odin.history.tasks import TimerKind

DEFAULT_WORKFLOW_TASK_TIMEOUT = 10.0
MAX_WORKFLOW_TASK_TIMEOUT = 120.0


@dataclass
class ParentInfo:
    """The run that started this one as a child (inherited along the child's run chain)."""

    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int
    root_workflow_id: str
    root_run_id: str
    # The parent's pinned version (deployment, build id) when the child's queue belongs to it:
    # the child starts pinned to it (WorkflowExecutionStarted's inherited_pinned_version).
    pinned: tuple[str, str] | None = None


@dataclass
class SignalInput:
    """The signal of SignalWithStartWorkflowExecution, delivered right after the start."""

    name: str
    input: Payloads | None
    identity: str
    header: Header | None
    request_id: str


@dataclass
class Continuation:
    """How a run continues an earlier one of its chain (continue-as-new)."""

    previous_run_id: str
    first_execution_run_id: str
    initiator: ContinueAsNewInitiator.ValueType
    execution_expiration: float  # 0 when the chain has no execution timeout
    last_completion_result: Payloads | None = None
    failure: Failure | None = None
    attempt: int = 1
    parent: ParentInfo | None = None
    # The previous run's auto-reset points: the new run starts with them (prev_auto_reset_points).
    reset_points: list[ResetPoint] = field(default_factory=list)
    # The previous run's pinned version, for a continue-as-new on the same queue.
    pinned: tuple[str, str] | None = None


def new_run(
    *,
    namespace_id: str,
    namespace: str,
    run_id: str,
    request: StartWorkflowExecutionRequest,
    now: datetime,
    continuation: Continuation | None = None,
    parent: ParentInfo | None = None,
    signal: SignalInput | None = None,
    scheduled_by: str = "",
) -> Transition:
    """The transition that creates a run from a (validated) start request."""
    ts = now.timestamp()
    execution_timeout = seconds(request.workflow_execution_timeout)
    expiration = ts + execution_timeout if execution_timeout else 0.0
    if continuation is not None:
        expiration = continuation.execution_expiration
    run_timeout = seconds(request.workflow_run_timeout) or execution_timeout
    if execution_timeout and continuation is None:
        run_timeout = min(run_timeout, execution_timeout)
    # A successor keeps its nominal run timeout (as Temporal records it); the chain's expiration
    # still bounds when its run times out (below).
    task_timeout = seconds(request.workflow_task_timeout) or DEFAULT_WORKFLOW_TASK_TIMEOUT
    task_timeout = min(task_timeout, MAX_WORKFLOW_TASK_TIMEOUT)
    if run_timeout:
        task_timeout = min(task_timeout, run_timeout)
    delay = seconds(request.workflow_start_delay)
    if request.cron_schedule and continuation is None:
        delay = cron.backoff(request.cron_schedule, ts, ts)
    pinned = continuation.pinned if continuation is not None else parent.pinned if parent is not None else None
    if continuation is not None and continuation.parent is not None:
        parent = continuation.parent
    state = MutableState(
        namespace_id=namespace_id,
        namespace=namespace,
        workflow_id=request.workflow_id,
        run_id=run_id,
        first_execution_run_id=continuation.first_execution_run_id if continuation else run_id,
        workflow_type=request.workflow_type.name,
        task_queue=request.task_queue.name,
        start_time=ts,
        start_request_id=request.request_id,
        workflow_task_timeout=task_timeout,
        run_timeout=run_timeout,
        execution_timeout=execution_timeout,
        execution_expiration=expiration,
        memo=pack(request.memo),
        search_attributes=pack(request.search_attributes),
        attempt=continuation.attempt if continuation else 1,
        retry_policy=pack(request.retry_policy) if request.HasField("retry_policy") else None,
        cron_schedule=request.cron_schedule,
        execution_time=ts + delay,
        scheduled_by=scheduled_by,
        user_metadata=pack(request.user_metadata) if request.HasField("user_metadata") else None,
        priority=request.priority.priority_key,
    )
    if parent is not None:
        state.parent_namespace = parent.namespace
        state.parent_namespace_id = parent.namespace_id
        state.parent_workflow_id = parent.workflow_id
        state.parent_run_id = parent.run_id
        state.parent_initiated_event_id = parent.initiated_event_id
        state.root_workflow_id, state.root_run_id = parent.root_workflow_id, parent.root_run_id
    else:
        state.root_workflow_id, state.root_run_id = request.workflow_id, state.first_execution_run_id
    t = Transition(state, now)
    attrs = h.WorkflowExecutionStartedEventAttributes(
        workflow_type=request.workflow_type,
        task_queue=TaskQueue(name=request.task_queue.name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        input=request.input,
        workflow_execution_timeout=optional_duration(execution_timeout),
        workflow_run_timeout=optional_duration(run_timeout),
        workflow_task_timeout=duration(task_timeout),
        identity=request.identity,
        header=request.header,
        memo=request.memo,
        search_attributes=request.search_attributes,
        retry_policy=request.retry_policy if request.HasField("retry_policy") else None,
        cron_schedule=request.cron_schedule,
        attempt=state.attempt,
        original_execution_run_id=run_id,
        first_execution_run_id=state.first_execution_run_id,
        workflow_id=request.workflow_id,
        priority=request.priority,
        root_workflow_execution=WorkflowExecution(workflow_id=state.root_workflow_id, run_id=state.root_run_id),
    )
    if parent is not None:
        attrs.parent_workflow_namespace = parent.namespace
        attrs.parent_workflow_namespace_id = parent.namespace_id
        attrs.parent_workflow_execution.CopyFrom(WorkflowExecution(workflow_id=parent.workflow_id, run_id=parent.run_id))
        attrs.parent_initiated_event_id = parent.initiated_event_id
    if continuation is not None:
        attrs.continued_execution_run_id = continuation.previous_run_id
        attrs.initiator = continuation.initiator
        if continuation.last_completion_result is not None:
            attrs.last_completion_result.CopyFrom(continuation.last_completion_result)
        if continuation.failure is not None:
            attrs.continued_failure.CopyFrom(continuation.failure)
        if continuation.reset_points:
            attrs.prev_auto_reset_points.CopyFrom(reset_points(continuation.reset_points))
            state.auto_reset_points = [ResetPoint(**vars(p)) for p in continuation.reset_points]
    else:
        # A schedule passes its previous run's outcome on (Temporal's StartWorkflowExecution fields).
        if request.HasField("last_completion_result"):
            attrs.last_completion_result.CopyFrom(request.last_completion_result)
        if request.HasField("continued_failure"):
            attrs.continued_failure.CopyFrom(request.continued_failure)
    if pinned is not None:
        attrs.inherited_pinned_version.CopyFrom(WorkerDeploymentVersion(deployment_name=pinned[0], build_id=pinned[1]))
        state.deployment, state.deployment_build = pinned
        state.versioning_behavior = PINNED
        deployments.version_search_attributes(state)
    if expiration:
        attrs.workflow_execution_expiration_time.CopyFrom(timestamp(expiration))
    if delay:
        attrs.first_workflow_task_backoff.CopyFrom(duration(delay))
    started = t.append(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, attrs)
    if request.HasField("user_metadata"):
        t.set_user_metadata(started, request.user_metadata)
    if run_timeout or expiration:
        # The run's clock starts when its first workflow task is due; the chain's ends at expiration.
        due = ts + delay + run_timeout if run_timeout else expiration
        if expiration:
            due = min(due, max(expiration, ts + 0.001))
        t.timer(TimerKind.RUN_TIMEOUT, due)
    if delay:
        state.first_wft_backoff = True
        t.timer(TimerKind.FIRST_WFT, ts + delay)
    if signal is not None:
        t.signal(signal.name, signal.input, signal.identity, signal.header, signal.request_id)
    if not delay and state.wft is None:
        t.schedule_workflow_task()
    return t
