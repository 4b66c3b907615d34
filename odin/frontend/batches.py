"""Batch operations: StartBatchOperation, DescribeBatchOperation, ListBatchOperations and
StopBatchOperation (the jobs themselves run in ``odin.history.batches``)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from temporalio.api.batch.v1 import BatchOperationInfo, BatchOperationReset
from temporalio.api.common.v1 import Execution
from temporalio.api.enums.v1 import (
    BatchOperationType,
    ExecutionType,
    ResetReapplyType,
    ResetType,
    ResourceExhaustedCause,
    ResourceExhaustedScope,
)
from temporalio.api.errordetails.v1 import NotFoundFailure, ResourceExhaustedFailure, WorkflowExecutionAlreadyStartedFailure
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, Unimplemented
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_LIST_PAGE, check_id, check_text, page_size
from odin.history import batches
from odin.history.events import timestamp
from odin.persistence.store import BatchOperationExists, BatchOperationRecord, NamespaceRecord
from odin.security.auth import Level
from odin.security.gate import current_principal
from odin.visibility import query as visibility_query
from odin.visibility import sql as visibility_sql

_REQUIRED = (
    "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)"
)
# Operations of the API that Odin does not run as batches.
_UNSUPPORTED = {
    "update_workflow_options_operation": "Batch update of workflow execution options is not supported by this server.",
    "unpause_activities_operation": "Batch unpause of activities is not supported by this server.",
    "reset_activities_operation": "Batch reset of activities is not supported by this server.",
    "update_activity_options_operation": "Batch update of activity options is not supported by this server.",
    "cancel_activities_operation": "Batch cancellation of activities is not supported by this server.",
    "terminate_activities_operation": "Batch termination of activities is not supported by this server.",
    "delete_activities_operation": "Batch deletion of activities is not supported by this server.",
}


class BatchCalls(FrontendBase):
    async def start_batch_operation(self, req: ws.StartBatchOperationRequest) -> ws.StartBatchOperationResponse:
        check_id(req.job_id, "JobId")
        targets = batches.targets_in_list(req)
        op = batches.operation_of(req)
        if not op or not req.reason or not req.namespace or not (req.visibility_query or targets):
            raise InvalidArgument(_REQUIRED)
        if sum(map(bool, (req.visibility_query, req.executions, req.target_executions))) > 1:
            raise InvalidArgument("visibility query, executions, and target executions are mutually exclusive")
        if op == "signal_operation" and not req.signal_operation.signal:
            raise InvalidArgument("must provide signal name")
        if op == "reset_operation":
            _check_reset(req.reset_operation)
        check_text(req.reason, "Reason")
        check_text(getattr(getattr(req, op), "identity", ""), "Identity")
        for execution in targets:
            check_id(execution.workflow_id, "WorkflowId")
            if execution.run_id:
                try:
                    uuid.UUID(execution.run_id)
                except ValueError:
                    raise InvalidArgument("Invalid RunId.") from None
        ns = await self.namespace(req.namespace)
        if op in _UNSUPPORTED:
            raise Unimplemented(_UNSUPPORTED[op])
        principal = current_principal.get()
        if op == "deletion_operation" and not (principal.cluster_admin or Level.ADMIN in principal.levels(ns.name)):
            raise PermissionDenied(
                f"{principal.subject} may not call StartBatchOperation with a deletion in namespace {ns.name!r}: "
                "it needs admin access."
            )
        total = len(targets)
        if req.visibility_query:
            total = await self._batch_count(ns, req.visibility_query)
        try:
            await batches.start(self.engine, ns.id, req, total, _max_running(ns))
        except BatchOperationExists as exc:
            raise _duplicate(exc.existing) from None
        except ResourceExhausted:
            raise ResourceExhausted(
                "Max concurrent batch operations is reached",
                ResourceExhaustedFailure(
                    cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
                    scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
            ) from None
        return ws.StartBatchOperationResponse()

    async def _batch_count(self, ns: NamespaceRecord, text: str) -> int:
        try:
            query, where, _ = visibility_sql.compile_query(text, await self.engine.search_attributes.custom(ns.id))
        except visibility_query.QueryError as exc:
            raise InvalidArgument(f"invalid visibility query: {exc}") from None
        if query.group_by:
            raise InvalidArgument("invalid visibility query: GROUP BY is not allowed in a batch operation.")
        count, _ = await self.store.count_visibility(ns.id, where, False)
        return count

    async def describe_batch_operation(self, req: ws.DescribeBatchOperationRequest) -> ws.DescribeBatchOperationResponse:
        check_id(req.job_id, "JobId")
        ns = await self.namespace(req.namespace)
        record = await self.store.get_batch_operation(ns.id, req.job_id)
        if record is None:
            raise NotFound(f"workflow not found for ID: {req.job_id}", NotFoundFailure())
        start = ws.StartBatchOperationRequest.FromString(record.request)
        return ws.DescribeBatchOperationResponse(
            operation_type=BatchOperationType.ValueType(record.operation_type),
            job_id=record.job_id,
            state=batches.STATES[record.state],
            start_time=timestamp(record.start_time.timestamp()),
            close_time=timestamp(record.close_time.timestamp()) if record.close_time else None,
            total_operation_count=record.total,
            complete_operation_count=record.completed,
            failure_operation_count=record.failed,
            identity=record.identity,
            reason=record.reason,
            query=start.visibility_query,
            executions=[
                Execution(type=ExecutionType.EXECUTION_TYPE_WORKFLOW, business_id=e.workflow_id, run_id=e.run_id)
                for e in batches.targets_in_list(start)
            ],
        )

    async def list_batch_operations(self, req: ws.ListBatchOperationsRequest) -> ws.ListBatchOperationsResponse:
        ns = await self.namespace(req.namespace)
        size = page_size(req.page_size, MAX_LIST_PAGE, MAX_LIST_PAGE)
        rows = await self.store.list_batch_operations(ns.id, _list_token(req.next_page_token), size + 1)
        more = len(rows) > size
        rows = rows[:size]
        token = b""
        if more:
            token = json.dumps({"StartTime": rows[-1].start_time.isoformat(), "JobId": rows[-1].job_id}).encode()
        return ws.ListBatchOperationsResponse(operation_info=[_info(r) for r in rows], next_page_token=token)

    async def stop_batch_operation(self, req: ws.StopBatchOperationRequest) -> ws.StopBatchOperationResponse:
        check_id(req.job_id, "JobId")
        if not req.reason:
            raise InvalidArgument("Reason is not set on request.")
        check_text(req.reason, "Reason")
        check_text(req.identity, "Identity")
        ns = await self.namespace(req.namespace)
        try:
            await batches.stop(self.engine, ns.id, req.job_id, req.reason, req.identity)
        except NotFound as exc:
            raise NotFound(exc.message, NotFoundFailure()) from None
        return ws.StopBatchOperationResponse()


def _check_reset(reset: BatchOperationReset) -> None:
    """A batch reset names where to reset to (Temporal's checks and words)."""
    if reset.HasField("options"):
        if not reset.options.WhichOneof("target"):
            raise InvalidArgument("unknown batch reset type Unspecified")
        if reset.options.reset_reapply_type not in ResetReapplyType.values():
            raise InvalidArgument(f"unknown reset reapply type: {reset.options.reset_reapply_type}")
    elif reset.reset_type not in (ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK, ResetType.RESET_TYPE_LAST_WORKFLOW_TASK):
        name = ResetType.Name(reset.reset_type) if reset.reset_type in ResetType.values() else str(reset.reset_type)
        raise InvalidArgument(f"unknown batch reset type {name.removeprefix('RESET_TYPE_').title().replace('_', '')}")
    if reset.post_reset_operations:
        raise InvalidArgument("Post-reset operations are not supported.")


def _max_running(ns: NamespaceRecord) -> int:
    value = ns.data.get("odin.max_concurrent_batch_operations")
    return int(value) if value else batches.DEFAULT_MAX_RUNNING


def _duplicate(existing: BatchOperationRecord) -> AlreadyExists:
    """The error Temporal gives for a job id in use (its batch jobs are workflows by that id)."""
    detail = WorkflowExecutionAlreadyStartedFailure(
        start_request_id=existing.request_id, run_id=existing.run_id, first_execution_run_id=existing.run_id
    )
    if existing.state == batches.RUNNING:
        return AlreadyExists(
            f"Workflow execution is already running. WorkflowId: {existing.job_id}, RunId: {existing.run_id}.", detail
        )
    return AlreadyExists(
        f"Workflow execution already finished. WorkflowId: {existing.job_id}, RunId: {existing.run_id}. "
        "Workflow Id reuse policy: reject duplicate workflow Id.",
        detail,
    )


def _list_token(token: bytes) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        data = json.loads(token)
        return datetime.fromisoformat(data["StartTime"]), str(data["JobId"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("Invalid NextPageToken.") from None


def _info(record: BatchOperationRecord) -> BatchOperationInfo:
    return BatchOperationInfo(
        job_id=record.job_id,
        state=batches.STATES[record.state],
        start_time=timestamp(record.start_time.timestamp()),
        close_time=timestamp(record.close_time.timestamp()) if record.close_time else None,
        operation_type=BatchOperationType.ValueType(record.operation_type),
    )
