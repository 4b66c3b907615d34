"""Starting, signalling, updating, cancelling, terminating, describing and querying workflows, and their histories."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.common.v1 import ActivityType, Memo, Payloads, Priority, SearchAttributes, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    HistoryEventFilterType,
    PendingActivityState,
    QueryRejectCondition,
    ResetReapplyType,
    ResourceExhaustedCause,
    ResourceExhaustedScope,
    UpdateWorkflowExecutionLifecycleStage,
    WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.errordetails.v1 import MultiOperationExecutionFailure, ResourceExhaustedFailure, WorkflowNotReadyFailure
from temporalio.api.failure.v1 import Failure, MultiOperationExecutionAborted
from temporalio.api.history.v1 import History
from temporalio.api.query.v1 import QueryRejected
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Outcome as UpdateOutcome
from temporalio.api.update.v1 import UpdateRef
from temporalio.api.workflow.v1 import (
    PendingActivityInfo,
    PendingWorkflowTaskInfo,
    WorkflowExecutionConfig,
    WorkflowExecutionInfo,
)
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.clock import monotonic
from odin.errors import FailedPrecondition, InvalidArgument, NotFound, OdinError, ResourceExhausted
from odin.frontend.base import FrontendBase
from odin.frontend.common import (
    DEFAULT_HISTORY_PAGE,
    HISTORY_LONG_POLL,
    MAX_ID_LENGTH,
    MAX_OFFSET,
    check_enum,
    check_id,
    check_text,
    page_size,
)
from odin.frontend.limits import limits_for
from odin.history import activity_ops, cron, deployments, operations, retry, updates
from odin.history.events import duration, optional_duration, reset_points, seconds, timestamp
from odin.history.machine import transient_events
from odin.history.notifier import run_key
from odin.history.reset import Reapply
from odin.history.start import SignalInput
from odin.history.state import ActivityInfo, MutableState, unpack
from odin.ids import new_id
from odin.persistence import archive
from odin.persistence.store import NamespaceRecord
from odin.visibility import search_attributes
from odin.visibility.search_attributes import settable_types


class WorkflowCalls(FrontendBase):
    # -- starting and addressing runs ------------------------------------------------------

    async def start_workflow_execution(self, req: ws.StartWorkflowExecutionRequest) -> ws.StartWorkflowExecutionResponse:
        ns = await self._validate_start(req)
        eager_request_id = new_id() if req.request_eager_execution else None
        outcome = await self.engine.start_workflow(ns.id, ns.name, req, eager_request_id=eager_request_id)
        return ws.StartWorkflowExecutionResponse(
            run_id=outcome.run_id,
            started=outcome.started,
            status=Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
            eager_workflow_task=self.tasks.eager_workflow_task(outcome.eager) if outcome.eager else None,
        )

    async def signal_with_start_workflow_execution(
        self, req: ws.SignalWithStartWorkflowExecutionRequest
    ) -> ws.SignalWithStartWorkflowExecutionResponse:
        check_id(req.signal_name, "SignalName")
        if req.workflow_id_conflict_policy == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
            raise InvalidArgument("Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation.")
        start = ws.StartWorkflowExecutionRequest(
            namespace=req.namespace,
            workflow_id=req.workflow_id,
            workflow_type=req.workflow_type,
            task_queue=req.task_queue,
            input=req.input,
            workflow_execution_timeout=req.workflow_execution_timeout,
            workflow_run_timeout=req.workflow_run_timeout,
            workflow_task_timeout=req.workflow_task_timeout,
            identity=req.identity,
            request_id=req.request_id,
            workflow_id_reuse_policy=req.workflow_id_reuse_policy,
            workflow_id_conflict_policy=req.workflow_id_conflict_policy,
            retry_policy=req.retry_policy if req.HasField("retry_policy") else None,
            cron_schedule=req.cron_schedule,
            memo=req.memo,
            search_attributes=req.search_attributes,
            header=req.header,
            workflow_start_delay=req.workflow_start_delay if req.HasField("workflow_start_delay") else None,
            priority=req.priority,
        )
        ns = await self._validate_start(start)
        limits_for(ns).check_blob(req.signal_input.ByteSize(), "SignalWithStartWorkflowExecution signal input", ns.name)
        signal = SignalInput(req.signal_name, req.signal_input, req.identity, req.header, f"signal-with-start:{start.request_id}")
        outcome = await self.engine.start_workflow(ns.id, ns.name, start, signal=signal)
        return ws.SignalWithStartWorkflowExecutionResponse(run_id=outcome.run_id, started=outcome.started)

    async def _validate_start(self, req: ws.StartWorkflowExecutionRequest) -> NamespaceRecord:
        ns = await self.namespace(req.namespace)
        check_id(req.workflow_id, "WorkflowId")
        check_id(req.workflow_type.name, "WorkflowType")
        check_id(req.task_queue.name, "TaskQueue")
        if len(req.request_id) > MAX_ID_LENGTH:
            raise InvalidArgument("RequestId exceeds length limit.")
        check_text(req.request_id, "RequestId")
        _check_id_policies(req.workflow_id_reuse_policy, req.workflow_id_conflict_policy)
        if req.HasField("priority") and req.priority.priority_key < 0:
            raise InvalidArgument("PriorityKey cannot be negative.")
        for name, value in (
            ("WorkflowExecutionTimeout", req.workflow_execution_timeout),
            ("WorkflowRunTimeout", req.workflow_run_timeout),
            ("WorkflowTaskTimeout", req.workflow_task_timeout),
            ("WorkflowStartDelay", req.workflow_start_delay),
        ):
            if seconds(value) < 0:
                raise InvalidArgument(f"Invalid {name}: it cannot be negative.")
        if req.cron_schedule:
            try:
                cron.validate(req.cron_schedule)
            except cron.InvalidCronSchedule as exc:
                raise InvalidArgument(str(exc)) from exc
            if seconds(req.workflow_start_delay) > 0:
                raise InvalidArgument("CronSchedule and WorkflowStartDelay may not be used together.")
        if req.HasField("retry_policy"):
            try:
                retry.normalize(req.retry_policy)
            except retry.InvalidRetryPolicy as exc:
                raise InvalidArgument(str(exc)) from exc
        if req.HasField("search_attributes"):
            types = settable_types(await self.engine.search_attributes.custom(ns.id))
            try:
                req.search_attributes.CopyFrom(search_attributes.validate(req.search_attributes, types))
            except search_attributes.InvalidSearchAttribute as exc:
                raise InvalidArgument(str(exc)) from exc
        limits = limits_for(ns)
        limits.check_blob(req.input.ByteSize(), "StartWorkflowExecution input", ns.name)
        limits.check_memo(req.memo.ByteSize(), ns.name)
        if not req.request_id:
            req.request_id = new_id()
        return ns

    async def signal_workflow_execution(self, req: ws.SignalWorkflowExecutionRequest) -> ws.SignalWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        check_id(req.signal_name, "SignalName")
        limits_for(ns).check_blob(req.input.ByteSize(), "SignalWorkflowExecution input", ns.name)
        await operations.signal(
            self.engine, ns.id, wid, rid, req.signal_name, req.input, req.identity, req.header, req.request_id
        )
        return ws.SignalWorkflowExecutionResponse()

    async def request_cancel_workflow_execution(
        self, req: ws.RequestCancelWorkflowExecutionRequest
    ) -> ws.RequestCancelWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        await operations.request_cancel(self.engine, ns.id, wid, rid, req.reason, req.identity)
        return ws.RequestCancelWorkflowExecutionResponse()

    async def terminate_workflow_execution(
        self, req: ws.TerminateWorkflowExecutionRequest
    ) -> ws.TerminateWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        await operations.terminate(self.engine, ns.id, wid, rid, req.reason, req.details, req.identity)
        return ws.TerminateWorkflowExecutionResponse()

    async def reset_workflow_execution(self, req: ws.ResetWorkflowExecutionRequest) -> ws.ResetWorkflowExecutionResponse:
        # Temporal's frontend checks, in its order and words.
        if not req.request_id:
            raise InvalidArgument("RequestId is not set on request.")
        if len(req.request_id) > MAX_ID_LENGTH:
            raise InvalidArgument("RequestId exceeds length limit.")
        check_text(req.request_id, "RequestId")
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        if req.reset_reapply_type not in ResetReapplyType.values():
            raise OdinError(f"unknown reset reapply type: {req.reset_reapply_type}")
        if req.post_reset_operations:
            raise InvalidArgument("Post-reset operations are not supported.")
        reapply = Reapply.of(req.reset_reapply_type, req.reset_reapply_exclude_types)
        run_id = await operations.reset(
            self.engine, ns.id, wid, rid, req.workflow_task_finish_event_id, req.reason, req.request_id, reapply
        )
        return ws.ResetWorkflowExecutionResponse(run_id=run_id)

    # -- updates ---------------------------------------------------------------------------

    async def update_workflow_execution(
        self, req: ws.UpdateWorkflowExecutionRequest, timeout: float
    ) -> ws.UpdateWorkflowExecutionResponse:
        _check_update(req)
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        limits_for(ns).check_blob(req.request.input.args.ByteSize(), "UpdateWorkflowExecution input", ns.name)
        if not req.request.meta.update_id:
            req.request.meta.update_id = new_id()
        pinned = bool(req.workflow_execution.run_id)
        u, t = await operations.admit_update(self.engine, ns.id, wid, rid, req.request, pinned)
        return await self._await_update(ns.id, wid, t.state.run_id, u.update_id, req.wait_policy.lifecycle_stage, timeout)

    async def poll_workflow_execution_update(
        self, req: ws.PollWorkflowExecutionUpdateRequest, timeout: float
    ) -> ws.PollWorkflowExecutionUpdateResponse:
        ref = req.update_ref
        ns, wid, rid = await self._target(req.namespace, ref.workflow_execution)
        check_id(ref.update_id, "UpdateId")
        check_enum(UpdateWorkflowExecutionLifecycleStage, req.wait_policy.lifecycle_stage, "WaitPolicy.LifecycleStage")
        s = (await self.engine.load(ns.id, wid, rid)).state
        response = await self._await_update(ns.id, wid, s.run_id, ref.update_id, req.wait_policy.lifecycle_stage, timeout)
        return ws.PollWorkflowExecutionUpdateResponse(
            outcome=response.outcome if response.HasField("outcome") else None,
            stage=response.stage,
            update_ref=response.update_ref,
        )

    async def _await_update(
        self, namespace_id: str, workflow_id: str, run_id: str, update_id: str, wait_for: int, timeout: float
    ) -> ws.UpdateWorkflowExecutionResponse:
        """Wait until the update reaches ``wait_for`` (or the call's budget runs out) and describe it."""
        deadline = monotonic() + min(HISTORY_LONG_POLL, max(timeout - 1.0, 0.0))
        ref = UpdateRef(workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id), update_id=update_id)
        async with self.engine.notifier.subscribe(run_key(namespace_id, workflow_id, run_id)) as sub:
            while True:
                s = (await self.engine.load(namespace_id, workflow_id, run_id)).state
                u = s.updates.get(update_id)
                if u is None:
                    raise NotFound(f'update "{update_id}" not found')
                if u.stage == updates.ABORTED:
                    raise _update_aborted(u.aborted)
                stage = updates.STAGES[u.stage]
                if stage >= wait_for or monotonic() >= deadline:
                    response = ws.UpdateWorkflowExecutionResponse(update_ref=ref, stage=stage)
                    if u.outcome is not None:
                        response.outcome.CopyFrom(unpack(UpdateOutcome, u.outcome))
                    return response
                await sub.wait(deadline - monotonic())

    async def execute_multi_operation(
        self, req: ws.ExecuteMultiOperationRequest, timeout: float
    ) -> ws.ExecuteMultiOperationResponse:
        """Update-with-start: a start (usually USE_EXISTING) and an update of that workflow."""
        ops_ = list(req.operations)
        if len(ops_) != 2 or not ops_[0].HasField("start_workflow") or not ops_[1].HasField("update_workflow"):
            raise InvalidArgument("ExecuteMultiOperation supports exactly [start_workflow, update_workflow].")
        start, update = ops_[0].start_workflow, ops_[1].update_workflow
        start.namespace = start.namespace or req.namespace
        update.namespace = update.namespace or req.namespace
        try:
            _check_update(update)  # both operations are checked before either runs
        except OdinError as err:
            raise _multi_operation_failure(err, 1) from None
        try:
            if start.namespace != req.namespace or update.namespace != req.namespace:
                raise InvalidArgument("Operations must use the request's namespace.")
            if update.workflow_execution.workflow_id != start.workflow_id or update.workflow_execution.run_id:
                raise InvalidArgument("The update must target the started workflow id, without a run id.")
            if start.cron_schedule or seconds(start.workflow_start_delay) > 0:
                raise InvalidArgument("Update-with-start cannot use a cron schedule or a start delay.")
            ns = await self.namespace(req.namespace)
            update_id = update.request.meta.update_id
            existing = await operations.run_to_attach(self.engine, ns.id, start.workflow_id, update_id) if update_id else None
            if existing is not None:
                # The update is known to the workflow's run: join it, start nothing.
                started = ws.StartWorkflowExecutionResponse(run_id=existing.run_id, started=False, status=Status.ValueType(existing.status))
            else:
                started = await self.start_workflow_execution(start)
        except OdinError as err:
            raise _multi_operation_failure(err, 0) from None
        update.workflow_execution.run_id = started.run_id
        try:
            updated = await self.update_workflow_execution(update, timeout)
        except OdinError as err:
            raise _multi_operation_failure(err, 1) from None
        return ws.ExecuteMultiOperationResponse(
            responses=[
                ws.ExecuteMultiOperationResponse.Response(start_workflow=started),
                ws.ExecuteMultiOperationResponse.Response(update_workflow=updated),
            ]
        )

    # -- history ---------------------------------------------------------------------------

    async def get_workflow_execution_history(
        self, req: ws.GetWorkflowExecutionHistoryRequest, timeout: float
    ) -> ws.GetWorkflowExecutionHistoryResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)
        page = _HistoryToken.parse(req.next_page_token)
        if page and rid and page.run_id != rid:
            raise InvalidArgument("Next page token does not match the requested run.")
        try:
            loaded = await self.engine.load(ns.id, wid, page.run_id if page else rid)
        except NotFound:
            archived = await self._archived_history(ns, wid, rid, req.history_event_filter_type)
            if archived is None:
                raise
            return archived
        s = loaded.state
        budget = min(HISTORY_LONG_POLL, max(timeout - 1.0, 0.0))
        deadline = monotonic() + budget
        close_only = req.history_event_filter_type == HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
        first = page.next_event_id if page else 1
        async with self.engine.notifier.subscribe(run_key(ns.id, wid, s.run_id)) as sub:
            while True:
                if close_only:
                    if not s.running:
                        events = await operations.read_events(self.engine, s.run_id, s.close_event_id, s.close_event_id + 1)
                        return ws.GetWorkflowExecutionHistoryResponse(history=History(events=events))
                elif first < s.next_event_id:
                    size = page_size(req.maximum_page_size, DEFAULT_HISTORY_PAGE)
                    events = await operations.read_events(self.engine, s.run_id, first, s.next_event_id, size)
                    after = events[-1].event_id + 1 if events else first
                    if after >= s.next_event_id and s.wft is not None:
                        # A worker refetching history must also see the transient task it works on.
                        events += transient_events(s, s.wft)
                    more = after < s.next_event_id or (req.wait_new_event and s.running)
                    token = _HistoryToken(s.run_id, after).encode() if more else b""
                    return ws.GetWorkflowExecutionHistoryResponse(history=History(events=events), next_page_token=token)
                if not req.wait_new_event or not s.running:
                    return ws.GetWorkflowExecutionHistoryResponse(history=History())
                remaining = deadline - monotonic()
                if remaining <= 0 or not await sub.wait(remaining):
                    # Nothing new in time: an empty page with a token tells the client to ask again.
                    return ws.GetWorkflowExecutionHistoryResponse(
                        history=History(), next_page_token=_HistoryToken(s.run_id, first).encode()
                    )
                change = sub.change
                if change is not None and change.running and (close_only or change.next_event_id <= first):
                    continue  # the run moved on, but not in a way this caller waits for
                if change is not None and not change.running and close_only:
                    # Closed: its close event is its last one, so the change says where it is.
                    events = await operations.read_events(self.engine, s.run_id, change.next_event_id - 1, change.next_event_id)
                    return ws.GetWorkflowExecutionHistoryResponse(history=History(events=events))
                s = (await self.engine.load(ns.id, wid, s.run_id)).state

    async def _archived_history(
        self, ns: NamespaceRecord, workflow_id: str, run_id: str, filter_type: int
    ) -> ws.GetWorkflowExecutionHistoryResponse | None:
        """A run deleted after retention, read back from its namespace's archive (run id needed)."""
        uri = archive.archive_uri_for(ns.data, self.archive_uri)
        if not uri or not run_id:
            return None
        events = await asyncio.to_thread(archive.archiver_for(uri).read_history, ns.id, workflow_id, run_id)
        if events is None:
            return None
        if filter_type == HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT:
            events = events[-1:]
        return ws.GetWorkflowExecutionHistoryResponse(history=History(events=events), archived=True)

    async def get_workflow_execution_history_reverse(
        self, req: ws.GetWorkflowExecutionHistoryReverseRequest
    ) -> ws.GetWorkflowExecutionHistoryReverseResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)
        page = _HistoryToken.parse(req.next_page_token)
        if page and rid and page.run_id != rid:
            raise InvalidArgument("Next page token does not match the requested run.")
        s = (await self.engine.load(ns.id, wid, page.run_id if page else rid)).state
        upper = min(page.next_event_id, s.next_event_id) if page else s.next_event_id
        size = page_size(req.maximum_page_size, DEFAULT_HISTORY_PAGE)
        first = max(1, upper - size)
        events = await operations.read_events(self.engine, s.run_id, first, upper)
        events.reverse()
        token = _HistoryToken(s.run_id, first).encode() if first > 1 else b""
        return ws.GetWorkflowExecutionHistoryReverseResponse(history=History(events=events), next_page_token=token)

    # -- describe and query ----------------------------------------------------------------

    async def describe_workflow_execution(
        self, req: ws.DescribeWorkflowExecutionRequest
    ) -> ws.DescribeWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)
        s = (await self.engine.load(ns.id, wid, rid)).state
        info = execution_info(s)
        pending = [pending_activity(s, a) for a in s.activities.values()]
        response = ws.DescribeWorkflowExecutionResponse(
            execution_config=WorkflowExecutionConfig(
                task_queue=TaskQueue(name=s.task_queue),
                workflow_execution_timeout=optional_duration(s.execution_timeout),
                workflow_run_timeout=optional_duration(s.run_timeout),
                default_workflow_task_timeout=duration(s.workflow_task_timeout),
                user_metadata=unpack(UserMetadata, s.user_metadata),
            ),
            workflow_execution_info=info,
            pending_activities=pending,
        )
        if s.auto_reset_points:
            response.workflow_execution_info.auto_reset_points.CopyFrom(reset_points(s.auto_reset_points))
        versioning = deployments.versioning_info(s)
        if versioning is not None:
            response.workflow_execution_info.versioning_info.CopyFrom(versioning)
        extended = response.workflow_extended_info
        extended.reset_run_id = s.reset_run_id
        if s.last_reset_time:
            extended.last_reset_time.CopyFrom(timestamp(s.last_reset_time))
        extended.original_start_time.CopyFrom(timestamp(s.original_start_time or s.start_time))
        if s.wft is not None:
            w = s.wft
            response.pending_workflow_task.CopyFrom(
                PendingWorkflowTaskInfo(
                    state=2 if w.started_event_id else 1,
                    scheduled_time=timestamp(w.scheduled_time),
                    original_scheduled_time=timestamp(w.scheduled_time),
                    started_time=timestamp(w.started_time) if w.started_time else None,
                    attempt=w.attempt,
                )
            )
        return response

    async def query_workflow(self, req: ws.QueryWorkflowRequest, timeout: float) -> ws.QueryWorkflowResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)
        check_id(req.query.query_type, "QueryType")
        s = (await self.engine.load(ns.id, wid, rid)).state
        cond = req.query_reject_condition
        if not s.running and (
            cond == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN
            or (cond == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY and s.status != Status.WORKFLOW_EXECUTION_STATUS_COMPLETED)
        ):
            return ws.QueryWorkflowResponse(query_rejected=QueryRejected(status=s.status))
        answer = await self.tasks.query(ns.id, wid, s.run_id, req.query, max(timeout - 0.5, 0.0))
        return ws.QueryWorkflowResponse(query_result=answer)


    # -- deleting runs ---------------------------------------------------------------------

    async def delete_workflow_execution(
        self, req: ws.DeleteWorkflowExecutionRequest
    ) -> ws.DeleteWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        await operations.delete(self.engine, ns.id, wid, rid)
        return ws.DeleteWorkflowExecutionResponse()


def _check_id_policies(reuse: int, conflict: int) -> None:
    check_enum(WorkflowIdReusePolicy, reuse, "WorkflowIdReusePolicy")
    check_enum(WorkflowIdConflictPolicy, conflict, "WorkflowIdConflictPolicy")
    if reuse == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING and conflict:
        raise InvalidArgument(
            "Invalid WorkflowIdReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING cannot be used together "
            "with a WorkflowIdConflictPolicy."
        )
    if (
        reuse == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
        and conflict == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
    ):
        raise InvalidArgument(
            "Invalid WorkflowIdReusePolicy: WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE cannot be used together "
            "with WorkflowIdConflictPolicy WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING."
        )


def _update_aborted(reason: str) -> OdinError:
    """What Temporal answers the caller of an update that ended without an outcome: NOT_FOUND when
    its run closed, RESOURCE_EXHAUSTED (retryable: SDKs send it again, to the successor) when the
    run continued as new, FAILED_PRECONDITION when its workflow task failed."""
    message = updates.ABORT_MESSAGES[reason]
    if reason == updates.CONTINUED:
        return ResourceExhausted(
            message,
            ResourceExhaustedFailure(
                cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_BUSY_WORKFLOW,
                scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
            ),
        )
    if reason == updates.TASK_FAILED:
        return FailedPrecondition(message, WorkflowNotReadyFailure())
    return NotFound(message)


def _check_update(req: ws.UpdateWorkflowExecutionRequest) -> None:
    """What an update request must hold before anything runs."""
    check_id(req.request.input.name, "Update name")
    if len(req.request.meta.update_id) > MAX_ID_LENGTH:
        raise InvalidArgument("UpdateId exceeds length limit.")
    check_text(req.request.meta.update_id, "UpdateId")
    check_enum(UpdateWorkflowExecutionLifecycleStage, req.wait_policy.lifecycle_stage, "WaitPolicy.LifecycleStage")


@dataclass
class _HistoryToken:
    run_id: str
    next_event_id: int

    def encode(self) -> bytes:
        return json.dumps({"r": self.run_id, "n": self.next_event_id}).encode()

    @classmethod
    def parse(cls, data: bytes) -> _HistoryToken | None:
        if not data:
            return None
        try:
            raw = json.loads(data)
            token = cls(str(raw["r"]), int(raw["n"]))
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            raise InvalidArgument("Invalid NextPageToken.") from None
        if not 1 <= token.next_event_id <= MAX_OFFSET:
            raise InvalidArgument("Invalid NextPageToken.")
        return token


def execution_info(s: MutableState) -> WorkflowExecutionInfo:
    info = WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
        type=WorkflowType(name=s.workflow_type),
        start_time=timestamp(s.start_time),
        status=s.status,
        history_length=s.next_event_id - 1,
        execution_time=timestamp(s.execution_time or s.start_time),
        memo=unpack(Memo, s.memo),
        search_attributes=unpack(SearchAttributes, s.search_attributes),
        task_queue=s.task_queue,
        history_size_bytes=s.history_size_bytes,
        first_run_id=s.first_execution_run_id,
    )
    if s.last_build_id:
        info.most_recent_worker_version_stamp.build_id = s.last_build_id
    if s.parent_workflow_id:
        info.parent_namespace_id = s.parent_namespace_id
        info.parent_execution.CopyFrom(WorkflowExecution(workflow_id=s.parent_workflow_id, run_id=s.parent_run_id))
    if s.root_workflow_id:
        info.root_execution.CopyFrom(WorkflowExecution(workflow_id=s.root_workflow_id, run_id=s.root_run_id))
    if s.close_time:
        info.close_time.CopyFrom(timestamp(s.close_time))
        info.execution_duration.CopyFrom(duration(s.close_time - s.start_time))
    return info


def _multi_operation_failure(err: OdinError, failed_index: int) -> OdinError:
    """One operation failed: the other is reported aborted, as Temporal's frontend does."""
    statuses = []
    for i in range(2):
        if i == failed_index:
            status = MultiOperationExecutionFailure.OperationStatus(
                code=grpc.StatusCode[err.code].value[0], message=err.message
            )
            if err.detail is not None:
                detail = AnyProto()
                detail.Pack(err.detail)
                status.details.append(detail)
        else:
            aborted = AnyProto()
            aborted.Pack(MultiOperationExecutionAborted())
            status = MultiOperationExecutionFailure.OperationStatus(
                code=grpc.StatusCode.ABORTED.value[0], message="Operation was aborted.", details=[aborted]
            )
        statuses.append(status)
    wrapped = type(err)("Update-with-Start could not be executed.", MultiOperationExecutionFailure(statuses=statuses))
    return wrapped


def pending_activity(s: MutableState, a: ActivityInfo) -> PendingActivityInfo:
    if a.cancel_requested:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    elif a.paused:
        state = (
            PendingActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED
            if a.started
            else PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        )
    elif a.started:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    else:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    info = PendingActivityInfo(
        activity_id=a.activity_id,
        activity_type=ActivityType(name=a.activity_type),
        state=state,
        heartbeat_details=unpack(Payloads, a.heartbeat_details),
        attempt=a.attempt,
        maximum_attempts=a.retry.maximum_attempts,
        scheduled_time=timestamp(a.scheduled_time),
        last_failure=unpack(Failure, a.last_failure),
        last_worker_identity=a.last_worker_identity,
        paused=a.paused,
        priority=unpack(Priority, a.priority) or Priority(),
        activity_options=activity_ops.options_of(a),
    )
    # Shown with the queue's own name as its normal name (as Temporal describes it).
    info.activity_options.task_queue.ClearField("kind")
    info.activity_options.task_queue.normal_name = a.task_queue
    if a.paused:
        info.pause_info.pause_time.CopyFrom(timestamp(a.pause_time))
        info.pause_info.manual.identity = a.pause_identity
        info.pause_info.manual.reason = a.pause_reason
    if a.last_attempt_complete_time:
        info.last_attempt_complete_time.CopyFrom(timestamp(a.last_attempt_complete_time))
    if a.last_heartbeat_time:
        info.last_heartbeat_time.CopyFrom(timestamp(a.last_heartbeat_time))
    if a.started_time:
        info.last_started_time.CopyFrom(timestamp(a.started_time))
    if a.schedule_to_close:
        info.expiration_time.CopyFrom(timestamp(a.first_scheduled_time + a.schedule_to_close))
    if not a.started and a.attempt > 1 and not a.paused:
        info.next_attempt_schedule_time.CopyFrom(timestamp(a.scheduled_time))
        if a.last_attempt_complete_time:
            info.current_retry_interval.CopyFrom(duration(max(a.scheduled_time - a.last_attempt_complete_time, 0.0)))
    return info

