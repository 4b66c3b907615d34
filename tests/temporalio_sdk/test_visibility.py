"""Visibility through the temporalio SDK: the search-attribute registry (OperatorService), typed
search attributes on start and upsert, memo, List/Count/Scan with the list-filter language."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType, WorkflowTaskFailedCause
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.replay import assert_replays
from tests.support.services import ALL_DATABASES

# The visibility contract holds on every database Odin supports (MariaDB's text compares byte by byte).
pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)

K_CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
K_TEXT = SearchAttributeKey.for_text("Notes")
K_INT = SearchAttributeKey.for_int("Priority")
K_DOUBLE = SearchAttributeKey.for_float("Amount")
K_BOOL = SearchAttributeKey.for_bool("Urgent")
K_TIME = SearchAttributeKey.for_datetime("DueAt")
K_TAGS = SearchAttributeKey.for_keyword_list("Tags")
CUSTOM = {
    "CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Notes": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Priority": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Amount": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Urgent": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "DueAt": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Tags": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}
DUE = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)


@workflow.defn
class Tagged:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, stage: str) -> str:
        await workflow.wait_condition(lambda: self.go)
        workflow.upsert_search_attributes([K_INT.value_set(99), K_TAGS.value_set(["upserted", stage])])
        workflow.upsert_memo({"stage": "done"})
        return stage

    @workflow.signal
    def release(self) -> None:
        self.go = True


async def _register(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        ops.AddSearchAttributesRequest(namespace="default", search_attributes=CUSTOM)
    )


async def _list(client: Client, query: str) -> list[str]:
    return sorted([w.id async for w in client.list_workflows(query)])


async def test_search_attribute_registry(client):
    await _register(client)
    await _register(client)  # adding the same names with the same types again is a no-op
    listed = await client.operator_service.list_search_attributes(ops.ListSearchAttributesRequest(namespace="default"))
    # (On PostgreSQL the database is shared by this process's tests, which may register names of their own.)
    assert {name: kind for name, kind in listed.custom_attributes.items() if name in CUSTOM} == CUSTOM
    assert listed.system_attributes["WorkflowId"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert listed.system_attributes["TemporalChangeVersion"] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST
    for bad in (
        {"CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_INT},  # exists with another type
        {"WorkflowId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},  # system name
        {"Bad Name": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        {"NoType": IndexedValueType.INDEXED_VALUE_TYPE_UNSPECIFIED},
    ):
        with pytest.raises(RPCError) as err:
            await client.operator_service.add_search_attributes(
                ops.AddSearchAttributesRequest(namespace="default", search_attributes=bad)
            )
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    await client.operator_service.remove_search_attributes(
        ops.RemoveSearchAttributesRequest(namespace="default", search_attributes=["Notes"])
    )
    listed = await client.operator_service.list_search_attributes(ops.ListSearchAttributesRequest(namespace="default"))
    assert "Notes" not in listed.custom_attributes
    with pytest.raises(RPCError) as err:
        await client.operator_service.remove_search_attributes(
            ops.RemoveSearchAttributesRequest(namespace="default", search_attributes=["Notes"])
        )
    assert err.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as err:
        await client.operator_service.list_search_attributes(ops.ListSearchAttributesRequest(namespace="nope"))
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_typed_search_attributes_memo_and_list_queries(client, task_queue):
    await _register(client)
    key = uuid.uuid4().hex[:8]
    prefix = f"vis-{key}"
    attrs = {
        "a": TypedSearchAttributes(
            [
                SearchAttributePair(K_CUSTOMER, "alice"),
                SearchAttributePair(K_TEXT, "Rush order, fragile glass"),
                SearchAttributePair(K_INT, 5),
                SearchAttributePair(K_DOUBLE, 12.5),
                SearchAttributePair(K_BOOL, True),
                SearchAttributePair(K_TIME, DUE),
                SearchAttributePair(K_TAGS, ["red", "big"]),
            ]
        ),
        "b": TypedSearchAttributes(
            [
                SearchAttributePair(K_CUSTOMER, "bob's \"shop\""),
                SearchAttributePair(K_INT, 1),
                SearchAttributePair(K_BOOL, False),
                SearchAttributePair(K_TAGS, ["blue"]),
            ]
        ),
        "c": TypedSearchAttributes([]),
    }
    handles = {}
    async with Worker(client, task_queue=task_queue, workflows=[Tagged]):
        for name, sa in attrs.items():
            handles[name] = await client.start_workflow(
                Tagged.run, name, id=f"{prefix}-{name}", task_queue=task_queue, search_attributes=sa, memo={"who": name}
            )
        await handles["c"].signal(Tagged.release)
        assert await handles["c"].result() == "c"

        desc = await handles["a"].describe()
        typed = desc.typed_search_attributes
        assert typed.get(K_CUSTOMER) == "alice" and typed.get(K_INT) == 5 and typed.get(K_DOUBLE) == 12.5
        assert typed.get(K_BOOL) is True and typed.get(K_TIME) == DUE and typed.get(K_TAGS) == ["red", "big"]
        assert await desc.memo_value("who") == "a"

        base = f"WorkflowId STARTS_WITH '{prefix}'"
        cases = {
            base: ["a", "b", "c"],
            f"{base} AND WorkflowType = 'Tagged'": ["a", "b", "c"],
            f"{base} AND ExecutionStatus = 'Running'": ["a", "b"],
            f"{base} AND ExecutionStatus = 'Completed'": ["c"],
            f"{base} AND CustomerId = 'alice'": ["a"],
            f"{base} AND CustomerId = 'Alice'": [],  # keywords compare exactly: case,
            f"{base} AND CustomerId = 'alice '": [],  # trailing spaces,
            f"{base} AND CustomerId = 'alicé'": [],  # accents
            f"{base} AND CustomerId STARTS_WITH 'AL'": [],
            f"{base} AND CustomerId STARTS_WITH 'al'": ["a"],
            f"WorkflowId STARTS_WITH '{prefix.upper()}'": [],
            f"{base} AND Notes = 'FRAGILE'": ["a"],  # Text matches words whatever their case
            f"{base} AND CustomerId = 'bob''s \"shop\"'": ["b"],
            f"{base} AND CustomerId IN ('alice', 'nobody')": ["a"],
            f"{base} AND Priority >= 2": ["a", "c"],  # c got Priority 99 by upsert
            f"{base} AND Priority BETWEEN 1 AND 5": ["a", "b"],
            f"{base} AND Amount > 10.0": ["a"],
            f"{base} AND Urgent = true": ["a"],
            f"{base} AND Urgent = false": ["b"],
            f"{base} AND DueAt < '2027-01-01T00:00:00Z'": ["a"],
            f"{base} AND Tags = 'blue'": ["b"],
            f"{base} AND Tags = 'upserted'": ["c"],
            f"{base} AND Tags != 'red'": ["b", "c"],
            f"{base} AND Notes = 'fragile'": ["a"],
            f"{base} AND CustomerId IS NULL": ["c"],
            f"{base} AND CustomerId IS NOT NULL": ["a", "b"],
            f"{base} AND (CustomerId = 'alice' OR Priority = 99)": ["a", "c"],
            f"{base} AND WorkflowId NOT IN ('{prefix}-a')": ["b", "c"],
            f"`WorkflowId` STARTS_WITH '{prefix}' ORDER BY StartTime DESC": ["a", "b", "c"],
        }
        for query, expected in cases.items():
            assert await _list(client, query) == [f"{prefix}-{x}" for x in expected], query

        # Default order: open runs first, then by close/start time descending.
        ordered = [w.id async for w in client.list_workflows(base)]
        assert ordered[-1] == f"{prefix}-c"
        listed = [w async for w in client.list_workflows(f"{base} AND CustomerId = 'alice'")]
        assert listed[0].typed_search_attributes.get(K_TAGS) == ["red", "big"]
        assert listed[0].status == WorkflowExecutionStatus.RUNNING
        assert await listed[0].memo_value("who") == "a"

        count = await client.count_workflows(base)
        assert count.count == 3
        grouped = await client.count_workflows(f"{base} GROUP BY ExecutionStatus")
        assert grouped.count == 3
        assert sorted((g.group_values[0], g.count) for g in grouped.groups) == [("Completed", 1), ("Running", 2)]

        # Paging: one per page, all three seen once.
        page_ids, token = [], b""
        while True:
            page = await client.workflow_service.list_workflow_executions(
                ws.ListWorkflowExecutionsRequest(namespace="default", query=base, page_size=1, next_page_token=token)
            )
            page_ids += [e.execution.workflow_id for e in page.executions]
            token = page.next_page_token
            if not token:
                break
        assert sorted(page_ids) == [f"{prefix}-{x}" for x in "abc"]
        scanned = await client.workflow_service.scan_workflow_executions(
            ws.ScanWorkflowExecutionsRequest(namespace="default", query=base)
        )
        assert len(scanned.executions) == 3

        open_runs = await client.workflow_service.list_open_workflow_executions(
            ws.ListOpenWorkflowExecutionsRequest(namespace="default", type_filter={"name": "Tagged"}, maximum_page_size=1000)
        )
        assert {f"{prefix}-a", f"{prefix}-b"} <= {e.execution.workflow_id for e in open_runs.executions}
        assert f"{prefix}-c" not in {e.execution.workflow_id for e in open_runs.executions}
        closed = await client.workflow_service.list_closed_workflow_executions(
            ws.ListClosedWorkflowExecutionsRequest(namespace="default", execution_filter={"workflow_id": f"{prefix}-c"})
        )
        assert [e.execution.workflow_id for e in closed.executions] == [f"{prefix}-c"]
        closed = await client.workflow_service.list_closed_workflow_executions(
            ws.ListClosedWorkflowExecutionsRequest(namespace="default", execution_filter={"workflow_id": f"{prefix}-a"})
        )
        assert list(closed.executions) == []

        history = await handles["c"].fetch_history()
        upsert = next(e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes"))
        fields = upsert.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        assert fields["Priority"].metadata["type"] == b"Int"
        for h in (handles["a"], handles["b"]):
            await h.terminate("cleanup")
    assert await assert_replays(handles["c"], Tagged) > 5


@pytest.mark.parametrize(
    "query,position",
    [
        ("WorkflowType = ", 15),
        ("WorkflowType = 'x' AND", 22),
        ("(WorkflowType = 'x'", 19),
        ("NoSuchAttribute = 'x'", 0),
        ("WorkflowType = 'x' AND HistoryLength = 'many'", 23),
        ("ExecutionStatus = 'Sleeping'", 0),
        ("WorkflowId STARTS_WITH 5", 23),
        ("WorkflowType = 'unterminated", 15),
        ("HistoryLength STARTS_WITH 'x'", 0),
        ("WorkflowType = 'x' GROUP BY WorkflowType", 28),
    ],
)
async def test_bad_query_is_invalid_argument_with_position(client, query, position):
    with pytest.raises(RPCError) as err:
        await client.count_workflows(query)
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert f"at position {position}" in err.value.message, err.value.message


async def test_invalid_search_attributes_on_start_are_refused(client, task_queue):
    await _register(client)
    bad = [
        TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_keyword("Unregistered"), "x")]),
        TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_int("CustomerId"), 3)]),  # registered Keyword
    ]
    for sa in bad:
        wid = f"badsa-{uuid.uuid4().hex[:8]}"
        with pytest.raises(RPCError) as err:
            await client.start_workflow(Tagged.run, "x", id=wid, task_queue=task_queue, search_attributes=sa)
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        with pytest.raises(RPCError):
            await client.get_workflow_handle(wid).describe()


@workflow.defn
class BadUpsert:
    @workflow.run
    async def run(self) -> str:
        workflow.upsert_search_attributes([SearchAttributeKey.for_keyword("NotRegisteredHere").value_set("x")])
        return "unreachable"


async def test_upsert_of_unknown_attribute_fails_the_workflow_task(client, task_queue):
    handle = None
    async with Worker(client, task_queue=task_queue, workflows=[BadUpsert]):
        handle = await client.start_workflow(BadUpsert.run, id=f"badupsert-{uuid.uuid4()}", task_queue=task_queue,
                                             task_timeout=timedelta(seconds=2))
        for _ in range(100):
            history = await handle.fetch_history()
            failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
            if failed:
                break
            await asyncio.sleep(0.1)
        await handle.terminate("cleanup")
    assert failed[0].workflow_task_failed_event_attributes.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    assert "NotRegisteredHere" in failed[0].workflow_task_failed_event_attributes.failure.message
