"""Transfer tasks that act on other runs: start a child, report a child's close to its parent,
apply a parent close policy, signal or cancel another workflow.

Each task is a row written in the same transaction as the change that implies it. It is carried
out after that commit (and again after a restart, since the row stays until done); every step is
idempotent: the child start uses a request id derived from the parent, the signal a request id the
target de-duplicates, and the outcome is recorded on the originating run only while it still waits
for it. The row is deleted in the transaction that records the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.enums.v1 import ParentClosePolicy, StartChildWorkflowExecutionFailedCause
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy as Conflict
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.aio import cancel_and_wait
from odin.errors import AlreadyExists, NotFound
from odin.history import children
from odin.history.machine import StaleTask, Transition
from odin.history.start import ParentInfo
from odin.history.state import MutableState
from odin.matching import WORKFLOW
from odin.persistence.store import OutboxTask

if TYPE_CHECKING:
    from odin.history.engine import HistoryEngine

log = logging.getLogger(__name__)

SYSTEM_IDENTITY = "odin-history"
MAX_ATTEMPTS = 8


class TransferProcessor:
    def __init__(self, engine: HistoryEngine):
        self.engine = engine
        self._running: dict[str, asyncio.Task] = {}

    def submit(self, task: OutboxTask) -> None:
        if task.task_id in self._running:
            return
        self._running[task.task_id] = asyncio.get_running_loop().create_task(self._run(task))

    async def drain(self) -> None:
        """Wait for the tasks in flight (tests and clean shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        await cancel_and_wait(*self._running.values())

    async def _run(self, task: OutboxTask) -> None:
        handler = getattr(self, f"_{task.kind}")
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    await handler(task)
                    return
                except Exception:
                    log.exception("transfer task %s (%s) failed, attempt %d", task.task_id, task.kind, attempt + 1)
                    await asyncio.sleep(min(0.05 * 2**attempt, 5.0))
            # The row stays in SQL; it is carried out again after a restart or by the sweep.
        finally:
            self._running.pop(task.task_id, None)

    async def _record(self, task: OutboxTask, namespace_id: str, workflow_id: str, run_id: str, op: Callable[[Transition], None]) -> bool:
        """Record an outcome on a run, deleting the task's row in the same transaction. A run that
        no longer waits for it just loses the row. Returns whether the outcome was recorded."""
        try:
            await self.engine.update(namespace_id, workflow_id, run_id, op, delete_transfer_ids=(task.task_id,))
            return True
        except (StaleTask, NotFound):
            await self.engine.store.delete_transfer_task(task.task_id)
            return False

    async def _load_origin(self, task: OutboxTask, cached: bool = False):
        try:
            if cached:
                return await self.engine.peek(task.namespace_id, task.workflow_id, task.run_id)
            return (await self.engine.load(task.namespace_id, task.workflow_id, task.run_id)).state
        except NotFound:
            return None

    async def _namespace(self, name: str):
        return await self.engine.store.get_namespace(name=name)

    # -- children --------------------------------------------------------------------------

    async def _start_child(self, task: OutboxTask) -> None:
        e = self.engine
        iid = task.data["initiated_event_id"]
        # A stale copy at worst starts the child again: the start is idempotent (its request id)
        # and recording it is checked inside the parent's update.
        s = await self._load_origin(task, cached=True)
        c = s.children.get(iid) if s is not None and s.running else None
        if c is None or c.run_id:
            await e.store.delete_transfer_task(task.task_id)
            return
        [initiated] = await e.read_events(s.run_id, iid, iid + 1)
        a = initiated.start_child_workflow_execution_initiated_event_attributes
        ns = await self._namespace(a.namespace)
        if ns is None:
            cause = StartChildWorkflowExecutionFailedCause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
            await self._record(
                task, s.namespace_id, s.workflow_id, s.run_id,
                lambda t: children.child_start_failed(t, iid, cause),
            )
            return
        request = StartWorkflowExecutionRequest(
            namespace=ns.name,
            workflow_id=a.workflow_id,
            workflow_type=a.workflow_type,
            task_queue=a.task_queue,
            input=a.input,
            workflow_execution_timeout=a.workflow_execution_timeout,
            workflow_run_timeout=a.workflow_run_timeout,
            workflow_task_timeout=a.workflow_task_timeout,
            identity=SYSTEM_IDENTITY,
            request_id=f"child:{s.run_id}:{iid}",
            workflow_id_reuse_policy=a.workflow_id_reuse_policy,
            workflow_id_conflict_policy=Conflict.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
            retry_policy=a.retry_policy if a.HasField("retry_policy") else None,
            cron_schedule=a.cron_schedule,
            header=a.header,
            memo=a.memo,
            search_attributes=a.search_attributes,
            # A child without a priority of its own inherits its parent's.
            priority=a.priority if a.priority.priority_key else Priority(priority_key=s.priority),
            user_metadata=initiated.user_metadata if initiated.HasField("user_metadata") else None,
        )
        parent = ParentInfo(
            namespace=s.namespace,
            namespace_id=s.namespace_id,
            workflow_id=s.workflow_id,
            run_id=s.run_id,
            initiated_event_id=iid,
            root_workflow_id=s.root_workflow_id or s.workflow_id,
            root_run_id=s.root_run_id or s.run_id,
            pinned=await self._inherited_pin(s, ns.id, a.task_queue.name),
        )
        try:
            child_run_id = (await e.start_workflow(ns.id, ns.name, request, parent=parent)).run_id
        except AlreadyExists:
            cause = StartChildWorkflowExecutionFailedCause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS
            await self._record(
                task, s.namespace_id, s.workflow_id, s.run_id,
                lambda t: children.child_start_failed(t, iid, cause),
            )
            return
        recorded = await self._record(
            task, s.namespace_id, s.workflow_id, s.run_id, lambda t: children.child_started(t, iid, child_run_id, a.header)
        )
        if not recorded:
            latest = await self._load_origin(task)
            if latest is not None and not latest.running:
                # The parent closed while its child was being started: its close policy applies now.
                await self._apply_policy(ns.id, a.workflow_id, child_run_id, s.run_id, c.parent_close_policy)

    async def _inherited_pin(self, parent: MutableState, namespace_id: str, queue: str) -> tuple[str, str] | None:
        """A pinned parent's version when the child's task queue belongs to it (Temporal's rule)."""
        pinned = parent.pinned_version()
        if pinned is None or namespace_id != parent.namespace_id:
            return None
        return pinned if pinned in await self.engine.routing.versions_of(namespace_id, queue, WORKFLOW) else None

    async def _child_closed(self, task: OutboxTask) -> None:
        d = task.data
        events = await self.engine.read_events(task.run_id, d["close_event_id"], d["close_event_id"] + 1)
        if not events:  # the child run was deleted meanwhile
            await self.engine.store.delete_transfer_task(task.task_id)
            return
        close = events[0]
        parent_run_id = await self._after_resets(d["parent_namespace_id"], d["parent_workflow_id"], d["parent_run_id"])
        await self._record(
            task,
            d["parent_namespace_id"],
            d["parent_workflow_id"],
            parent_run_id,
            lambda t: children.child_closed(t, d["initiated_event_id"], d["first_run_id"], close),
        )

    async def _after_resets(self, namespace_id: str, workflow_id: str, run_id: str) -> str:
        """The run a child's outcome goes to: its parent run or, if a reset replaced that run,
        the run the reset made (the reset run took the parent's pending children over), followed
        at most 100 times as Temporal does."""
        for _ in range(100):
            try:
                s = (await self.engine.load(namespace_id, workflow_id, run_id)).state  # fresh: a reset elsewhere counts
            except NotFound:
                break
            if s.running or not s.reset_run_id:
                break
            run_id = s.reset_run_id
        return run_id

    async def _parent_close_policy(self, task: OutboxTask) -> None:
        for child in task.data["children"]:
            ns = await self._namespace(child["namespace"])
            if ns is not None:
                await self._apply_policy(ns.id, child["workflow_id"], child["run_id"], task.run_id, child["policy"])
        await self.engine.store.delete_transfer_task(task.task_id)

    async def _apply_policy(self, namespace_id: str, workflow_id: str, first_run_id: str, parent_run_id: str, policy: int) -> None:
        """Terminate or cancel the current run of a child chain, if it still belongs to the parent."""

        def op(t: Transition) -> None:
            s = t.state
            if not s.running or s.parent_run_id != parent_run_id or s.first_execution_run_id != first_run_id:
                raise StaleTask("child chain already closed or not ours")
            if policy == ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL:
                t.request_cancel("by parent close policy", SYSTEM_IDENTITY)
            else:
                t.terminate("by parent close policy", None, SYSTEM_IDENTITY)

        if policy == ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON:
            return
        try:
            await self.engine.update(namespace_id, workflow_id, "", op)
        except (StaleTask, NotFound):
            pass

    # -- signals and cancellations of other runs -------------------------------------------

    async def _signal_external(self, task: OutboxTask) -> None:
        await self._external(task)

    async def _schedule_run_closed(self, task: OutboxTask) -> None:
        """A run a schedule started closed: the schedule notes it (pause on failure, recent
        actions) and takes the starts that waited for it; then the row goes."""
        await self.engine.schedules.step(task.namespace_id, task.data["schedule_id"])
        await self.engine.store.delete_transfer_task(task.task_id)

    async def _cancel_external(self, task: OutboxTask) -> None:
        await self._external(task)

    async def _external(self, task: OutboxTask) -> None:
        e = self.engine
        iid = task.data["initiated_event_id"]
        s = await self._load_origin(task)
        r = s.external_requests.get(iid) if s is not None and s.running else None
        if r is None:
            await e.store.delete_transfer_task(task.task_id)
            return
        [initiated] = await e.read_events(s.run_id, iid, iid + 1)
        sender = WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id)
        if r.kind == "signal":
            a = initiated.signal_external_workflow_execution_initiated_event_attributes

            def deliver(t: Transition) -> None:
                _check_target(t, r.child_workflow_only, s.run_id)
                t.signal(a.signal_name, a.input, SYSTEM_IDENTITY, a.header, f"signal-external:{s.run_id}:{iid}", sender)

        else:
            a = initiated.request_cancel_external_workflow_execution_initiated_event_attributes

            def deliver(t: Transition) -> None:
                # Cancelling a run that already closed succeeds without effect, as for clients.
                _check_target(t, r.child_workflow_only, s.run_id, require_running=False)
                t.request_cancel(a.reason, SYSTEM_IDENTITY, iid, sender)

        ns = await self._namespace(r.namespace)
        if ns is None:
            cause = children.NAMESPACE_NOT_FOUND_CAUSE[r.kind]
        else:
            try:
                await e.update(ns.id, r.workflow_id, r.run_id, deliver)
                cause = 0
            except NotFound:
                cause = children.NOT_FOUND_CAUSE[r.kind]
        completed_id = a.workflow_task_completed_event_id
        await self._record(
            task, s.namespace_id, s.workflow_id, s.run_id, lambda t: children.external_done(t, iid, cause, completed_id)
        )


def _check_target(t: Transition, child_only: bool, sender_run_id: str, require_running: bool = True) -> None:
    s = t.state
    if require_running and not s.running:
        raise NotFound("workflow execution already completed")
    if child_only and s.parent_run_id != sender_run_id:
        raise NotFound("target is not a child of the requesting workflow")
