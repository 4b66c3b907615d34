"""Listing and counting workflows, and the search-attribute registry."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Memo, Payload, SearchAttributes, WorkflowExecution, WorkflowType
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import InvalidArgument, NotFound
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_LIST_PAGE, check_id, offset_token, page_size
from odin.history.events import duration, timestamp
from odin.persistence.store import NamespaceRecord
from odin.visibility import query as visibility_query
from odin.visibility import search_attributes
from odin.visibility import sql as visibility_sql


class VisibilityCalls(FrontendBase):
    # -- visibility ------------------------------------------------------------------------

    async def _compile(self, ns: NamespaceRecord, text: str):
        try:
            return visibility_sql.compile_query(text, await self.engine.search_attributes.custom(ns.id))
        except visibility_query.QueryError as exc:
            raise InvalidArgument(f"Invalid query: {exc}") from None

    async def _list(self, namespace: str, text: str, requested_size: int, token: bytes):
        ns = await self.namespace(namespace)
        query, where, order = await self._compile(ns, text)
        if query.group_by:
            raise InvalidArgument("Invalid query: GROUP BY is only allowed in CountWorkflowExecutions.")
        offset = offset_token(token)
        size = page_size(requested_size, MAX_LIST_PAGE, MAX_LIST_PAGE)
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


def _time_text(ts, what: str) -> str:
    """A request's timestamp as RFC 3339 text; INVALID_ARGUMENT if it is not a valid one."""
    try:
        return ts.ToJsonString()
    except ValueError as exc:
        raise InvalidArgument(f"Invalid {what}: {exc}") from None


def _legacy_filter(req, open_runs: bool) -> str:
    """The list-filter text equivalent to a ListOpen/ListClosed request's structured filters."""
    running = visibility_query.Comparison("ExecutionStatus", "=", "Running")
    parts: list = [running if open_runs else visibility_query.Comparison("ExecutionStatus", "!=", "Running")]
    if req.HasField("start_time_filter"):
        f = req.start_time_filter
        if f.HasField("earliest_time"):
            parts.append(visibility_query.Comparison("StartTime", ">=", _time_text(f.earliest_time, "EarliestTime")))
        if f.HasField("latest_time"):
            parts.append(visibility_query.Comparison("StartTime", "<=", _time_text(f.latest_time, "LatestTime")))
    which = req.WhichOneof("filters")
    if which == "execution_filter":
        check_id(req.execution_filter.workflow_id, "WorkflowId")
        parts.append(visibility_query.Comparison("WorkflowId", "=", req.execution_filter.workflow_id))
        if req.execution_filter.run_id:
            parts.append(visibility_query.Comparison("RunId", "=", req.execution_filter.run_id))
    elif which == "type_filter":
        check_id(req.type_filter.name, "WorkflowType")
        parts.append(visibility_query.Comparison("WorkflowType", "=", req.type_filter.name))
    elif which == "status_filter":
        name = visibility_sql.STATUS_BY_VALUE.get(req.status_filter.status)
        if name is None:
            raise InvalidArgument("Invalid StatusFilter.")
        parts.append(visibility_query.Comparison("ExecutionStatus", "=", name))
    node = parts[0] if len(parts) == 1 else visibility_query.And(tuple(parts))
    return visibility_query.render(visibility_query.Query(node))


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

