"""FrontendService: the one place requests are validated and namespaces resolved.

Both doors (gRPC, and the REST app later) call this with WorkflowService request protos and get
response protos back; errors are ``odin.errors`` exceptions.
"""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import uuid
from dataclasses import dataclass

from temporalio.api.common.v1 import (
    ActivityType,
    Memo,
    Payload,
    Payloads,
    SearchAttributes,
    WorkflowExecution,
    WorkflowType,
)
from temporalio.api.enums.v1 import (
    HistoryEventFilterType,
    NamespaceState,
    PendingActivityState,
    QueryRejectCondition,
    TaskQueueType,
)
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.errordetails.v1 import MultiOperationExecutionFailure, NamespaceNotFoundFailure
from temporalio.api.failure.v1 import MultiOperationExecutionAborted
from temporalio.api.update.v1 import Outcome as UpdateOutcome
from temporalio.api.update.v1 import UpdateRef
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History
from temporalio.api.namespace.v1 import NamespaceConfig, NamespaceInfo
from temporalio.api.query.v1 import QueryRejected, WorkflowQueryResult
from temporalio.api.replication.v1 import NamespaceReplicationConfig
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueue, TaskQueuePartitionMetadata, TaskQueueStatus
from temporalio.api.workflow.v1 import (
    PendingActivityInfo,
    PendingWorkflowTaskInfo,
    WorkflowExecutionConfig,
    WorkflowExecutionInfo,
)
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin import __version__
from odin.clock import Clock, monotonic
from odin.errors import InvalidArgument, NotFound, OdinError
from odin.history import activities, cron, retry, updates
from odin.history.engine import HistoryEngine
from odin.history.events import duration, seconds, timestamp
from odin.history.machine import transient_events
from odin.history.notifier import run_key
from odin.history.start import SignalInput
from odin.history.state import ActivityInfo, MutableState, unpack
from odin.history.worker_tasks import WorkerTasks
from odin.matching import ACTIVITY, WORKFLOW
from odin.visibility import query as visibility_query
from odin.visibility import search_attributes
from odin.visibility import sql as visibility_sql
from odin.visibility.search_attributes import settable_types
from odin.persistence import archive
from odin.persistence.store import ExecutionStore, NamespaceRecord

MAX_ID_LENGTH = 1000
CLUSTER_NAME = "active"
MAX_NAMESPACE_LENGTH = 255
NAMESPACE_CACHE_TTL = 300.0
DEFAULT_RETENTION = 72 * 3600.0
DEFAULT_HISTORY_PAGE = 256
MAX_LIST_PAGE = 1000
# Longest a history long poll waits before answering "nothing yet" (Temporal: 20 s).
HISTORY_LONG_POLL = 20.0


def _check_id(value: str, what: str, limit: int = MAX_ID_LENGTH) -> None:
    if not value:
        raise InvalidArgument(f"{what} is not set on request.")
    if len(value) > limit:
        raise InvalidArgument(f"{what} exceeds length limit of {limit}.")


@dataclass
class _Cached:
    record: NamespaceRecord
    at: float


class FrontendService:
    def __init__(
        self,
        store: ExecutionStore,
        engine: HistoryEngine,
        clock: Clock,
        long_poll_seconds: float = 60.0,
        archive_uri: str | None = None,
    ):
        self.archive_uri = archive_uri
        self.store = store
        self.engine = engine
        self.tasks = WorkerTasks(engine)
        self.clock = clock
        self.long_poll_seconds = long_poll_seconds
        self._ns_cache: dict[str, _Cached] = {}

    # -- namespaces ------------------------------------------------------------------------

    async def namespace(self, name: str) -> NamespaceRecord:
        if not name:
            raise InvalidArgument("Namespace is not set on request.")
        cached = self._ns_cache.get(name)
        if cached is not None and monotonic() - cached.at < NAMESPACE_CACHE_TTL:
            return cached.record
        record = await self.store.get_namespace(name=name)
        if record is None:
            raise NotFound(f"Namespace {name} is not found.", NamespaceNotFoundFailure(namespace=name))
        self._ns_cache[name] = _Cached(record, monotonic())
        return record

    async def ensure_namespace(self, name: str, retention_seconds: float = DEFAULT_RETENTION) -> NamespaceRecord:
        try:
            return await self.namespace(name)
        except NotFound:
            pass
        req = ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=duration(retention_seconds))
        try:
            await self.register_namespace(req)
        except Exception:
            pass  # registered concurrently
        return await self.namespace(name)

    async def register_namespace(self, req: ws.RegisterNamespaceRequest) -> ws.RegisterNamespaceResponse:
        _check_id(req.namespace, "Namespace", MAX_NAMESPACE_LENGTH)
        retention = req.workflow_execution_retention_period.ToTimedelta().total_seconds() or DEFAULT_RETENTION
        if retention < 0:
            raise InvalidArgument("WorkflowExecutionRetentionPeriod cannot be negative.")
        for uri in (req.history_archival_uri, req.visibility_archival_uri):
            if uri:
                try:
                    archive.validate_uri(uri)
                except archive.ArchiveError as exc:
                    raise InvalidArgument(f"Invalid archival URI: {exc}") from None
        await self.store.create_namespace(
            NamespaceRecord(
                id=str(uuid.uuid4()),
                name=req.namespace,
                state=NamespaceState.NAMESPACE_STATE_REGISTERED,
                data={
                    "description": req.description,
                    "owner_email": req.owner_email,
                    "retention_seconds": retention,
                    "data": dict(req.data),
                    "history_archival_state": req.history_archival_state,
                    "history_archival_uri": req.history_archival_uri,
                    "visibility_archival_state": req.visibility_archival_state,
                    "visibility_archival_uri": req.visibility_archival_uri,
                },
                created_at=self.clock.now(),
            )
        )
        return ws.RegisterNamespaceResponse()

    def _describe_ns(self, ns: NamespaceRecord) -> ws.DescribeNamespaceResponse:
        return ws.DescribeNamespaceResponse(
            namespace_info=NamespaceInfo(
                name=ns.name,
                id=ns.id,
                state=ns.state,
                description=ns.data.get("description", ""),
                owner_email=ns.data.get("owner_email", ""),
                data=ns.data.get("data", {}),
            ),
            config=NamespaceConfig(
                workflow_execution_retention_ttl=duration(ns.data.get("retention_seconds", DEFAULT_RETENTION)),
                history_archival_state=ns.data.get("history_archival_state", 0),
                history_archival_uri=ns.data.get("history_archival_uri", ""),
                visibility_archival_state=ns.data.get("visibility_archival_state", 0),
                visibility_archival_uri=ns.data.get("visibility_archival_uri", ""),
            ),
            replication_config=NamespaceReplicationConfig(active_cluster_name=CLUSTER_NAME),
            is_global_namespace=False,
        )

    async def describe_namespace(self, req: ws.DescribeNamespaceRequest) -> ws.DescribeNamespaceResponse:
        if req.id:
            ns = await self.store.get_namespace(id=req.id)
            if ns is None:
                raise NotFound(f"Namespace {req.id} is not found.", NamespaceNotFoundFailure(namespace=req.id))
        else:
            ns = await self.namespace(req.namespace)
        return self._describe_ns(ns)

    async def list_namespaces(self, req: ws.ListNamespacesRequest) -> ws.ListNamespacesResponse:
        all_ns = await self.store.list_namespaces()
        try:
            start = int(req.next_page_token or b"0")
            if start < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("Invalid NextPageToken.") from None
        size = req.page_size or 100
        page = all_ns[start : start + size]
        token = str(start + size).encode() if start + size < len(all_ns) else b""
        return ws.ListNamespacesResponse(namespaces=[self._describe_ns(ns) for ns in page], next_page_token=token)

    # -- starting and addressing runs ------------------------------------------------------

    async def start_workflow_execution(self, req: ws.StartWorkflowExecutionRequest) -> ws.StartWorkflowExecutionResponse:
        ns = await self._validate_start(req)
        run_id, started = await self.engine.start_workflow(ns.id, ns.name, req)
        return ws.StartWorkflowExecutionResponse(
            run_id=run_id, started=started, status=Status.WORKFLOW_EXECUTION_STATUS_RUNNING
        )

    async def signal_with_start_workflow_execution(
        self, req: ws.SignalWithStartWorkflowExecutionRequest
    ) -> ws.SignalWithStartWorkflowExecutionResponse:
        _check_id(req.signal_name, "SignalName")
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
        signal = SignalInput(req.signal_name, req.signal_input, req.identity, req.header, f"signal-with-start:{start.request_id}")
        run_id, started = await self.engine.start_workflow(ns.id, ns.name, start, signal=signal)
        return ws.SignalWithStartWorkflowExecutionResponse(run_id=run_id, started=started)

    async def _validate_start(self, req: ws.StartWorkflowExecutionRequest) -> NamespaceRecord:
        ns = await self.namespace(req.namespace)
        _check_id(req.workflow_id, "WorkflowId")
        _check_id(req.workflow_type.name, "WorkflowType")
        _check_id(req.task_queue.name, "TaskQueue")
        if len(req.request_id) > MAX_ID_LENGTH:
            raise InvalidArgument("RequestId exceeds length limit.")
        for name, value in (
            ("WorkflowExecutionTimeout", req.workflow_execution_timeout),
            ("WorkflowRunTimeout", req.workflow_run_timeout),
            ("WorkflowTaskTimeout", req.workflow_task_timeout),
            ("WorkflowStartDelay", req.workflow_start_delay),
        ):
            if value.seconds < 0 or value.nanos < 0:
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
        if not req.request_id:
            req.request_id = str(uuid.uuid4())
        return ns

    async def _target(self, namespace: str, execution: WorkflowExecution, first_execution_run_id: str = ""):
        ns = await self.namespace(namespace)
        _check_id(execution.workflow_id, "WorkflowId")
        run_id = execution.run_id
        if first_execution_run_id:
            current = await self.engine.current_run_id(ns.id, execution.workflow_id)
            if current.first_execution_run_id != first_execution_run_id:
                raise NotFound("workflow execution not found for the given first execution run id")
            run_id = current.run_id
        elif run_id:
            try:
                uuid.UUID(run_id)
            except ValueError:
                raise InvalidArgument("Invalid RunId.") from None
        return ns, execution.workflow_id, run_id

    async def signal_workflow_execution(self, req: ws.SignalWorkflowExecutionRequest) -> ws.SignalWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        _check_id(req.signal_name, "SignalName")
        await self.engine.update(
            ns.id, wid, rid, lambda t: t.signal(req.signal_name, req.input, req.identity, req.header, req.request_id)
        )
        return ws.SignalWorkflowExecutionResponse()

    async def request_cancel_workflow_execution(
        self, req: ws.RequestCancelWorkflowExecutionRequest
    ) -> ws.RequestCancelWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        await self.engine.update(ns.id, wid, rid, lambda t: t.request_cancel(req.reason, req.identity))
        return ws.RequestCancelWorkflowExecutionResponse()

    async def terminate_workflow_execution(
        self, req: ws.TerminateWorkflowExecutionRequest
    ) -> ws.TerminateWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        await self.engine.update(ns.id, wid, rid, lambda t: t.terminate(req.reason, req.details, req.identity))
        return ws.TerminateWorkflowExecutionResponse()

    # -- updates ---------------------------------------------------------------------------

    async def update_workflow_execution(
        self, req: ws.UpdateWorkflowExecutionRequest, timeout: float
    ) -> ws.UpdateWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution, req.first_execution_run_id)
        _check_id(req.request.input.name, "Update name")
        if len(req.request.meta.update_id) > MAX_ID_LENGTH:
            raise InvalidArgument("UpdateId exceeds length limit.")
        if not req.request.meta.update_id:
            req.request.meta.update_id = str(uuid.uuid4())
        u, t = await self.engine.update(ns.id, wid, rid, lambda t: updates.admit(t, req.request))
        return await self._await_update(ns.id, wid, t.state.run_id, u.update_id, req.wait_policy.lifecycle_stage, timeout)

    async def poll_workflow_execution_update(
        self, req: ws.PollWorkflowExecutionUpdateRequest, timeout: float
    ) -> ws.PollWorkflowExecutionUpdateResponse:
        ref = req.update_ref
        ns, wid, rid = await self._target(req.namespace, ref.workflow_execution)
        _check_id(ref.update_id, "UpdateId")
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
                    if s.running:
                        raise NotFound(f"update {update_id} not found")
                    raise NotFound("workflow execution already completed before the update completed")
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
            if start.namespace != req.namespace or update.namespace != req.namespace:
                raise InvalidArgument("Operations must use the request's namespace.")
            if update.workflow_execution.workflow_id != start.workflow_id or update.workflow_execution.run_id:
                raise InvalidArgument("The update must target the started workflow id, without a run id.")
            if start.cron_schedule or seconds(start.workflow_start_delay) > 0:
                raise InvalidArgument("Update-with-start cannot use a cron schedule or a start delay.")
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
                        events = await self.store.read_events(s.run_id, s.close_event_id, s.close_event_id + 1)
                        return ws.GetWorkflowExecutionHistoryResponse(history=History(events=events))
                elif first < s.next_event_id:
                    size = req.maximum_page_size or DEFAULT_HISTORY_PAGE
                    events = await self.store.read_events(s.run_id, first, s.next_event_id, size)
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
        size = req.maximum_page_size or DEFAULT_HISTORY_PAGE
        first = max(1, upper - size)
        events = await self.store.read_events(s.run_id, first, upper)
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
                workflow_execution_timeout=duration(s.execution_timeout),
                workflow_run_timeout=duration(s.run_timeout),
                default_workflow_task_timeout=duration(s.workflow_task_timeout),
            ),
            workflow_execution_info=info,
            pending_activities=pending,
        )
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
        _check_id(req.query.query_type, "QueryType")
        s = (await self.engine.load(ns.id, wid, rid)).state
        cond = req.query_reject_condition
        if not s.running and (
            cond == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN
            or (cond == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY and s.status != Status.WORKFLOW_EXECUTION_STATUS_COMPLETED)
        ):
            return ws.QueryWorkflowResponse(query_rejected=QueryRejected(status=s.status))
        answer = await self.tasks.query(ns.id, wid, s.run_id, req.query, max(timeout - 0.5, 0.0))
        return ws.QueryWorkflowResponse(query_result=answer)

    # -- visibility ------------------------------------------------------------------------

    async def _compile(self, ns: NamespaceRecord, text: str):
        try:
            return visibility_sql.compile_query(text, await self.engine.search_attributes.custom(ns.id))
        except visibility_query.QueryError as exc:
            raise InvalidArgument(f"Invalid query: {exc}") from None

    async def _list(self, namespace: str, text: str, page_size: int, token: bytes):
        ns = await self.namespace(namespace)
        query, where, order = await self._compile(ns, text)
        if query.group_by:
            raise InvalidArgument("Invalid query: GROUP BY is only allowed in CountWorkflowExecutions.")
        try:
            offset = int(token or b"0")
            if offset < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("Invalid NextPageToken.") from None
        size = min(page_size or MAX_LIST_PAGE, MAX_LIST_PAGE)
        rows = await self.store.list_visibility(ns.id, where, order, size + 1, offset)
        more = len(rows) > size
        infos = [visibility_info(row) for row in rows[:size]]
        return infos, str(offset + size).encode() if more else b""

    async def list_workflow_executions(self, req: ws.ListWorkflowExecutionsRequest) -> ws.ListWorkflowExecutionsResponse:
        infos, token = await self._list(req.namespace, req.query, req.page_size, req.next_page_token)
        return ws.ListWorkflowExecutionsResponse(executions=infos, next_page_token=token)

    async def scan_workflow_executions(self, req: ws.ScanWorkflowExecutionsRequest) -> ws.ScanWorkflowExecutionsResponse:
        infos, token = await self._list(req.namespace, req.query, req.page_size, req.next_page_token)
        return ws.ScanWorkflowExecutionsResponse(executions=infos, next_page_token=token)

    async def list_open_workflow_executions(
        self, req: ws.ListOpenWorkflowExecutionsRequest
    ) -> ws.ListOpenWorkflowExecutionsResponse:
        text = _legacy_filter(req, open_runs=True)
        infos, token = await self._list(req.namespace, text, req.maximum_page_size, req.next_page_token)
        return ws.ListOpenWorkflowExecutionsResponse(executions=infos, next_page_token=token)

    async def list_closed_workflow_executions(
        self, req: ws.ListClosedWorkflowExecutionsRequest
    ) -> ws.ListClosedWorkflowExecutionsResponse:
        text = _legacy_filter(req, open_runs=False)
        infos, token = await self._list(req.namespace, text, req.maximum_page_size, req.next_page_token)
        return ws.ListClosedWorkflowExecutionsResponse(executions=infos, next_page_token=token)

    async def count_workflow_executions(
        self, req: ws.CountWorkflowExecutionsRequest
    ) -> ws.CountWorkflowExecutionsResponse:
        ns = await self.namespace(req.namespace)
        query, where, _ = await self._compile(ns, req.query)
        count, groups = await self.store.count_visibility(ns.id, where, bool(query.group_by))
        return ws.CountWorkflowExecutionsResponse(
            count=count,
            groups=[
                ws.CountWorkflowExecutionsResponse.AggregationGroup(
                    group_values=[keyword_payload(visibility_sql.STATUS_BY_VALUE.get(status, str(status)))], count=n
                )
                for status, n in groups
            ],
        )

    async def get_search_attributes(self, req: ws.GetSearchAttributesRequest) -> ws.GetSearchAttributesResponse:
        return ws.GetSearchAttributesResponse(
            keys={**search_attributes.SYSTEM_ATTRIBUTES, **search_attributes.PREDEFINED_ATTRIBUTES}
        )

    # -- operator service: search attributes -----------------------------------------------

    async def add_search_attributes(self, req: ops.AddSearchAttributesRequest) -> ops.AddSearchAttributesResponse:
        ns = await self.namespace(req.namespace)
        existing = await self.store.get_search_attributes(ns.id)
        for name, type_ in req.search_attributes.items():
            if not name or len(name) > 255 or not name.replace("_", "").replace("-", "").isalnum():
                raise InvalidArgument(f"Search attribute name {name!r} is not valid.")
            if name in search_attributes.RESERVED_NAMES:
                raise InvalidArgument(f"Search attribute {name} is reserved by the system.")
            if type_ not in search_attributes.TYPE_NAMES:
                raise InvalidArgument(f"Search attribute {name}: unknown type {type_}.")
            if name in existing and existing[name] != type_:
                raise InvalidArgument(
                    f"Search attribute {name} already exists with type "
                    f"{search_attributes.TYPE_NAMES[existing[name]]}."
                )
        if len(set(existing) | set(req.search_attributes)) > search_attributes.MAX_CUSTOM_ATTRIBUTES:
            raise InvalidArgument(
                f"A namespace may have at most {search_attributes.MAX_CUSTOM_ATTRIBUTES} custom search attributes."
            )
        await self.store.add_search_attributes(ns.id, dict(req.search_attributes))
        self.engine.search_attributes.invalidate(ns.id)
        return ops.AddSearchAttributesResponse()

    async def list_search_attributes(self, req: ops.ListSearchAttributesRequest) -> ops.ListSearchAttributesResponse:
        ns = await self.namespace(req.namespace)
        return ops.ListSearchAttributesResponse(
            custom_attributes=await self.store.get_search_attributes(ns.id),
            system_attributes={**search_attributes.SYSTEM_ATTRIBUTES, **search_attributes.PREDEFINED_ATTRIBUTES},
            storage_schema={},
        )

    async def remove_search_attributes(
        self, req: ops.RemoveSearchAttributesRequest
    ) -> ops.RemoveSearchAttributesResponse:
        ns = await self.namespace(req.namespace)
        existing = await self.store.get_search_attributes(ns.id)
        for name in req.search_attributes:
            if name in search_attributes.RESERVED_NAMES:
                raise InvalidArgument(f"Search attribute {name} is reserved by the system.")
            if name not in existing:
                raise NotFound(f"Search attribute {name} does not exist.")
        await self.store.remove_search_attributes(ns.id, list(req.search_attributes))
        self.engine.search_attributes.invalidate(ns.id)
        return ops.RemoveSearchAttributesResponse()

    # -- worker calls ----------------------------------------------------------------------

    def _poll_timeout(self, timeout: float) -> float:
        return max(min(self.long_poll_seconds, timeout - 1.0), 0.0)

    async def poll_workflow_task_queue(
        self, req: ws.PollWorkflowTaskQueueRequest, timeout: float
    ) -> ws.PollWorkflowTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        _check_id(req.task_queue.name, "TaskQueue")
        return await self.tasks.poll_workflow_task(ns.id, ns.name, req.task_queue, req.identity, self._poll_timeout(timeout))

    async def poll_activity_task_queue(
        self, req: ws.PollActivityTaskQueueRequest, timeout: float
    ) -> ws.PollActivityTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        _check_id(req.task_queue.name, "TaskQueue")
        return await self.tasks.poll_activity_task(
            ns.id, ns.name, req.task_queue.name, req.identity, self._poll_timeout(timeout)
        )

    async def respond_workflow_task_completed(
        self, req: ws.RespondWorkflowTaskCompletedRequest
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        await self.tasks.respond_workflow_task_completed(req)
        return ws.RespondWorkflowTaskCompletedResponse()

    async def respond_workflow_task_failed(
        self, req: ws.RespondWorkflowTaskFailedRequest
    ) -> ws.RespondWorkflowTaskFailedResponse:
        await self.tasks.respond_workflow_task_failed(req.task_token, req.cause, req.failure, req.identity)
        return ws.RespondWorkflowTaskFailedResponse()

    async def respond_query_task_completed(
        self, req: ws.RespondQueryTaskCompletedRequest
    ) -> ws.RespondQueryTaskCompletedResponse:
        await self.tasks.respond_query_task_completed(
            req.task_token,
            WorkflowQueryResult(
                result_type=req.completed_type, answer=req.query_result, error_message=req.error_message, failure=req.failure
            ),
        )
        return ws.RespondQueryTaskCompletedResponse()

    async def record_activity_task_heartbeat(
        self, req: ws.RecordActivityTaskHeartbeatRequest
    ) -> ws.RecordActivityTaskHeartbeatResponse:
        cancel = await self.tasks.activity_update(req.task_token, lambda t, a: activities.heartbeat(t, a, req.details))
        return ws.RecordActivityTaskHeartbeatResponse(cancel_requested=bool(cancel))

    async def respond_activity_task_completed(
        self, req: ws.RespondActivityTaskCompletedRequest
    ) -> ws.RespondActivityTaskCompletedResponse:
        await self.tasks.activity_update(req.task_token, lambda t, a: activities.completed(t, a, req.result, req.identity))
        return ws.RespondActivityTaskCompletedResponse()

    async def respond_activity_task_failed(
        self, req: ws.RespondActivityTaskFailedRequest
    ) -> ws.RespondActivityTaskFailedResponse:
        await self.tasks.activity_update(
            req.task_token, lambda t, a: activities.failed(t, a, req.failure, req.identity, req.last_heartbeat_details)
        )
        return ws.RespondActivityTaskFailedResponse()

    async def respond_activity_task_canceled(
        self, req: ws.RespondActivityTaskCanceledRequest
    ) -> ws.RespondActivityTaskCanceledResponse:
        await self.tasks.activity_update(req.task_token, lambda t, a: activities.report_canceled(t, a, req.details, req.identity))
        return ws.RespondActivityTaskCanceledResponse()

    # -- activities addressed by id (async completion) ------------------------------------

    async def _activity_by_id(self, req, apply) -> object:
        ns = await self.namespace(req.namespace)
        _check_id(req.workflow_id, "WorkflowId")
        _check_id(req.activity_id, "ActivityId")
        if req.run_id:
            try:
                uuid.UUID(req.run_id)
            except ValueError:
                raise InvalidArgument("Invalid RunId.") from None

        def op(t):
            a = t.state.activity_by_id(req.activity_id) if t.state.running else None
            if a is None or not a.started:
                raise NotFound(f"Activity task not found: no started activity with id {req.activity_id}.")
            return apply(t, a)

        result, _ = await self.engine.update(ns.id, req.workflow_id, req.run_id, op)
        return result

    async def record_activity_task_heartbeat_by_id(
        self, req: ws.RecordActivityTaskHeartbeatByIdRequest
    ) -> ws.RecordActivityTaskHeartbeatByIdResponse:
        cancel = await self._activity_by_id(req, lambda t, a: activities.heartbeat(t, a, req.details))
        return ws.RecordActivityTaskHeartbeatByIdResponse(cancel_requested=bool(cancel))

    async def respond_activity_task_completed_by_id(
        self, req: ws.RespondActivityTaskCompletedByIdRequest
    ) -> ws.RespondActivityTaskCompletedByIdResponse:
        await self._activity_by_id(req, lambda t, a: activities.completed(t, a, req.result, req.identity))
        return ws.RespondActivityTaskCompletedByIdResponse()

    async def respond_activity_task_failed_by_id(
        self, req: ws.RespondActivityTaskFailedByIdRequest
    ) -> ws.RespondActivityTaskFailedByIdResponse:
        await self._activity_by_id(
            req, lambda t, a: activities.failed(t, a, req.failure, req.identity, req.last_heartbeat_details)
        )
        return ws.RespondActivityTaskFailedByIdResponse()

    async def respond_activity_task_canceled_by_id(
        self, req: ws.RespondActivityTaskCanceledByIdRequest
    ) -> ws.RespondActivityTaskCanceledByIdResponse:
        await self._activity_by_id(req, lambda t, a: activities.report_canceled(t, a, req.details, req.identity))
        return ws.RespondActivityTaskCanceledByIdResponse()

    # -- task queues and stickiness --------------------------------------------------------

    async def reset_sticky_task_queue(self, req: ws.ResetStickyTaskQueueRequest) -> ws.ResetStickyTaskQueueResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)

        def op(t) -> None:
            if not t.state.running:
                raise NotFound("workflow execution already completed")
            t.state.sticky_queue = ""

        await self.engine.update(ns.id, wid, rid, op)
        return ws.ResetStickyTaskQueueResponse()

    async def describe_task_queue(self, req: ws.DescribeTaskQueueRequest) -> ws.DescribeTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        _check_id(req.task_queue.name, "TaskQueue")
        kind = ACTIVITY if req.task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY else WORKFLOW
        queues = self.engine.queues
        pollers = await queues.pollers(ns.id, req.task_queue.name, kind)
        backlog = await queues.backlog(ns.id, req.task_queue.name, kind)
        return ws.DescribeTaskQueueResponse(
            pollers=[
                PollerInfo(identity=p.identity, last_access_time=timestamp(p.last_access_time), rate_per_second=100_000.0)
                for p in sorted(pollers, key=lambda p: -p.last_access_time)
            ],
            task_queue_status=TaskQueueStatus(backlog_count_hint=backlog, rate_per_second=100_000.0)
            if req.include_task_queue_status
            else None,
        )

    # -- deleting runs ---------------------------------------------------------------------

    async def delete_workflow_execution(
        self, req: ws.DeleteWorkflowExecutionRequest
    ) -> ws.DeleteWorkflowExecutionResponse:
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        s = (await self.engine.load(ns.id, wid, rid)).state
        if s.running:
            try:
                await self.engine.update(
                    ns.id, wid, s.run_id, lambda t: t.terminate("Delete workflow execution", None, "odin-frontend")
                )
            except NotFound:
                pass  # closed meanwhile
        await self.engine.delete_run(ns.id, wid, s.run_id)
        return ws.DeleteWorkflowExecutionResponse()

    async def shutdown_worker(self, req: ws.ShutdownWorkerRequest) -> ws.ShutdownWorkerResponse:
        ns = await self.namespace(req.namespace)
        if req.sticky_task_queue:
            # The worker's cache is gone: its sticky tasks go back to their normal queue.
            for entry in await self.engine.queues.drain(ns.id, req.sticky_task_queue, WORKFLOW):
                if not entry.is_query:
                    loaded = await self.engine.load(ns.id, entry.workflow_id, entry.run_id)
                    await self.engine.queues.add(ns.id, loaded.state.task_queue, WORKFLOW, entry)
        return ws.ShutdownWorkerResponse()

    async def get_cluster_info(self, req: ws.GetClusterInfoRequest) -> ws.GetClusterInfoResponse:
        return ws.GetClusterInfoResponse(
            server_version=__version__,
            cluster_id=await self.store.cluster_id(),
            cluster_name=CLUSTER_NAME,
            history_shard_count=self.engine.num_shards,
            persistence_store=self.store.engine.dialect.name,
            visibility_store=self.store.engine.dialect.name,
            initial_failover_version=1,
            failover_version_increment=10,
        )

    async def list_task_queue_partitions(
        self, req: ws.ListTaskQueuePartitionsRequest
    ) -> ws.ListTaskQueuePartitionsResponse:
        await self.namespace(req.namespace)
        _check_id(req.task_queue.name, "TaskQueue")
        # One partition per queue type, served by every frontend process.
        partition = TaskQueuePartitionMetadata(key=req.task_queue.name, owner_host_name=socket.gethostname())
        return ws.ListTaskQueuePartitionsResponse(
            activity_task_queue_partitions=[partition], workflow_task_queue_partitions=[partition]
        )

    def system_info(self) -> ws.GetSystemInfoResponse:
        return ws.GetSystemInfoResponse(
            server_version=f"odin-{__version__}",
            capabilities=ws.GetSystemInfoResponse.Capabilities(
                signal_and_query_header=True,
                internal_error_differentiation=True,
                activity_failure_include_heartbeat=True,
                sdk_metadata=True,
                upsert_memo=True,
            ),
        )


@dataclass
class _HistoryToken:
    run_id: str
    next_event_id: int

    def encode(self) -> bytes:
        return json.dumps({"r": self.run_id, "n": self.next_event_id}).encode()

    @classmethod
    def parse(cls, data: bytes) -> "_HistoryToken | None":
        if not data:
            return None
        try:
            raw = json.loads(data)
            return cls(str(raw["r"]), int(raw["n"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument("Invalid NextPageToken.") from None


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
    if s.parent_workflow_id:
        info.parent_namespace_id = s.parent_namespace_id
        info.parent_execution.CopyFrom(WorkflowExecution(workflow_id=s.parent_workflow_id, run_id=s.parent_run_id))
    if s.root_workflow_id:
        info.root_execution.CopyFrom(WorkflowExecution(workflow_id=s.root_workflow_id, run_id=s.root_run_id))
    if s.close_time:
        info.close_time.CopyFrom(timestamp(s.close_time))
        info.execution_duration.CopyFrom(duration(s.close_time - s.start_time))
    return info


def _legacy_filter(req, open_runs: bool) -> str:
    """The list-filter text equivalent to a ListOpen/ListClosed request's structured filters."""
    running = visibility_query.Comparison("ExecutionStatus", "=", "Running")
    parts: list = [running if open_runs else visibility_query.Comparison("ExecutionStatus", "!=", "Running")]
    if req.HasField("start_time_filter"):
        f = req.start_time_filter
        if f.HasField("earliest_time"):
            parts.append(visibility_query.Comparison("StartTime", ">=", f.earliest_time.ToJsonString()))
        if f.HasField("latest_time"):
            parts.append(visibility_query.Comparison("StartTime", "<=", f.latest_time.ToJsonString()))
    which = req.WhichOneof("filters")
    if which == "execution_filter":
        _check_id(req.execution_filter.workflow_id, "WorkflowId")
        parts.append(visibility_query.Comparison("WorkflowId", "=", req.execution_filter.workflow_id))
        if req.execution_filter.run_id:
            parts.append(visibility_query.Comparison("RunId", "=", req.execution_filter.run_id))
    elif which == "type_filter":
        _check_id(req.type_filter.name, "WorkflowType")
        parts.append(visibility_query.Comparison("WorkflowType", "=", req.type_filter.name))
    elif which == "status_filter":
        name = visibility_sql.STATUS_BY_VALUE.get(req.status_filter.status)
        if name is None:
            raise InvalidArgument("Invalid StatusFilter.")
        parts.append(visibility_query.Comparison("ExecutionStatus", "=", name))
    node = parts[0] if len(parts) == 1 else visibility_query.And(tuple(parts))
    return visibility_query.render(visibility_query.Query(node))


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
    wrapped = type(err)(f"MultiOperation could not be executed: {err.message}", MultiOperationExecutionFailure(statuses=statuses))
    return wrapped


def visibility_info(row: dict) -> WorkflowExecutionInfo:
    """A List/Scan entry, from a visibility record."""
    info = WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id=row["workflow_id"], run_id=row["run_id"]),
        type=WorkflowType(name=row["workflow_type"]),
        start_time=timestamp(row["start_time"]),
        execution_time=timestamp(row["execution_time"]),
        status=row["status"],
        history_length=row["history_length"],
        history_size_bytes=row["history_size_bytes"],
        task_queue=row["task_queue"],
        first_run_id=row["first_execution_run_id"],
    )
    if row["close_time"] is not None:
        info.close_time.CopyFrom(timestamp(row["close_time"]))
        info.execution_duration.CopyFrom(duration((row["close_time"] - row["start_time"]).total_seconds()))
    if row["memo"]:
        info.memo.CopyFrom(Memo.FromString(row["memo"]))
    if row["search_attributes"]:
        info.search_attributes.CopyFrom(SearchAttributes.FromString(row["search_attributes"]))
    if row["parent_workflow_id"]:
        info.parent_execution.CopyFrom(WorkflowExecution(workflow_id=row["parent_workflow_id"], run_id=row["parent_run_id"] or ""))
    return info


def keyword_payload(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=json.dumps(value).encode())


def pending_activity(s: MutableState, a: ActivityInfo) -> PendingActivityInfo:
    if a.cancel_requested:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
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
    )
    if a.last_heartbeat_time:
        info.last_heartbeat_time.CopyFrom(timestamp(a.last_heartbeat_time))
    if a.started_time:
        info.last_started_time.CopyFrom(timestamp(a.started_time))
    if a.schedule_to_close:
        info.expiration_time.CopyFrom(timestamp(a.first_scheduled_time + a.schedule_to_close))
    if not a.started and a.attempt > 1:
        info.next_attempt_schedule_time.CopyFrom(timestamp(a.scheduled_time))
    return info
