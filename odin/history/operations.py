"""The history layer's operations on runs, one function per caller request
(docs/architecture.md#operations).

The frontend validates a request, resolves its namespace and lets the caller in; then it calls one
of these (or ``HistoryEngine.start_workflow``, or ``WorkerTasks`` for a worker's calls). Each
operation that changes a run is one ``engine.update``: one transaction, retried on a conflict, the
pure change applied to the run's ``Transition``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import Header, Payloads
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.update.v1 import Request as UpdateRequest
from temporalio.api.workflow.v1 import VersioningOverride

from odin.errors import NotFound
from odin.history import activity_ops, deployments, updates
from odin.history.activity_ops import Selector
from odin.history.engine import HistoryEngine
from odin.history.machine import Transition
from odin.history.reset import Reapply
from odin.history.state import ActivityInfo, MutableState
from odin.matching import WORKFLOW


async def signal(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    name: str,
    payloads: Payloads,
    identity: str,
    header: Header,
    request_id: str,
) -> None:
    """SignalWorkflowExecution: record the signal (a repeated request id is recorded once)."""
    await engine.update(namespace_id, workflow_id, run_id, lambda t: t.signal(name, payloads, identity, header, request_id))


async def request_cancel(
    engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str, reason: str, identity: str
) -> None:
    """RequestCancelWorkflowExecution: ask the run's code to cancel itself."""
    await engine.update(namespace_id, workflow_id, run_id, lambda t: t.request_cancel(reason, identity))


async def terminate(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    reason: str,
    details: Payloads | None,
    identity: str,
) -> None:
    """TerminateWorkflowExecution (and the termination that deleting a run or a namespace does)."""
    await engine.update(namespace_id, workflow_id, run_id, lambda t: t.terminate(reason, details, identity))


async def reset(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    finish_event_id: int,
    reason: str,
    request_id: str,
    reapply: Reapply,
) -> str:
    """ResetWorkflowExecution: a new run from the run's history up to the reset point (the
    current run is terminated in the same transaction); returns the new run's id."""
    return await engine.reset_workflow(
        namespace_id, workflow_id, run_id, finish_event_id=finish_event_id, reason=reason, request_id=request_id, reapply=reapply
    )


async def delete(engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str) -> None:
    """DeleteWorkflowExecution: terminate the run if it is open, then remove it entirely."""
    s = (await engine.load(namespace_id, workflow_id, run_id)).state
    if s.running:
        try:
            await terminate(engine, namespace_id, workflow_id, s.run_id, "Delete workflow execution", None, "odin-frontend")
        except NotFound:
            pass  # closed meanwhile
    await engine.delete_run(namespace_id, workflow_id, s.run_id)


async def admit_update(
    engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str, request: UpdateRequest, pinned: bool
) -> tuple[Any, Transition]:
    """UpdateWorkflowExecution: admit the update (or find the one with its id); returns it and the
    transition, whose state says which run took it. Unless the caller ``pinned`` the run, an update
    that meets a run just closed by its successor (continue-as-new, retry, cron) goes to the
    successor, as one sent a moment later would."""
    while True:
        target = run_id or (await engine.current_run_id(namespace_id, workflow_id)).run_id
        try:
            return await engine.update(namespace_id, workflow_id, target, lambda t: updates.admit(t, request))
        except NotFound:
            if pinned:
                raise
            run_id = (await engine.current_run_id(namespace_id, workflow_id)).run_id
            if run_id == target:
                raise


async def run_to_attach(engine: HistoryEngine, namespace_id: str, workflow_id: str, update_id: str) -> MutableState | None:
    """Update-with-start: the current run of the workflow id if it knows ``update_id`` in a way
    the update joins (``updates.attachable``), whatever the start's id policies say."""
    try:
        s = (await engine.load(namespace_id, workflow_id)).state
    except NotFound:
        return None
    return s if updates.attachable(s, update_id) else None


async def reset_sticky(engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str) -> None:
    """ResetStickyTaskQueue: the run's next workflow task goes to its normal queue."""

    def op(t: Transition) -> None:
        if not t.state.running:
            raise NotFound("workflow execution already completed")
        t.state.sticky_queue = ""

    await engine.update(namespace_id, workflow_id, run_id, op)


async def on_started_activity(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    activity_id: str,
    apply: Callable[[Transition, ActivityInfo], Any],
) -> Any:
    """The calls that address an activity by id (heartbeat, complete, fail, cancel): ``apply`` to
    the run's started activity with that id; returns what ``apply`` returns."""

    def op(t: Transition) -> Any:
        if not t.state.running:
            raise NotFound("workflow execution already completed", NotFoundFailure())
        a = t.state.activity_by_id(activity_id)
        if a is None or not a.started:
            raise NotFound(
                f"cannot find pending activity with ActivityID {activity_id}, check workflow execution history for more details",
                NotFoundFailure(),
            )
        return apply(t, a)

    result, _ = await engine.update(namespace_id, workflow_id, run_id, op)
    return result


async def _on_activities(
    engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str, selector: Selector, op: Callable[[Transition], Any]
) -> Any:
    """Apply an operator's change to a run's activities, or (no workflow id) to the standalone
    activity the selector names by id; returns what ``op`` returns."""
    if workflow_id:
        result, _ = await engine.update(namespace_id, workflow_id, run_id, op)
    else:
        result, _ = await engine.activity_executions.update(namespace_id, selector.activity_id, run_id, op)
    return result


async def pause_activity(
    engine: HistoryEngine, namespace_id: str, workflow_id: str, run_id: str, selector: Selector, identity: str, reason: str
) -> None:
    """PauseActivity: hold back the selected activities' next attempts."""
    await _on_activities(
        engine, namespace_id, workflow_id, run_id, selector, lambda t: activity_ops.pause(t, activity_ops.select(t, selector), identity, reason)
    )


async def unpause_activity(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    selector: Selector,
    reset_attempts: bool,
    reset_heartbeat: bool,
    delay: float,
) -> None:
    """UnpauseActivity: dispatch the selected paused activities again (after ``delay`` seconds)."""
    await _on_activities(
        engine,
        namespace_id,
        workflow_id,
        run_id,
        selector,
        lambda t: activity_ops.unpause(
            t, activity_ops.select(t, selector, paused_only=True), reset_attempts, reset_heartbeat, delay
        ),
    )


async def reset_activity(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    selector: Selector,
    reset_heartbeat: bool,
    keep_paused: bool,
    delay: float,
    restore_original_options: bool,
) -> None:
    """ResetActivity: the selected activities start over from attempt 1."""
    await _on_activities(
        engine,
        namespace_id,
        workflow_id,
        run_id,
        selector,
        lambda t: activity_ops.reset(
            t, activity_ops.select(t, selector), reset_heartbeat, keep_paused, delay, restore_original_options
        ),
    )


async def update_activity_options(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    selector: Selector,
    options: ActivityOptions,
    paths: list[str],
    restore_original: bool,
) -> ActivityOptions:
    """UpdateActivityOptions: new options for the selected activities; returns the resulting options."""
    result: ActivityOptions = await _on_activities(
        engine,
        namespace_id,
        workflow_id,
        run_id,
        selector,
        lambda t: activity_ops.update_options(t, activity_ops.select(t, selector), options, paths, restore_original),
    )
    return result


async def set_versioning_override(
    engine: HistoryEngine,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    override: VersioningOverride | None,
    identity: str,
) -> VersioningOverride | None:
    """UpdateWorkflowExecutionOptions' versioning override (None: remove it); the one in effect."""
    result, _ = await engine.update(
        namespace_id, workflow_id, run_id, lambda t: deployments.set_versioning_override(t, override, identity)
    )
    return result


async def return_sticky_tasks(engine: HistoryEngine, namespace_id: str, sticky_queue: str) -> None:
    """ShutdownWorker: the worker's cache is gone, so the workflow tasks waiting on its sticky
    queue go back to their runs' normal queues (queries waiting there are dropped: their callers
    time out and may ask again)."""
    for entry in await engine.queues.drain(namespace_id, sticky_queue, WORKFLOW):
        if not entry.is_query:
            s = (await engine.load(namespace_id, entry.workflow_id, entry.run_id)).state
            queue = await engine.routing.route(namespace_id, s.task_queue, WORKFLOW, s.workflow_id, s.routing_data())
            await engine.queues.add(namespace_id, queue, WORKFLOW, entry)


async def read_events(
    engine: HistoryEngine, run_id: str, first_event_id: int, next_event_id: int, limit: int | None = None
) -> list[HistoryEvent]:
    """Committed events ``first_event_id`` <= id < ``next_event_id`` of a run, oldest first."""
    return await engine.read_events(run_id, first_event_id, next_event_id, limit)
