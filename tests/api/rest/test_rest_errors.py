"""Every error the REST door answers is ``{"error": {"code", "message", "details"}}`` with the
right HTTP status, rendered in one place; nothing of a stack trace reaches the client."""

from __future__ import annotations

import logging

import pytest
import redis.exceptions
import sqlalchemy.exc
from rest_support import assert_error, start_body, wid

from odin.errors import ResourceExhausted

NS = "/api/v1/namespaces/default"


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "Malformed JSON body"),
        ("[1, 2]", "must be an object"),
        ('{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "input": NaN}', "Malformed JSON body"),
        ('{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "input": {"a": 1}}', "input must be a JSON array"),
        ('{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "colour": "blue"}', "colour"),
        ('{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "workflowRunTimeout": "soon"}', "workflowRunTimeout"),
        ('{"workflowType": {"name": "X"}, "taskQueue": {"name": "q"}, "workflowIdReusePolicy": "SOMETIMES"}', "SOMETIMES"),
        ('{"taskQueue": {"name": "q"}}', "WorkflowType is not set"),
    ],
)
def test_bad_start_bodies_are_400(http, body, message):
    error = assert_error(http.post(f"{NS}/workflows/{wid()}", data=body), 400, "INVALID_ARGUMENT")
    assert message in error["message"]


@pytest.mark.parametrize(
    "path, message",
    [
        (f"{NS}/workflows?query=WorkflowType%20%3D", "Invalid query"),
        (f"{NS}/workflows?query=Nonsense%20%3D%201", "Invalid query"),
        (f"{NS}/workflows?pageSize=many", "pageSize"),
        (f"{NS}/workflows?pageSize=0", "pageSize"),
        (f"{NS}/workflows?nextPageToken=%25%25%25", "nextPageToken"),
        (f"{NS}/workflows?nextPageToken=bm90LWEtbnVtYmVy", "NextPageToken"),
        (f"{NS}/workflows/x?runId=not-a-uuid", "RunId"),
        (f"{NS}/workflows/x/history?waitNewEvent=perhaps", "waitNewEvent"),
        (f"{NS}/workflows/x/result?wait=-1", "wait"),
        (f"{NS}/workflows/x/result?wait=inf", "wait"),
        (f"{NS}/task-queues/q?taskQueueType=TASK_QUEUE_TYPE_NEXUS", "taskQueueType"),
    ],
)
def test_bad_parameters_are_400(http, path, message):
    assert message in assert_error(http.get(path), 400, "INVALID_ARGUMENT")["message"]


def test_unknown_things_are_404(http):
    error = assert_error(http.get("/api/v1/namespaces/nowhere/workflows/x"), 404, "NOT_FOUND")
    assert error["details"] == [
        {"@type": "type.googleapis.com/temporal.api.errordetails.v1.NamespaceNotFoundFailure", "namespace": "nowhere"}
    ]
    assert_error(http.get(f"{NS}/workflows/never-started"), 404, "NOT_FOUND")
    assert_error(http.post(f"{NS}/workflows/never-started/signal/go"), 404, "NOT_FOUND")
    assert_error(http.get("/api/v1/no-such-route"), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow(http):
    response = http.delete(f"{NS}/workflows/x/cancel")
    assert_error(response, 405, "UNIMPLEMENTED")
    assert "POST" in response.headers["Allow"]


def test_already_started_is_409_with_the_running_run_id(http):
    workflow_id = wid()
    run_id = http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q")).get_json()["runId"]
    error = assert_error(http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q")), 409, "ALREADY_EXISTS")
    assert error["details"][0]["runId"] == run_id


def test_a_body_over_the_limit_is_413(http):
    response = http.post(f"{NS}/workflows/{wid()}", data=b"[" + b"1," * (2 * 1024 * 1024) + b"1]")
    assert_error(response, 413, "RESOURCE_EXHAUSTED")


def test_a_query_no_worker_answers_is_504(http):
    workflow_id = wid()
    http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"))
    assert_error(http.post(f"{NS}/workflows/{workflow_id}/query/state"), 504, "DEADLINE_EXCEEDED")


@pytest.mark.parametrize(
    "fault, message",
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")), "database"),
        (redis.exceptions.ConnectionError("Connection reset by peer"), "Redis"),
    ],
)
def test_a_lost_database_or_redis_connection_is_503(app, http, monkeypatch, fault, message):
    store = app.extensions["odin"].get().store

    async def lost(*args, **kwargs):
        raise fault

    monkeypatch.setattr(store, "list_namespaces", lost)
    error = assert_error(http.get("/api/v1/namespaces"), 503, "UNAVAILABLE")
    assert message in error["message"]
    assert "server closed" not in error["message"] and "reset by peer" not in error["message"]


def test_an_unexpected_exception_is_a_generic_500_and_logged(app, http, monkeypatch, caplog):
    frontend = app.extensions["odin"].get().frontend

    async def broken(req):
        raise RuntimeError("secret detail: password=hunter2")

    monkeypatch.setattr(frontend, "describe_namespace", broken)
    with caplog.at_level(logging.ERROR, logger="odin.api.rest.errors"):
        response = http.get("/api/v1/namespaces/default")
    assert_error(response, 500, "INTERNAL")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "secret detail" in caplog.text and "DescribeNamespace" in caplog.text


def test_resource_exhausted_is_429_with_retry_after(app, http, monkeypatch):
    # The status and Retry-After come from the error (see test_rest_auth for the real rate limit).
    frontend = app.extensions["odin"].get().frontend

    async def limited(req):
        raise ResourceExhausted("Namespace default is over its rate limit.", retry_after=1.2)

    monkeypatch.setattr(frontend, "list_workflow_executions", limited)
    response = http.get(f"{NS}/workflows")
    assert_error(response, 429, "RESOURCE_EXHAUSTED")
    assert response.headers["Retry-After"] == "2"


def test_cross_site_browser_posts_are_refused(http):
    workflow_id = wid()
    http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"))
    cross_site = http.post(f"{NS}/workflows/{workflow_id}/terminate", headers={"Sec-Fetch-Site": "cross-site"})
    assert_error(cross_site, 403, "PERMISSION_DENIED")
    foreign_origin = http.post(f"{NS}/workflows/{workflow_id}/terminate", headers={"Origin": "https://evil.example"})
    assert_error(foreign_origin, 403, "PERMISSION_DENIED")
    same_origin = http.post(
        f"{NS}/workflows/{workflow_id}/terminate", headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert same_origin.status_code == 200
