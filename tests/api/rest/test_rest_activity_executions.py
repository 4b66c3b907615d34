"""Standalone activities over REST: start, describe, wait for the outcome (a temporalio worker runs
it), list and count by query, cancel, terminate, delete, and bad input with its status and message."""

from __future__ import annotations

import uuid

from rest_support import assert_error
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


async def test_standalone_activities_over_rest(served_sqlite, sqlite_server):
    api = served_sqlite
    ns = "/api/v1/namespaces/default"
    queue = f"rest-act-{uuid.uuid4().hex[:8]}"
    body = {"activityType": {"name": "shout"}, "taskQueue": {"name": queue}, "input": ["odin"], "startToCloseTimeout": "10s"}
    started = await api.post(f"{ns}/activities/shout-1", json=body)
    assert started.status_code == 201, started.get_data(as_text=True)
    run_id = started.get_json()["runId"]
    assert started.headers["Location"] == f"{ns}/activities/shout-1?runId={run_id}"
    assert_error(await api.post(f"{ns}/activities/shout-1", json=body), 409, "ALREADY_EXISTS")
    described = (await api.get(f"{ns}/activities/shout-1")).get_json()
    assert (described["info"]["status"], described["input"]) == ("ACTIVITY_EXECUTION_STATUS_RUNNING", ["odin"])

    client = await Client.connect(f"127.0.0.1:{sqlite_server.endpoints.grpc_port}")
    async with Worker(client, task_queue=queue, activities=[shout]):
        outcome = (await api.get(f"{ns}/activities/shout-1/outcome")).get_json()
    assert outcome == {"runId": run_id, "outcome": {"result": ["ODIN"]}}
    described = (await api.get(f"{ns}/activities/shout-1")).get_json()
    assert (described["info"]["status"], described["outcome"]) == ("ACTIVITY_EXECUTION_STATUS_COMPLETED", {"result": ["ODIN"]})

    for name in ("later-1", "later-2"):
        assert (await api.post(f"{ns}/activities/{name}", json=body)).status_code == 201
    assert (await api.post(f"{ns}/activities/later-1/cancel", json={"reason": "not now"})).status_code == 200
    assert (await api.post(f"{ns}/activities/later-2/terminate", json={"reason": "stop"})).status_code == 200
    listed = (await api.get(f"{ns}/activities", query_string={"query": f"TaskQueue = '{queue}'"})).get_json()
    assert sorted((a["activityId"], a["status"]) for a in listed["executions"]) == [
        ("later-1", "ACTIVITY_EXECUTION_STATUS_CANCELED"),
        ("later-2", "ACTIVITY_EXECUTION_STATUS_TERMINATED"),
        ("shout-1", "ACTIVITY_EXECUTION_STATUS_COMPLETED"),
    ]
    counted = (await api.get(f"{ns}/activity-count", query_string={"query": f"TaskQueue = '{queue}' AND ExecutionStatus = 'Canceled'"})).get_json()
    assert counted == {"count": "1"}
    assert (await api.delete(f"{ns}/activities/later-2")).status_code == 200
    assert_error(await api.get(f"{ns}/activities/later-2"), 404, "NOT_FOUND")
    assert_error(await api.post(f"{ns}/activities/later-1/terminate", json={}), 400, "FAILED_PRECONDITION")
    assert_error(await api.post(f"{ns}/activities/bad", json={"activityType": {"name": "shout"}, "taskQueue": {"name": queue}}), 400, "INVALID_ARGUMENT")
    assert_error(await api.get(f"{ns}/activities", query_string={"query": "Nope = 1"}), 400, "INVALID_ARGUMENT")
