"""The workflow page explains a run that cannot progress (a failing workflow task, an unregistered
workflow type, an activity retrying), shows failures as type, message and stack, times in words,
a graphical timeline and a stack-trace button; the API page; dark mode and live updates in a real
headless Chromium.

Screenshots of the pages go to the directory ``ODIN_UI_SCREENSHOTS`` names, when set."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from rest_support import start_body, wid
from rest_workflows import Broken, Charge, Counter, Greet, Steps, WaitForever, charge_card, shout
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo, PendingWorkflowTaskInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.worker import Worker
from test_rest_ui import chrome, dev_server  # noqa: F401  (dev_server is a fixture)

from odin.api.rest import explain, humane, timeline
from odin.api.rest.ui import api_groups
from odin.sdk._worker import UnknownWorkflow

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# -- pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "words"), [
    (259200, "3 days"), (5430, "1 hour 30 minutes"), (90061, "1 day 1 hour"), (86403, "1 day"), (60, "1 minute"),
    (42, "42 seconds"), (2.5, "2.5 seconds"), (0.1234, "123 ms"), (0, "0 ms"), (3600, "1 hour"),
])
def test_durations_in_words(seconds, words):
    assert humane.duration_words(seconds) == words


@pytest.mark.parametrize(("delta", "words"), [
    (timedelta(seconds=2), "just now"), (timedelta(seconds=-3), "just now"), (timedelta(seconds=30), "30 seconds ago"),
    (timedelta(minutes=3, seconds=59), "3 minutes ago"), (timedelta(days=3, hours=5), "3 days ago"),
    (timedelta(hours=-2), "in 2 hours"), (timedelta(minutes=-1), "in 1 minute"),
])
def test_relative_times(delta, words):
    assert humane.relative(T0 - delta, T0) == words


def test_the_filters_on_the_app(app):
    human, ago = app.jinja_env.filters["human"], app.jinja_env.filters["ago"]
    assert human("259200s") == "3 days" and human("0.250s") == "250 ms" and human(5400) == "1 hour 30 minutes"
    assert human("") == "" and human("soon") == "soon"
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1, seconds=2)).isoformat().replace("+00:00", "Z")
    assert ago(an_hour_ago) == "1 hour ago" and ago("not a time") == "" and ago(None) == ""


def _event(event_id: int, kind: int, seconds: float, **attributes) -> HistoryEvent:
    at = Timestamp()
    at.FromDatetime(T0 + timedelta(seconds=seconds))
    event = HistoryEvent(event_id=event_id, event_type=kind, event_time=at)
    for field, values in attributes.items():
        getattr(event, field).MergeFrom(type(getattr(event, field))(**values))
    return event


def _failure(message: str, kind: str = "", stack: str = "", cause: Failure | None = None) -> Failure:
    failure = Failure(message=message, stack_trace=stack, application_failure_info=ApplicationFailureInfo(type=kind))
    if cause is not None:
        failure.cause.CopyFrom(cause)
    return failure


def _described(status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING, **fields) -> ws.DescribeWorkflowExecutionResponse:
    described = ws.DescribeWorkflowExecutionResponse(**fields)
    info = described.workflow_execution_info
    info.status, info.type.name, info.task_queue = status, "Ship", "orders"
    return described


E = EventType
STARTED = _event(1, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 0)


def test_a_failure_reads_as_type_message_stack_and_causes():
    root = _failure("disk full", "OSError", "  File a.py, line 3, in write")
    view = explain.failure_view(_failure("could not save", "SaveFailed", "  File b.py, line 9, in save", root))
    assert (view.type, view.message, view.stack) == ("SaveFailed", "could not save", "  File b.py, line 9, in save")
    assert [(c.type, c.message) for c in view.causes] == [("OSError", "disk full")]
    timeout = explain.failure_view(Failure(message="activity timed out", timeout_failure_info={}))
    assert timeout.type == "timeout" and timeout.causes == []


def test_a_failing_workflow_task_is_explained_with_attempt_error_and_worker():
    failed = _event(4, E.EVENT_TYPE_WORKFLOW_TASK_FAILED, 1, workflow_task_failed_event_attributes={
        "failure": _failure("list index out of range", "IndexError", "  File w.py, line 7, in run"),
        "identity": "4242@host-a", "cause": 14,  # WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
    })
    described = _described(pending_workflow_task=PendingWorkflowTaskInfo(attempt=3))
    [blocker] = explain.blockers(described, [STARTED, failed])
    assert blocker.kind == "workflow-task" and "attempt 3" in blocker.text and "4242@host-a" in blocker.text
    assert "workflow worker unhandled failure" in blocker.text
    assert blocker.failure is not None and blocker.failure.type == "IndexError" and "in run" in blocker.failure.stack
    # Once a later workflow task completes, the failure is history, not a blocker.
    completed = _event(7, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2)
    assert explain.blockers(_described(), [STARTED, failed, completed]) == []


def test_routine_workflow_task_failures_are_not_blockers_and_nondeterminism_is_named():
    def failed(cause: int) -> HistoryEvent:
        return _event(4, E.EVENT_TYPE_WORKFLOW_TASK_FAILED, 1, workflow_task_failed_event_attributes={
            "failure": _failure("why"), "cause": cause})

    C = WorkflowTaskFailedCause
    # How a reset run's history goes on; new events came in while the task ran.
    assert explain.blockers(_described(), [STARTED, failed(C.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW)]) == []
    assert explain.blockers(_described(), [STARTED, failed(C.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND)]) == []
    [blocker] = explain.blockers(_described(), [STARTED, failed(C.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR)])
    assert "no longer matches the run's history (nondeterminism)" in blocker.text
    [blocker] = explain.blockers(_described(), [STARTED, failed(C.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES)])
    assert blocker.text.startswith("The server refused the workflow task's commands (bad schedule activity attributes)")


def test_an_unregistered_workflow_type_is_said_plainly():
    failed = _event(4, E.EVENT_TYPE_WORKFLOW_TASK_FAILED, 1, workflow_task_failed_event_attributes={
        "failure": _failure('Workflow class Shipp is not registered on this worker, available workflows: Ship'),
    })
    [blocker] = explain.blockers(_described(pending_workflow_task=PendingWorkflowTaskInfo(attempt=2)), [STARTED, failed])
    assert blocker.kind == "unknown-type" and blocker.title == "Workflow type Ship is not registered"
    assert blocker.text.startswith("The worker polling task queue orders has no workflow type Ship; the workflow task keeps failing (attempt 2).")
    # The Odin SDK fails the run itself.
    closed = _event(5, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, 1, workflow_execution_failed_event_attributes={
        "failure": _failure("no workflow type 'Ship' on task queue 'orders': its workers run none", "WorkflowTypeNotRegistered"),
    })
    failed_run = _described(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED)
    [blocker] = explain.blockers(failed_run, [STARTED, closed])
    assert blocker.kind == "unknown-type" and blocker.failure.type == "WorkflowTypeNotRegistered"
    other = _event(5, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, 1, workflow_execution_failed_event_attributes={"failure": _failure("no")})
    assert explain.blockers(failed_run, [STARTED, other]) == []


def test_a_retrying_activity_is_explained_and_a_first_attempt_is_not():
    retrying = PendingActivityInfo(
        activity_id="7", attempt=4, maximum_attempts=10, last_worker_identity="77@host-b",
        last_failure=_failure("card declined", "PaymentDeclined"),
    )
    retrying.activity_type.name = "charge"
    first = PendingActivityInfo(activity_id="8", attempt=1)
    [blocker] = explain.blockers(_described(pending_activities=[retrying, first]), [STARTED])
    assert blocker.kind == "activity" and blocker.ref == "7" and blocker.title == "Activity 7 (charge) is retrying"
    assert blocker.text == "Attempt 4 of 10; the last attempt failed on worker 77@host-b."
    assert blocker.failure.type == "PaymentDeclined" and blocker.failure.message == "card declined"


def test_a_paused_activity_says_who_paused_it_and_why():
    paused = PendingActivityInfo(activity_id="a1", attempt=2, paused=True, last_failure=_failure("timeout", "Timeout"))
    paused.activity_type.name = "sync"
    paused.pause_info.manual.identity, paused.pause_info.manual.reason = "ops@host", "db maintenance"
    [blocker] = explain.blockers(_described(pending_activities=[paused]), [STARTED])
    assert blocker.title == "Activity a1 (sync) is paused" and blocker.ref == "a1"
    assert blocker.text == "Paused by ops@host: db maintenance. No new attempt starts until it is unpaused (attempt 2)."
    assert blocker.failure.message == "timeout"


def test_the_workflows_list_says_when_in_words(http):
    workflow_id = wid("listed")
    http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Listed", "q"))
    http.post(f"{NS}/workflows/{workflow_id}/terminate", json={"reason": "done"})
    page = http.get(f"{UI}/workflows").get_data(as_text=True)
    row = page[page.index(workflow_id):]
    row = row[:row.index("</tr>")]
    assert re.search(r'<time class="started" datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">(just now|\d+ seconds ago)</time>', row)
    assert re.search(r'<time class="closed" [^>]*>(just now|\d+ seconds ago)</time>', row)
    assert re.search(r'<span class="muted took">after (\d+ ms|\d+(\.\d)? seconds)</span>', row), row


def test_the_gantt_draws_activities_timers_and_children_over_time():
    events = [
        STARTED,
        _event(5, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 1, activity_task_scheduled_event_attributes={
            "activity_id": "1", "activity_type": {"name": "fetch"}}),
        _event(6, E.EVENT_TYPE_ACTIVITY_TASK_STARTED, 2, activity_task_started_event_attributes={"scheduled_event_id": 5}),
        _event(7, E.EVENT_TYPE_ACTIVITY_TASK_FAILED, 3, activity_task_failed_event_attributes={
            "scheduled_event_id": 5, "started_event_id": 6}),
        _event(8, E.EVENT_TYPE_TIMER_STARTED, 3, timer_started_event_attributes={
            "timer_id": "t1", "start_to_fire_timeout": {"seconds": 90}}),
        _event(9, E.EVENT_TYPE_TIMER_FIRED, 5, timer_fired_event_attributes={"timer_id": "t1", "started_event_id": 8}),
        _event(10, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, 5,
               start_child_workflow_execution_initiated_event_attributes={"workflow_id": "kid", "workflow_type": {"name": "Pack"}}),
    ]
    chart = timeline.gantt(events, T0 + timedelta(seconds=10))  # still running at +10 s
    assert [(b.label, b.kind, b.outcome, b.start, b.end) for b in chart.bars] == [
        ("fetch (1)", "activity", "failed", 1.0, 3.0),
        ("timer t1 (1 minute 30 seconds)", "timer", "completed", 3.0, 5.0),
        ("Pack (kid)", "child", "running", 5.0, 10.0),
    ]
    assert chart.span == 10.0 and chart.more == 0 and [b.child_id for b in chart.bars] == ["", "", "kid"]
    left, right = timeline.CHART_LEFT, timeline.CHART_RIGHT
    fetch, _, pack = chart.bars
    assert fetch.x == left + 0.1 * (right - left) and pack.x + pack.width == pytest.approx(right)
    assert [label for _, label in chart.ticks] == ["0", "+5 seconds", "+10 seconds"]
    assert chart.height == 24 + 3 * timeline.ROW_HEIGHT + 4
    # A closed run ends the chart at its close; bars it left open run to there.
    closed = _event(11, E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, 6)
    assert timeline.gantt([*events, closed], T0 + timedelta(days=1)).span == 6.0
    assert timeline.gantt([], T0).bars == []


def test_a_child_bar_links_to_the_childs_page(app):
    from flask import render_template

    initiated = _event(5, E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, 1,
                       start_child_workflow_execution_initiated_event_attributes={"workflow_id": "kid <1>", "workflow_type": {"name": "Pack"}})
    with app.test_request_context():
        svg = render_template("_gantt.html", gantt=timeline.gantt([STARTED, initiated], T0 + timedelta(seconds=2)), namespace="default")
    assert '<a href="/namespaces/default/workflows/kid%20%3C1%3E">' in svg and "Pack (kid &lt;1&gt;)" in svg


def test_history_rows_carry_their_failure():
    failed = _event(4, E.EVENT_TYPE_WORKFLOW_TASK_FAILED, 1, workflow_task_failed_event_attributes={
        "failure": _failure("boom", "ValueError", "  File w.py, line 7, in run")})
    started_row, failed_row = timeline.rows([STARTED, failed])
    assert started_row.failure is None and failed_row.failure.type == "ValueError" and failed_row.failure.message == "boom"


def test_api_groups_by_tag_in_the_documents_order():
    document = {
        "tags": [{"name": "workflows"}, {"name": "empty"}],
        "paths": {
            "/b": {"get": {"summary": "B", "tags": ["workflows"]}, "parameters": []},
            "/a": {"post": {"summary": "A", "tags": ["web UI"], "description": "d"}, "delete": {"summary": "gone"}},
        },
    }
    assert api_groups(document) == [
        ("workflows", [{"method": "GET", "path": "/b", "summary": "B", "description": ""}]),
        ("web UI", [{"method": "POST", "path": "/a", "summary": "A", "description": "d"}]),
        ("other", [{"method": "DELETE", "path": "/a", "summary": "gone", "description": ""}]),
    ]


# -- pages through Flask's test client ------------------------------------------------------


def test_the_api_page_lists_every_operation_by_tag(http):
    response = http.get("/api-docs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    document = http.get("/openapi.json").get_json()
    operations = sum(1 for item in document["paths"].values() for m in item if m in {"get", "post", "put", "delete", "patch"})
    assert page.count('<td class="method ') == operations
    assert "<h2>workflows</h2>" in page and "/api/v1/namespaces/{namespace}/workflows/{workflow_id}" in page
    assert "Query a workflow" in page
    # Nothing is fetched from elsewhere: every script and stylesheet is the site's own.
    assert "http://" not in page.replace('href="http://localhost', "") and "https://" not in page


async def _page_until(api, workflow_id: str, *needles: str, tries: int = 100) -> str:
    for _ in range(tries):
        page = (await api.get(f"{UI}/workflows/{workflow_id}")).get_data(as_text=True)
        if all(n in page for n in needles):
            return page
        await asyncio.sleep(0.1)
    missing = [n for n in needles if n not in page]
    raise AssertionError(f"{missing} not on the page:\n{page}")


async def test_a_failing_workflow_task_is_explained_at_the_top(served_sqlite, sdk, task_queue):
    workflow_id = wid("broken")
    async with Worker(sdk, task_queue=task_queue, workflows=[Broken], identity="worker-7@test-host"):
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Broken", task_queue, "the order book is empty"))
        page = await _page_until(served_sqlite, workflow_id, 'id="blocker-workflow-task"', "attempt 2")
    top = page[page.index('id="blocker-workflow-task"'):page.index("<section")]
    assert "The workflow task is failing" in top and "worker-7@test-host" in top
    assert '<span class="failure-type">RuntimeError</span>' in top
    assert '<span class="failure-message">the order book is empty</span>' in top
    assert "in run" in top and "raise RuntimeError(message)" in top  # the stack, from the worker
    assert "Workflow Task Failed" in page


async def test_an_unregistered_workflow_type_on_a_temporalio_worker_is_said_plainly(served_sqlite, sdk, task_queue):
    workflow_id = wid("typo")
    async with Worker(sdk, task_queue=task_queue, workflows=[Greet]):
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Greeet", task_queue))
        page = await _page_until(served_sqlite, workflow_id, 'id="blocker-unknown-type"')
    assert "Workflow type Greeet is not registered" in page and "Workflow class Greeet is not registered" in page
    assert 'id="blocker-workflow-task"' not in page


async def test_an_unregistered_workflow_type_on_an_odin_worker_is_said_plainly(served_sqlite, sdk, task_queue):
    workflow_id = wid("typo")
    async with Worker(sdk, task_queue=task_queue, workflows=[UnknownWorkflow]):  # what the Odin SDK's worker runs
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("pipline", task_queue))
        page = await _page_until(served_sqlite, workflow_id, 'id="blocker-unknown-type"')
    assert "Workflow type pipline is not registered" in page and "failed at once" in page
    assert '<span class="failure-type">WorkflowTypeNotRegistered</span>' in page
    assert "no workflow type &#39;pipline&#39; on task queue" in page


async def test_a_retrying_activity_is_explained_at_the_top(served_sqlite, sdk, task_queue):
    workflow_id = wid("charge")
    async with Worker(sdk, task_queue=task_queue, workflows=[Charge], activities=[charge_card], identity="payments@test-host"):
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Charge", task_queue, "card declined"))
        page = await _page_until(served_sqlite, workflow_id, 'id="blocker-activity-1"', "Attempt 3")
    top = page[page.index('id="blocker-activity-1"'):page.index("<section")]
    assert "Activity 1 (charge_card) is retrying" in top and "payments@test-host" in top
    assert '<span class="failure-type">PaymentDeclined</span>' in top and "card declined" in top
    # The pending activities table shows the same failure in parts.
    table = page[page.index('id="pending-activities"'):]
    assert '<span class="failure-type">PaymentDeclined</span>' in table


async def test_a_queue_no_worker_polls_is_named_at_the_top(served_sqlite, sdk, task_queue):
    lonely, polled = wid("lonely"), wid("polled")
    await served_sqlite.post(f"{NS}/workflows/{lonely}", json=start_body("WaitForever", f"{task_queue}-nobody"))
    page = await _page_until(served_sqlite, lonely, 'id="unpolled"')
    top = page[page.index('id="blockers"'):page.index("<section")]
    assert f"No worker has polled task queue {task_queue}-nobody in the last 120 s" in top
    async with Worker(sdk, task_queue=task_queue, workflows=[WaitForever]):
        await served_sqlite.post(f"{NS}/workflows/{polled}", json=start_body("WaitForever", task_queue))
        page = await _page_until(served_sqlite, polled, "Workflow Task Completed")
    assert 'id="unpolled"' not in page and 'class="blocker' not in page


async def test_a_reset_run_waiting_for_its_worker_is_not_shown_as_failing(served_sqlite, sdk, task_queue):
    """A reset run's history has a workflow task failed with cause RESET_WORKFLOW; with no worker to
    run the next task yet, the page must not say the workflow code fails."""
    workflow_id = wid("reset")
    async with Worker(sdk, task_queue=task_queue, workflows=[Counter]):
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Counter", task_queue))
        await _page_until(served_sqlite, workflow_id, "Workflow Task Completed")
    reset = await served_sqlite.post(f"{NS}/workflows/{workflow_id}/reset", json={"workflowTaskFinishEventId": 4, "reason": "again"})
    assert reset.status_code == 200, reset.get_json()
    page = await _page_until(served_sqlite, workflow_id, reset.get_json()["runId"], "Workflow Task Failed")
    assert "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW" in page and 'id="blocker-workflow-task"' not in page


async def test_times_in_words_timeline_and_stack_trace(served_sqlite, sdk, task_queue):
    workflow_id = wid("steps")
    async with Worker(sdk, task_queue=task_queue, workflows=[Steps, Counter], activities=[shout]):
        await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Steps", task_queue))
        page = await _page_until(served_sqlite, workflow_id, "Timer Fired", 'data-refresh="2000"')
        assert 'id="gantt"' in page and "shout (1)" in page and "timer 1 (200 ms)" in page
        assert 'class="bar activity completed"' in page and 'class="bar timer completed"' in page
        assert '<a href="#event-5">' in page and 'id="event-5"' in page  # a bar leads to its event in the list
        assert 'id="started-ago">(just now)' in page or "seconds ago)" in page
        assert 'id="stack-trace-button"' in page

        stack = await served_sqlite.get(f"{UI}/workflows/{workflow_id}/stack-trace")
        text = stack.get_data(as_text=True)
        assert stack.status_code == 200 and 'id="stack-trace"' in text
        # temporalio names each task by the workflow function and type: "run (workflow: Steps, id: ...)".
        assert "Stack for &lt;Task pending name=&#39;run (workflow: Steps, id: " in text

        await served_sqlite.post(f"{NS}/workflows/{workflow_id}/signal/proceed", json={})
        # The page describes the run, then reads its history: it waits for both to show the end.
        page = await _page_until(served_sqlite, workflow_id, "Workflow Execution Completed", 'class="badge completed"')
    assert 'data-refresh' not in page and 'id="stack-trace-button"' not in page
    took = page[page.index('id="took">') + len('id="took">'):]
    took = took[:took.index("<")]
    assert re.fullmatch(r"\d+ ms|\d+(\.\d)? seconds", took), took  # not "0.734512s"


async def test_the_stack_trace_of_a_closed_run_is_a_clear_error(served_sqlite, sdk, task_queue):
    workflow_id = wid("closed")
    await served_sqlite.post(f"{NS}/workflows/{workflow_id}", json=start_body("Gone", task_queue))
    await served_sqlite.post(f"{NS}/workflows/{workflow_id}/terminate", json={"reason": "over"})
    response = await served_sqlite.get(f"{UI}/workflows/{workflow_id}/stack-trace")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert 'class="error"' in response.get_data(as_text=True)


# -- a real browser -------------------------------------------------------------------------


def keep_screenshot(driver, tmp_path: Path, name: str) -> Path:
    """Saves a screenshot under the test's directory, and a copy in ``ODIN_UI_SCREENSHOTS`` when set."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 0
    if os.environ.get("ODIN_UI_SCREENSHOTS"):
        keep = Path(os.environ["ODIN_UI_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, keep / name)
    return path


async def test_a_running_page_updates_itself_until_the_run_completes(dev_server, tmp_path, monkeypatch):  # noqa: F811
    """The status badge turns Completed without a reload (a value typed into a form survives), and
    the timeline and a retrying activity's notice are drawn."""
    from temporalio.client import Client

    monkeypatch.setenv("SE_OFFLINE", "true")
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    task_queue, steps_id, charge_id = f"tq-{uuid.uuid4().hex[:8]}", wid("steps"), wid("charge")
    loop = asyncio.get_running_loop()

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(f"{base}{UI}/workflows/{steps_id}")
            wait.until(lambda d: "Timer Fired" in d.find_element(By.ID, "history").text)
            assert driver.find_element(By.ID, "status").text == "Running"
            assert len(driver.find_elements(By.CSS_SELECTOR, "#gantt g.bar")) == 2
            driver.execute_script("""
                window.sameDocument = true;
                window.fetches = 0;
                const fetch = window.fetch;
                window.fetch = (...args) => { window.fetches += 1; return fetch(...args); };
            """)
            driver.find_element(By.NAME, "signal_name").send_keys("half-typed")
            wait.until(lambda d: d.execute_script("return window.fetches;") >= 2)  # two polls while running
            assert driver.find_element(By.NAME, "signal_name").get_attribute("value") == "half-typed"
            keep_screenshot(driver, tmp_path, "workflow-running-timeline.png")

            # A hidden tab does not poll: the page stays as it was while the run completes.
            driver.execute_script("""
                Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
                document.dispatchEvent(new Event("visibilitychange"));
            """)
            time.sleep(2.5)  # a poll already under way when the tab hid may finish
            before = driver.execute_script("return window.fetches;")
            asyncio.run_coroutine_threadsafe(client.get_workflow_handle(steps_id).signal("proceed"), loop).result(10)
            asyncio.run_coroutine_threadsafe(client.get_workflow_handle(steps_id).result(), loop).result(10)
            time.sleep(4.5)  # two polls' worth
            assert driver.execute_script("return window.fetches;") == before
            assert driver.find_element(By.ID, "status").text == "Running"
            # Shown again: it polls at once and the badge turns Completed, without a reload.
            driver.execute_script("""
                Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
                document.dispatchEvent(new Event("visibilitychange"));
            """)
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Completed"))
            assert driver.execute_script("return window.fetches;") > before
            assert driver.execute_script("return window.sameDocument === true;")  # no reload
            # What only a running run offers (signal, cancel, terminate, stack trace) is gone.
            assert not driver.find_elements(By.NAME, "signal_name") and not driver.find_elements(By.ID, "stack-trace-button")
            wait.until(lambda d: "Workflow Execution Completed" in d.find_element(By.ID, "history").text)
            assert driver.find_element(By.ID, "result").text.strip().startswith("{")
            assert not driver.find_elements(By.CSS_SELECTOR, "[data-refresh]")  # polling stopped
            keep_screenshot(driver, tmp_path, "workflow-completed-live.png")

            driver.get(f"{base}{UI}/workflows/{charge_id}")
            wait.until(ec.presence_of_element_located((By.ID, "blocker-activity-1")))
            assert "PaymentDeclined" in driver.find_element(By.ID, "blocker-activity-1").text
            keep_screenshot(driver, tmp_path, "workflow-activity-retrying.png")
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[Steps, Charge], activities=[shout, charge_card]):
        await client.start_workflow("Steps", id=steps_id, task_queue=task_queue)
        await client.start_workflow("Charge", "card declined", id=charge_id, task_queue=task_queue)
        await asyncio.to_thread(browse)


async def test_stack_trace_button_dark_mode_and_the_api_page(dev_server, tmp_path, monkeypatch):  # noqa: F811
    from temporalio.client import Client

    monkeypatch.setenv("SE_OFFLINE", "true")
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    task_queue, waiting_id, broken_id, typo_id = f"tq-{uuid.uuid4().hex[:8]}", wid("waits"), wid("broken"), wid("typo")

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 20)
            background = "return getComputedStyle(document.body).backgroundColor;"
            driver.get(f"{base}{UI}/workflows/{waiting_id}")
            wait.until(ec.element_to_be_clickable((By.ID, "stack-trace-button"))).click()
            wait.until(lambda d: "Stack for" in d.find_element(By.ID, "stack-trace").text)
            stack = driver.find_element(By.ID, "stack-trace").text
            assert f"run (workflow: WaitForever, id: {waiting_id}" in stack and "_run_top_level_workflow_function" in stack
            assert driver.execute_script(background) == "rgb(247, 248, 250)"  # light
            keep_screenshot(driver, tmp_path, "workflow-stack-trace.png")

            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
            driver.refresh()
            wait.until(ec.presence_of_element_located((By.ID, "history")))
            assert driver.execute_script(background) == "rgb(18, 21, 28)"  # dark
            assert driver.execute_script("return getComputedStyle(document.querySelector('.summary dl')).backgroundColor;") == "rgb(26, 30, 39)"
            keep_screenshot(driver, tmp_path, "workflow-dark.png")

            driver.get(f"{base}{UI}/workflows/{broken_id}")
            wait.until(ec.presence_of_element_located((By.ID, "blocker-workflow-task")))
            assert "the order book is empty" in driver.find_element(By.ID, "blocker-workflow-task").text
            keep_screenshot(driver, tmp_path, "workflow-task-failing-dark.png")

            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
            driver.get(f"{base}{UI}/workflows/{typo_id}")
            wait.until(ec.presence_of_element_located((By.ID, "blocker-unknown-type")))
            assert "Workflow type Greeet is not registered" in driver.find_element(By.ID, "blocker-unknown-type").text
            keep_screenshot(driver, tmp_path, "workflow-unknown-type.png")

            driver.get(f"{base}{UI}/workflows")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#workflows time.started")))
            assert "ago" in driver.find_element(By.ID, "workflows").text or "just now" in driver.find_element(By.ID, "workflows").text
            keep_screenshot(driver, tmp_path, "workflows-list.png")

            driver.find_element(By.ID, "nav-api").click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.api-tag")))
            assert "Query a workflow" in driver.find_element(By.TAG_NAME, "main").text
            assert driver.execute_script(background) == "rgb(247, 248, 250)"
            keep_screenshot(driver, tmp_path, "api-docs.png")
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[WaitForever, Broken]):
        handle = await client.start_workflow("WaitForever", id=waiting_id, task_queue=task_queue)
        await client.start_workflow("Broken", "the order book is empty", id=broken_id, task_queue=task_queue)
        await client.start_workflow("Greeet", id=typo_id, task_queue=task_queue)
        for _ in range(50):  # the first workflow task completes: the workflow is at its wait
            if (await handle.describe()).history_length >= 4:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(browse)
