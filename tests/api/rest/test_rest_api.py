"""The REST API end to end through Flask's test client: workflows started, driven and read over
REST while a temporalio worker runs them through the gRPC door of the same runtime."""

from __future__ import annotations

import asyncio
import time
from html import escape
from urllib.parse import quote

from rest_support import LONG_POLL, assert_error, start_body, wid
from rest_workflows import Counter, Fails, Greet, WaitForever, shout
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

NS = "/api/v1/namespaces/default"


def worker(client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[Greet, Counter, Fails, WaitForever], activities=[shout])


async def test_a_workflow_started_over_rest_completes_on_a_worker_and_its_result_comes_back(served, client, task_queue):
    workflow_id = wid("greet")
    async with worker(client, task_queue):
        started = await served.post(f"{NS}/workflows/{workflow_id}", json=start_body("Greet", task_queue, "Odin", {"n": 1}))
        assert started.status_code == 201, started.get_json()
        run_id = started.get_json()["runId"]
        assert started.headers["Location"] == f"{NS}/workflows/{workflow_id}?runId={run_id}"
        result = await served.get(f"{NS}/workflows/{workflow_id}/result?wait={LONG_POLL}")
        assert result.status_code == 200, result.get_json()
    expected = {"greeting": "HELLO, ODIN", "extra": {"n": 1}}
    assert result.get_json() == {
        "workflowId": workflow_id,
        "status": "WORKFLOW_EXECUTION_STATUS_COMPLETED",
        "closeTime": result.get_json()["closeTime"],
        "result": expected,
    }
    assert await client.get_workflow_handle(workflow_id).result() == expected  # the SDK sees the same run

    events = (await served.get(f"{NS}/workflows/{workflow_id}/history")).get_json()["history"]["events"]
    assert [int(e["eventId"]) for e in events] == list(range(1, len(events) + 1))
    assert events[0]["workflowExecutionStartedEventAttributes"]["input"] == ["Odin", {"n": 1}]
    assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    assert events[-1]["workflowExecutionCompletedEventAttributes"]["result"] == [expected]
    scheduled = next(e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    assert scheduled["activityTaskScheduledEventAttributes"]["input"] == ["hello, Odin"]

    described = (await served.get(f"{NS}/workflows/{workflow_id}")).get_json()
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert described["workflowExecutionInfo"]["execution"] == {"workflowId": workflow_id, "runId": run_id}


async def test_the_same_idempotency_key_starts_one_run(served_sqlite, task_queue):
    api, workflow_id = served_sqlite, wid("idem")
    body = start_body("WaitForever", task_queue)
    first = await api.post(f"{NS}/workflows/{workflow_id}", json=body, headers={"Idempotency-Key": "order-42"})
    again = await api.post(f"{NS}/workflows/{workflow_id}", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["runId"] == again.get_json()["runId"]

    other = await api.post(f"{NS}/workflows/{workflow_id}", json=body, headers={"Idempotency-Key": "order-43"})
    error = assert_error(other, 409, "ALREADY_EXISTS")
    assert error["details"][0]["@type"].endswith("WorkflowExecutionAlreadyStartedFailure")
    assert error["details"][0]["runId"] == first.get_json()["runId"]

    use_existing = await api.post(
        f"{NS}/workflows/{workflow_id}", json={**body, "workflowIdConflictPolicy": "WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING"}
    )
    assert use_existing.status_code == 200
    assert use_existing.get_json() == {"runId": first.get_json()["runId"], "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"}

    clash = await api.post(f"{NS}/workflows/{wid()}", json={**body, "requestId": "a"}, headers={"Idempotency-Key": "b"})
    assert_error(clash, 400, "INVALID_ARGUMENT")


async def test_signal_query_update_and_the_result(served_sqlite, sdk, task_queue):
    api, workflow_id = served_sqlite, wid("counter")
    async with worker(sdk, task_queue):
        assert (await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("Counter", task_queue))).status_code == 201
        for _ in range(2):  # one signal, sent twice with the same key
            sent = await api.post(f"{NS}/workflows/{workflow_id}/signal/bump", json={"input": [2]}, headers={"Idempotency-Key": "s-1"})
            assert sent.status_code == 200 and sent.get_json() == {}
        query = await api.post(f"{NS}/workflows/{workflow_id}/query/value", json={})
        assert query.status_code == 200 and query.get_json() == {"queryResult": [2]}

        update = await api.post(f"{NS}/workflows/{workflow_id}/update/add", json={"request": {"input": {"args": [3]}}})
        assert update.status_code == 200, update.get_json()
        assert update.get_json()["outcome"] == {"success": [5]}
        assert update.get_json()["stage"] == "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"
        rejected = await api.post(f"{NS}/workflows/{workflow_id}/update/add", json={"request": {"input": {"args": [-1]}}})
        assert rejected.status_code == 200
        assert rejected.get_json()["outcome"]["failure"]["message"] == "cannot add a negative number"

        assert (await api.post(f"{NS}/workflows/{workflow_id}/signal/finish")).status_code == 200
        result = await api.get(f"{NS}/workflows/{workflow_id}/result?wait={LONG_POLL}")
    assert result.status_code == 200 and result.get_json()["result"] == 5


async def test_workflow_ids_with_slashes_percent_signs_and_spaces_are_one_path_segment(served_sqlite, sdk, task_queue):
    api = served_sqlite
    async with worker(sdk, task_queue):
        for workflow_id in (f"orders/{wid()}/eu", f"50%2F off {wid()}", f"ünï/cödé {wid()}"):
            path = f"{NS}/workflows/{quote(workflow_id, safe='')}"
            started = await api.post(path, json=start_body("Counter", task_queue))
            assert started.status_code == 201, started.get_json()
            assert started.headers["Location"].startswith(path + "?runId=")
            assert (await api.post(f"{path}/signal/bump", json={"input": [4]})).status_code == 200
            described = await api.get(path)
            assert described.get_json()["workflowExecutionInfo"]["execution"]["workflowId"] == workflow_id
            assert (await api.post(f"{path}/signal/finish")).status_code == 200
            result = await api.get(f"{path}/result?wait={LONG_POLL}")
            assert result.status_code == 200 and result.get_json() == {
                "workflowId": workflow_id,
                "status": "WORKFLOW_EXECUTION_STATUS_COMPLETED",
                "closeTime": result.get_json()["closeTime"],
                "result": 4,
            }
            assert await sdk.get_workflow_handle(workflow_id).result() == 4
            page = await api.get(f"/namespaces/default/workflows/{quote(workflow_id, safe='')}")
            assert page.status_code == 200 and escape(workflow_id) in page.get_data(as_text=True)
    # The unescaped form names another path: not a workflow route.
    assert_error(await api.get(f"{NS}/workflows/orders/x/eu"), 404, "NOT_FOUND")


async def test_failed_canceled_and_terminated_outcomes(served_sqlite, sdk, task_queue):
    api = served_sqlite
    failing, canceled, terminated = wid("fails"), wid("cancel"), wid("term")
    async with worker(sdk, task_queue):
        await api.post(f"{NS}/workflows/{failing}", json=start_body("Fails", task_queue, "out of stock"))
        await api.post(f"{NS}/workflows/{canceled}", json=start_body("WaitForever", task_queue))
        await api.post(f"{NS}/workflows/{terminated}", json=start_body("WaitForever", task_queue))

        failed = await api.get(f"{NS}/workflows/{failing}/result?wait={LONG_POLL}")
        assert failed.status_code == 200
        body = failed.get_json()
        assert body["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED"
        assert body["failure"]["message"] == "out of stock"
        assert body["failure"]["applicationFailureInfo"]["type"] == "OrderRejected"
        assert body["failure"]["applicationFailureInfo"]["details"] == [{"order": 7}]

        running = await api.get(f"{NS}/workflows/{canceled}/result")
        assert running.status_code == 202
        assert running.get_json() == {"workflowId": canceled, "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"}
        assert (await api.post(f"{NS}/workflows/{canceled}/cancel", json={"reason": "no longer needed"})).status_code == 200
        done = await api.get(f"{NS}/workflows/{canceled}/result?wait={LONG_POLL}")
        assert done.status_code == 200 and done.get_json()["status"] == "WORKFLOW_EXECUTION_STATUS_CANCELED"
        assert (await sdk.get_workflow_handle(canceled).describe()).status == WorkflowExecutionStatus.CANCELED

    stop = await api.post(f"{NS}/workflows/{terminated}/terminate", json={"reason": "operator says so", "details": [{"ticket": 9}]})
    assert stop.status_code == 200
    body = (await api.get(f"{NS}/workflows/{terminated}/result")).get_json()
    assert body["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    assert (body["reason"], body["details"], body["identity"]) == ("operator says so", [{"ticket": 9}], "odin-rest")


async def test_result_waits_for_the_run_then_answers_202(served_sqlite, task_queue):
    workflow_id = wid("slow")
    await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("WaitForever", task_queue))
    began = time.monotonic()
    response = await served_sqlite.get(f"{NS}/workflows/{workflow_id}/result?wait=0.5")
    assert response.status_code == 202
    assert 0.4 <= time.monotonic() - began < LONG_POLL + 1


async def test_history_pages_and_long_polls_for_new_events(served_sqlite, task_queue):
    api, workflow_id = served_sqlite, wid("hist")
    await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("WaitForever", task_queue))
    for n in range(3):
        await api.post(f"{NS}/workflows/{workflow_id}/signal/poke", json={"input": [n]})

    events, token = [], ""
    while True:
        page = (await api.get(f"{NS}/workflows/{workflow_id}/history", query_string={"pageSize": 2, "nextPageToken": token})).get_json()
        events += page["history"]["events"]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert [int(e["eventId"]) for e in events] == list(range(1, len(events) + 1))
    signaled = [e["workflowExecutionSignaledEventAttributes"] for e in events if "workflowExecutionSignaledEventAttributes" in e]
    assert [s["input"] for s in signaled] == [[0], [1], [2]]

    # Long poll past the last event: it answers when the next one is written.
    tail = (await api.get(f"{NS}/workflows/{workflow_id}/history", query_string={"waitNewEvent": "true"})).get_json()
    token = tail["nextPageToken"]
    waiting = asyncio.create_task(
        api.get(f"{NS}/workflows/{workflow_id}/history", query_string={"waitNewEvent": "true", "nextPageToken": token})
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await api.post(f"{NS}/workflows/{workflow_id}/signal/poke", json={"input": ["late"]})
    new = (await waiting).get_json()["history"]["events"]
    assert new[0]["workflowExecutionSignaledEventAttributes"]["input"] == ["late"]


async def test_list_count_and_paging(served_sqlite, task_queue):
    api = served_sqlite
    ids = [wid("listed") for _ in range(3)]
    for workflow_id in ids:
        await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("Listed", task_queue))
    query = {"query": f"WorkflowType = 'Listed' AND TaskQueue = '{task_queue}'", "pageSize": 2}
    first = (await api.get(f"{NS}/workflows", query_string=query)).get_json()
    assert len(first["executions"]) == 2 and first["nextPageToken"]
    second = (await api.get(f"{NS}/workflows", query_string={**query, "nextPageToken": first["nextPageToken"]})).get_json()
    assert "nextPageToken" not in second
    assert sorted(e["execution"]["workflowId"] for e in first["executions"] + second["executions"]) == sorted(ids)

    count = (await api.get(f"{NS}/workflow-count", query_string={"query": query["query"]})).get_json()
    assert count == {"count": "3"}
    grouped = (await api.get(f"{NS}/workflow-count", query_string={"query": "GROUP BY ExecutionStatus"})).get_json()
    assert grouped["groups"][0]["groupValues"] == ["Running"]


async def test_namespaces_are_registered_listed_and_described(served_sqlite):
    api = served_sqlite
    created = await api.post(
        "/api/v1/namespaces",
        json={"namespace": "billing", "description": "Invoices", "workflowExecutionRetentionPeriod": "86400s", "data": {"team": "ops"}},
    )
    assert created.status_code == 201 and created.headers["Location"] == "/api/v1/namespaces/billing"
    assert_error(await api.post("/api/v1/namespaces", json={"namespace": "billing"}), 409, "ALREADY_EXISTS")
    described = (await api.get("/api/v1/namespaces/billing")).get_json()
    assert described["namespaceInfo"]["description"] == "Invoices"
    assert described["namespaceInfo"]["data"] == {"team": "ops"}
    assert described["config"]["workflowExecutionRetentionTtl"] == "86400s"
    listed = (await api.get("/api/v1/namespaces")).get_json()
    assert {n["namespaceInfo"]["name"] for n in listed["namespaces"]} >= {"default", "billing"}
    attributes = (await api.get("/api/v1/namespaces/billing/search-attributes")).get_json()
    assert attributes["systemAttributes"]["WorkflowType"] == "INDEXED_VALUE_TYPE_KEYWORD"


async def test_namespaces_are_updated_and_deleted(served_sqlite, task_queue):
    api = served_sqlite
    await api.post("/api/v1/namespaces", json={"namespace": "payroll", "data": {"team": "ops", "tier": "1"}})
    updated = await api.post(
        "/api/v1/namespaces/payroll/update",
        json={"updateInfo": {"description": "Salaries", "data": {"tier": "2"}}, "config": {"workflowExecutionRetentionTtl": "604800s"}},
    )
    assert updated.status_code == 200, updated.get_json()
    described = (await api.get("/api/v1/namespaces/payroll")).get_json()
    assert described["namespaceInfo"]["description"] == "Salaries"
    assert described["namespaceInfo"]["data"] == {"team": "ops", "tier": "2"}
    assert described["config"]["workflowExecutionRetentionTtl"] == "604800s"
    assert_error(await api.post("/api/v1/namespaces/nowhere/update", json={}), 404, "NOT_FOUND")

    # A running workflow keeps the namespace unless the delete is forced.
    started = await api.post(f"/api/v1/namespaces/payroll/workflows/{wid()}", json=start_body("Nobody", task_queue))
    assert started.status_code == 201
    refused = assert_error(await api.delete("/api/v1/namespaces/payroll"), 400, "FAILED_PRECONDITION")
    assert "running workflows" in refused["message"]
    assert (await api.get("/api/v1/namespaces/payroll")).status_code == 200
    assert_error(await api.delete("/api/v1/namespaces/payroll?force=maybe"), 400, "INVALID_ARGUMENT")
    deleted = await api.delete("/api/v1/namespaces/payroll?force=true")
    assert deleted.status_code == 200 and deleted.get_json()["deletedNamespace"].startswith("payroll-deleted-")
    assert_error(await api.get("/api/v1/namespaces/payroll/workflows"), 404, "NOT_FOUND")
    assert (await api.post("/api/v1/namespaces", json={"namespace": "payroll"})).status_code == 201  # the name is free


async def test_task_queue_shows_pollers_and_backlog(served_sqlite, sdk, task_queue):
    api = served_sqlite
    await api.post(f"{NS}/workflows/{wid()}", json=start_body("Nobody", task_queue))
    backlog = (await api.get(f"{NS}/task-queues/{task_queue}")).get_json()
    assert backlog["taskQueueStatus"]["backlogCountHint"] == "1"
    assert "pollers" not in backlog

    busy = f"{task_queue}-busy"
    async with worker(sdk, busy):
        for _ in range(50):
            described = (await api.get(f"{NS}/task-queues/{busy}")).get_json()
            activity = (await api.get(f"{NS}/task-queues/{busy}", query_string={"taskQueueType": "TASK_QUEUE_TYPE_ACTIVITY"})).get_json()
            if described.get("pollers") and activity.get("pollers"):
                break
            await asyncio.sleep(0.1)
    assert described["pollers"][0]["identity"]
    assert activity["pollers"][0]["identity"]


async def test_system_and_cluster_info(served_sqlite):
    info = (await served_sqlite.get("/api/v1/system-info")).get_json()
    assert info["serverVersion"].startswith("odin-")
    cluster = (await served_sqlite.get("/api/v1/cluster-info")).get_json()
    assert cluster["historyShardCount"] == 4 and cluster["persistenceStore"] == "sqlite"
