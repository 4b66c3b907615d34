"""The web UI renders what callers control (workflow and schedule ids, workflow types, task
queues, inputs, memos, search attributes, summaries and details, termination reasons, schedule
notes and calendar comments, queries): every such field, filled with markup that would run script
if it reached the page raw, must come out escaped, on every page that shows it."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import pytest
from rest_support import start_body

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"

# Each would execute (or open a script URL) if rendered without escaping.
ATTACKS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
]


def assert_inert(page: str, attack: str) -> None:
    if attack.startswith("javascript:"):
        # Never as the start of a link target (as text it is harmless).
        assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", page, re.I), attack
        return
    assert attack not in page, f"raw {attack!r} in the page"
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page


def register_keyword(app, name: str) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    request = AddSearchAttributesRequest(
        namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
    )
    app.extensions["odin"].run(lambda runtime: runtime.frontend.add_search_attributes(request))


@pytest.mark.parametrize("attack", ATTACKS)
def test_caller_controlled_fields_are_escaped_on_every_page(app, http, attack):
    workflow_id = f"xss-{ATTACKS.index(attack)}-{attack}"
    register_keyword(app, "XssKeyword")
    body = start_body(
        attack, attack.replace("/", "_"), attack, {"nested": attack},
        memo={"fields": {"note": attack}},
        searchAttributes={"indexedFields": {"XssKeyword": attack}},
        userMetadata={"summary": f"summary {attack}", "details": f"details {attack}"},
    )
    started = http.post(f"{NS}/workflows/{quote(workflow_id, safe='')}", json=body)
    assert started.status_code == 201, started.get_data(as_text=True)
    terminated = http.post(f"{NS}/workflows/{quote(workflow_id, safe='')}/terminate", json={"reason": attack})
    assert terminated.status_code == 200, terminated.get_data(as_text=True)

    pages = {
        "list": http.get(f"{UI}/workflows"),
        "list with the attack as query": http.get(f"{UI}/workflows", query_string={"query": attack}),
        "workflow": http.get(f"{UI}/workflows/{quote(workflow_id, safe='')}"),
        "task queue": http.get(f"{UI}/task-queues/{quote(attack.replace('/', '_'), safe='')}"),
    }
    for name, response in pages.items():
        page = response.get_data(as_text=True)
        assert response.status_code in (200, 400), (name, response.status_code)
        assert response.mimetype == "text/html", name
        assert_inert(page, attack)
    # The fields are shown (escaped), so the check above looked at pages that do render them.
    workflow_page = pages["workflow"].get_data(as_text=True)
    assert "Workflow Execution Terminated" in workflow_page and "XssKeyword" in workflow_page
    assert 'id="summary">summary ' in workflow_page and 'id="details"><pre>details ' in workflow_page
    if not attack.startswith("javascript:"):
        assert "&lt;" in workflow_page or "&#34;&gt;" in workflow_page or "&#39;&gt;" in workflow_page


def test_the_csrf_cookie_is_http_only_and_same_site(http):
    workflow_id = "cookie-check"
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Cookie", "q")).status_code == 201
    page = http.get(f"{UI}/workflows/{workflow_id}")  # a page with forms sets the token cookie
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("odin_csrf=")]
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered, cookie
    assert "secure" not in lowered  # plain HTTP here; behind TLS the cookie is Secure


def test_behind_tls_the_csrf_cookie_is_secure(http):
    workflow_id = "cookie-tls"
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Cookie", "q")).status_code == 201
    page = http.get(f"{UI}/workflows/{workflow_id}", base_url="https://localhost")
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("odin_csrf=")]
    assert "; secure" in cookie.lower(), cookie


@pytest.mark.parametrize("attack", ATTACKS)
def test_schedule_fields_are_escaped_on_the_schedule_pages(app, http, attack):
    schedule_id = f"xss-{ATTACKS.index(attack)}-{attack}"
    path_id = quote(schedule_id, safe="")
    register_keyword(app, "XssKeyword")
    body = {
        "schedule": {
            "spec": {"cronString": [f"0 9 * * * # {attack}"]},
            "action": {"startWorkflow": {
                "workflowId": attack, "workflowType": {"name": attack}, "taskQueue": {"name": attack.replace("/", "_")},
                "input": [attack, {"nested": attack}], "memo": {"fields": {"note": attack}},
                "searchAttributes": {"indexedFields": {"XssKeyword": attack}},
            }},
        },
        "memo": {"fields": {"note": attack}},
        "searchAttributes": {"indexedFields": {"XssKeyword": attack}},
    }
    created = http.post(f"{NS}/schedules/{path_id}", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    for patch in ({"triggerImmediately": {}}, {"pause": attack}):
        assert http.post(f"{NS}/schedules/{path_id}/patch", json={"patch": patch}).status_code == 200

    pages = {
        "list": http.get(f"{UI}/schedules"),
        "list with the attack as query": http.get(f"{UI}/schedules", query_string={"query": attack}),
        "schedule": http.get(f"{UI}/schedules/{path_id}"),
    }
    for name, response in pages.items():
        page = response.get_data(as_text=True)
        assert response.status_code in (200, 400), (name, response.status_code)
        assert response.mimetype == "text/html", name
        assert_inert(page, attack)
    # The fields are shown (escaped): the id, the note, the recent action's run, memo and search attributes.
    page = pages["schedule"].get_data(as_text=True)
    assert 'id="notes"' in page and 'id="recent-actions"' in page and "XssKeyword" in page and 'id="memo"' in page
    assert page.count("/namespaces/default/workflows/") >= 1
    if not attack.startswith("javascript:"):
        for shown in (page, pages["list"].get_data(as_text=True)):
            assert "&lt;" in shown or "&#34;&gt;" in shown or "&#39;&gt;" in shown


@pytest.mark.parametrize("attack", ATTACKS)
async def test_failures_and_worker_identities_are_escaped_on_the_workflow_page(served_sqlite, sdk, task_queue, attack):
    """A worker (raw gRPC, so every field is ours) fails an activity and then a workflow task with
    the attack as message, stack, type and identity; another run fails as an unregistered type
    named by the attack. The notices at the top, the pending activity and the history show them."""
    from datetime import timedelta

    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.command.v1 import Command
    from temporalio.api.common.v1 import ActivityType, RetryPolicy, WorkflowExecution
    from temporalio.api.enums.v1 import CommandType, WorkflowTaskFailedCause
    from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

    service = sdk.workflow_service
    queue = TaskQueue(name=task_queue)
    failure = Failure(message=attack, stack_trace=f"  File x.py, in {attack}", application_failure_info=ApplicationFailureInfo(type=attack))

    def seconds(n: float) -> Duration:
        d = Duration()
        d.FromTimedelta(timedelta(seconds=n))
        return d

    async def workflow_task(queue: TaskQueue = queue):
        return await service.poll_workflow_task_queue(ws.PollWorkflowTaskQueueRequest(namespace="default", task_queue=queue, identity=attack))

    workflow_id = f"xss-fail-{ATTACKS.index(attack)}"
    assert (await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Xss", task_queue))).status_code == 201
    task = await workflow_task()
    schedule = Command(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK)
    a = schedule.schedule_activity_task_command_attributes
    a.activity_id = "1"
    a.activity_type.CopyFrom(ActivityType(name=attack))
    a.task_queue.CopyFrom(queue)
    a.start_to_close_timeout.CopyFrom(seconds(30))
    a.retry_policy.CopyFrom(RetryPolicy(initial_interval=seconds(0.1), backoff_coefficient=1.0))
    await service.respond_workflow_task_completed(ws.RespondWorkflowTaskCompletedRequest(
        namespace="default", task_token=task.task_token, commands=[schedule], identity=attack
    ))
    activity = await service.poll_activity_task_queue(ws.PollActivityTaskQueueRequest(namespace="default", task_queue=queue, identity=attack))
    await service.respond_activity_task_failed(ws.RespondActivityTaskFailedRequest(
        namespace="default", task_token=activity.task_token, failure=failure, identity=attack
    ))
    await served_sqlite.post(f"{NS}/workflows/{workflow_id}/signal/poke", json={})
    task = await workflow_task()
    await service.respond_workflow_task_failed(ws.RespondWorkflowTaskFailedRequest(
        namespace="default", task_token=task.task_token, failure=failure, identity=attack,
        cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
    ))

    unknown_id = f"xss-unknown-{ATTACKS.index(attack)}"
    other_queue = TaskQueue(name=f"{task_queue}-other")  # the first run's retried workflow task waits on the first
    assert (await served_sqlite.post(f"{NS}/workflows/{unknown_id}", json=start_body(attack, other_queue.name))).status_code == 201
    task = await workflow_task(other_queue)
    fail = Command(command_type=CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION)
    fail.fail_workflow_execution_command_attributes.failure.CopyFrom(
        Failure(message=attack, stack_trace=attack, application_failure_info=ApplicationFailureInfo(type="WorkflowTypeNotRegistered"))
    )
    await service.respond_workflow_task_completed(ws.RespondWorkflowTaskCompletedRequest(
        namespace="default", task_token=task.task_token, commands=[fail], identity=attack
    ))

    for _ in range(100):  # the activity's second attempt is scheduled after its retry interval
        described = await sdk.workflow_service.describe_workflow_execution(ws.DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
        ))
        if described.pending_activities and described.pending_activities[0].attempt >= 2:
            break
        await asyncio.sleep(0.05)
    page = (await served_sqlite.get(f"{UI}/workflows/{workflow_id}")).get_data(as_text=True)
    unknown = (await served_sqlite.get(f"{UI}/workflows/{unknown_id}")).get_data(as_text=True)
    for shown in (page, unknown):
        assert_inert(shown, attack)
    # The fields are shown (escaped), so the check above looked at pages that do render them.
    assert 'id="blocker-workflow-task"' in page and 'id="blocker-activity-1"' in page and 'id="pending-activities"' in page
    assert page.count('class="failure-type"') >= 4  # two notices, the pending activity, the history's failed task
    assert 'id="blocker-unknown-type"' in unknown and "WorkflowTypeNotRegistered" in unknown
