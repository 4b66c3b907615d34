"""The web UI: pages through Flask's test client, and a real headless Chromium driving ``odin
dev``'s HTTP door (in-process) while a temporalio worker runs the workflow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import urllib.request
import uuid

import pytest
from rest_support import start_body, wid
from rest_workflows import Counter, Echo, Greet, WaitForever
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import migrated_sqlite_url, skip_or_fail

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_workflows_list_filters_by_status_and_pages(http):
    ids = [wid("ui") for _ in range(3)]
    for workflow_id in ids:
        http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Shown", "q"))
    http.post(f"{NS}/workflows/{ids[0]}/terminate", json={"reason": "test"})

    page = http.get(f"{UI}/workflows").get_data(as_text=True)
    assert all(workflow_id in page for workflow_id in ids) and "3 workflows" in page
    running = http.get(f"{UI}/workflows?status=Running").get_data(as_text=True)
    assert ids[0] not in running and ids[1] in running and "2 workflows" in running
    terminated = http.get(f"{UI}/workflows", query_string={"status": "Terminated", "query": "WorkflowType = 'Shown'"})
    assert terminated.status_code == 200 and ids[0] in terminated.get_data(as_text=True)

    first = http.get(f"{UI}/workflows?pageSize=2").get_data(as_text=True)
    next_link = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = http.get(next_link).get_data(as_text=True)
    assert sum(workflow_id in first for workflow_id in ids) == 2 and sum(workflow_id in second for workflow_id in ids) == 1
    assert "First page" in second


def test_a_bad_query_is_shown_by_the_query_box(http):
    response = http.get(f"{UI}/workflows", query_string={"query": "WorkflowType ="})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'class="error"' in page and "Invalid query" in page and 'value="WorkflowType ="' in page


def test_error_pages_are_html(http):
    response = http.get(f"{UI}/workflows/never-started")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "NOT_FOUND" in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)


def test_forms_need_the_csrf_token(http):
    workflow_id = wid("csrf")
    http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Held", "q"))
    page = http.get(f"{UI}/workflows/{workflow_id}").get_data(as_text=True)
    token = csrf_token(page)

    forged = http.post(f"{UI}/workflows/{workflow_id}/terminate", data={"csrf_token": "guess" * 10})
    assert forged.status_code == 403 and forged.mimetype == "text/html"
    http.delete_cookie("odin_csrf")
    no_cookie = http.post(f"{UI}/workflows/{workflow_id}/terminate", data={"csrf_token": token})
    assert no_cookie.status_code == 403
    assert http.get(f"{NS}/workflows/{workflow_id}").get_json()["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"

    page = http.get(f"{UI}/workflows/{workflow_id}").get_data(as_text=True)  # a new cookie and token
    form = {"csrf_token": csrf_token(page), "signal_name": "poke"}
    signaled = http.post(f"{UI}/workflows/{workflow_id}/signal", data={**form, "args": '[1, "two"]'})
    assert signaled.status_code == 303 and signaled.headers["Location"].endswith("done=signal")
    bad_args = http.post(f"{UI}/workflows/{workflow_id}/signal", data={**form, "args": "{"})
    assert bad_args.status_code == 400
    done = http.post(f"{UI}/workflows/{workflow_id}/terminate", data={"csrf_token": csrf_token(page), "reason": "from a test"})
    assert done.status_code == 303
    page = http.get(done.headers["Location"]).get_data(as_text=True)
    assert "Workflow terminated." in page and "Terminated" in page and "from a test" in page
    assert "Workflow Execution Signaled" in page and "[1, &#34;two&#34;]" in page


def test_namespace_and_task_queue_pages(http):
    http.post("/api/v1/namespaces", json={"namespace": "shop", "description": "The shop", "ownerEmail": "ops@example.com"})
    listed = http.get("/namespaces").get_data(as_text=True)
    assert "shop" in listed and "The shop" in listed
    page = http.get("/namespaces/shop").get_data(as_text=True)
    assert "ops@example.com" in page and 'id="retention" title="259200s">3 days<' in page

    http.post(f"{NS}/workflows/{wid()}", json=start_body("Queued", "orders"))
    queue = http.get(f"{UI}/task-queues/orders").get_data(as_text=True)
    assert re.search(r'id="workflow-tasks".*?class="backlog">1<', queue, re.S)
    assert http.get(f"{UI}/task-queues?name=orders").headers["Location"] == f"{UI}/task-queues/orders"
    assert http.get("/").headers["Location"] == f"{UI}/workflows"


async def test_workflow_page_shows_input_pending_activity_and_timer(served_sqlite, sdk, task_queue):
    api = served_sqlite
    greet, counter = wid("greet"), wid("counter")
    async with Worker(sdk, task_queue=task_queue, workflows=[Greet, Counter]):  # no activity worker: it stays pending
        await api.post(f"{NS}/workflows/{greet}", json=start_body("Greet", task_queue, "Odin", {"vip": True}))
        await api.post(f"{NS}/workflows/{counter}", json=start_body("Counter", task_queue))
        for _ in range(50):
            greet_page = (await api.get(f"{UI}/workflows/{greet}")).get_data(as_text=True)
            counter_page = (await api.get(f"{UI}/workflows/{counter}")).get_data(as_text=True)
            if "pending-activities" in greet_page and "pending-timers" in counter_page:
                break
            await asyncio.sleep(0.1)
    assert 'id="pending-activities"' in greet_page and "shout" in greet_page
    assert "Activity Task Scheduled" in greet_page and "Workflow Execution Started" in greet_page
    assert "&#34;vip&#34;: true" in greet_page  # the input, as JSON
    assert 'id="pending-timers"' in counter_page and "<td>1 hour</td>" in counter_page


# -- a real browser -------------------------------------------------------------------------

CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400",
]


def chrome(profile):
    """A headless Chromium with a fresh profile, or a skip (a failure in CI) without one."""
    chromium, chromedriver = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(chromedriver)):
        skip_or_fail("chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install -e '.[dev]')")

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture
async def dev_server(tmp_path):
    """``odin dev``'s shape: one runtime, gRPC and HTTP doors, on the test's loop."""
    settings = Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0, http_port=0, num_shards=4)
    server = OdinServer(settings, serve_http=True)
    await server.start()
    yield server
    await server.stop(grace=0.5)


async def test_the_ui_in_a_browser_lists_shows_and_cancels_a_workflow(dev_server, tmp_path, monkeypatch):
    from temporalio.client import Client

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    task_queue, workflow_id = f"tq-{uuid.uuid4().hex[:8]}", wid("browser")
    screenshot = tmp_path / "workflow-page.png"

    def start() -> None:
        body = {"workflowType": {"name": "WaitForever"}, "taskQueue": {"name": task_queue}}
        request = urllib.request.Request(f"{base}{NS}/workflows/{workflow_id}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 15)
            driver.get(f"{base}/")
            link = wait.until(ec.presence_of_element_located((By.LINK_TEXT, workflow_id)))
            assert "Running" in driver.find_element(By.ID, "workflows").text
            link.click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history li.event")) >= 3)
            titles = driver.find_element(By.ID, "history").text
            assert "Workflow Execution Started" in titles and "Workflow Task Completed" in titles
            driver.find_element(By.ID, "cancel").click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            assert "Cancellation requested." in driver.find_element(By.CSS_SELECTOR, "p.notice").text
            driver.save_screenshot(str(screenshot))
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[WaitForever]):
        await asyncio.to_thread(start)
        handle = client.get_workflow_handle(workflow_id)
        for _ in range(50):  # the first workflow task completes, so the page has three events
            if (await handle.describe()).history_length >= 4:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(browse)
        for _ in range(50):
            status = (await handle.describe()).status
            if status == WorkflowExecutionStatus.CANCELED:
                break
            await asyncio.sleep(0.1)
    assert status == WorkflowExecutionStatus.CANCELED
    assert screenshot.stat().st_size > 0
    print(f"screenshot: {screenshot}")


async def test_the_schedule_pages_in_a_browser(dev_server, tmp_path, monkeypatch):
    """Created through the SDK; listed, opened, paused with a note, triggered (its run shows in the
    recent actions, completed by the worker), backfilled and deleted in Chromium."""
    from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleCalendarSpec, ScheduleRange, ScheduleSpec

    monkeypatch.setenv("SE_OFFLINE", "true")
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    task_queue, schedule_id = f"tq-{uuid.uuid4().hex[:8]}", wid("nightly")
    screenshot = tmp_path / "schedule-page.png"
    spec = ScheduleSpec(
        calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(9)], day_of_week=[ScheduleRange(1, 5)])], time_zone_name="Europe/Paris"
    )
    action = ScheduleActionStartWorkflow("Echo", args=["nightly", {"n": 1}], id="nightly-run", task_queue=task_queue)
    handle = await client.create_schedule(schedule_id, Schedule(action=action, spec=spec))

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import Select, WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 15)
            driver.get(f"{base}/")
            wait.until(ec.element_to_be_clickable((By.ID, "nav-schedules"))).click()
            link = wait.until(ec.presence_of_element_located((By.LINK_TEXT, schedule_id)))
            row = driver.find_element(By.ID, "schedules").text
            assert "Echo" in row and "at 09:00 on Mon\u2013Fri (Europe/Paris)" in row and "Active" in row
            driver.save_screenshot(str(tmp_path / "schedules-page.png"))
            link.click()
            wait.until(ec.presence_of_element_located((By.ID, "spec")))
            assert driver.find_element(By.ID, "spec").text.startswith("at 09:00 on Mon\u2013Fri (Europe/Paris)")
            assert len(driver.find_elements(By.CSS_SELECTOR, "#upcoming li")) == 10

            driver.find_element(By.ID, "pause-note").send_keys("holiday week <no runs>")
            driver.find_element(By.ID, "pause").click()
            wait.until(ec.presence_of_element_located((By.ID, "notes")))
            assert driver.find_element(By.ID, "notes").text == "holiday week <no runs>"
            assert driver.find_element(By.ID, "state").text == "Paused"
            assert "Schedule paused." in driver.find_element(By.CSS_SELECTOR, "p.notice").text

            driver.find_element(By.ID, "trigger").click()

            def recent_actions() -> str:
                # Read in the page's own script, in one step: an element found before the page (or
                # its refresh of the list) replaced it would be stale by the time its text is read.
                found = wait.until(lambda d: d.execute_script(
                    "const list = document.getElementById('recent-actions'); return list ? [list.innerText] : null"
                ))
                return found[0]

            for _ in range(50):  # the worker completes the run; reload until the page says so
                actions = recent_actions()
                if "Completed" in actions:
                    break
                time.sleep(0.2)
                driver.refresh()
            assert "nightly-run-" in actions and "Completed" in actions
            driver.save_screenshot(str(screenshot))
            driver.find_element(By.CSS_SELECTOR, "#recent-actions a").click()
            wait.until(ec.presence_of_element_located((By.ID, "result")))
            assert '"nightly"' in driver.find_element(By.ID, "result").text

            # Backfill Monday 30 November and Tuesday 1 December 2026 (09:00 Paris is 08:00 UTC).
            driver.back()
            form = wait.until(ec.presence_of_element_located((By.ID, "backfill"))).find_element(By.XPATH, "./ancestor::form")
            driver.execute_script(
                "arguments[0].start_time.value = '2026-11-30T00:00:00'; arguments[0].end_time.value = '2026-12-01T23:59:00';", form
            )
            Select(form.find_element(By.NAME, "overlap_policy")).select_by_value("SCHEDULE_OVERLAP_POLICY_ALLOW_ALL")
            driver.find_element(By.ID, "backfill").click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "p.notice"), "Backfill requested"))
            actions = driver.find_element(By.ID, "recent-actions").text
            assert "nightly-run-2026-11-30T08:00:00Z" in actions and "nightly-run-2026-12-01T08:00:00Z" in actions

            wait.until(ec.element_to_be_clickable((By.ID, "delete"))).click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            assert "Schedule deleted." in driver.find_element(By.CSS_SELECTOR, "p.notice").text
            assert schedule_id not in driver.find_element(By.ID, "schedules").text
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[Echo]):
        await asyncio.to_thread(browse)
    assert [s.id async for s in await client.list_schedules()] == []
    with pytest.raises(Exception, match="not found"):
        await handle.describe()
    assert screenshot.stat().st_size > 0
    print(f"screenshot: {screenshot}")


def test_the_namespaces_page_names_no_namespace_and_links_nowhere_broken(http):
    page = http.get("/namespaces").get_data(as_text=True)
    assert "jinja2" not in page and 'class="current-ns"' not in page
    nav = re.search(r"<nav>(.*?)</nav>", page, re.S).group(1)
    links = re.findall(r'href="([^"]+)"', nav)
    assert links and all(http.get(link).status_code == 200 for link in links), links


def test_the_query_box_takes_a_plain_workflow_id(http):
    shown, other = wid("reminder-ann"), wid("reminder-bob")
    for workflow_id in (shown, other):
        http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Shown", "q"))
    response = http.get(f"{UI}/workflows", query_string={"query": shown})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert shown in page and other not in page and "1 workflow" in page
    assert f'value="{shown}"' in page  # the box keeps what was typed
    # With a status filter too, and something that is neither a query nor an id still says why.
    assert shown in http.get(f"{UI}/workflows", query_string={"query": shown, "status": "Running"}).get_data(as_text=True)
    bad = http.get(f"{UI}/workflows", query_string={"query": "reminder ann"})
    assert bad.status_code == 400 and "Invalid query" in bad.get_data(as_text=True)


def test_search_box_query_keeps_queries_and_wraps_ids():
    from odin.api.rest.ui import search_box_query

    assert search_box_query("WorkflowType = 'Greeting'") == "WorkflowType = 'Greeting'"
    assert search_box_query("reminder-ann") == "WorkflowId = 'reminder-ann'"
    assert search_box_query("order/42:retry") == "WorkflowId = 'order/42:retry'"
    assert search_box_query("WorkflowType =") == "WorkflowType ="
    assert search_box_query("") == ""
