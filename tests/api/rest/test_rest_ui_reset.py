"""The web UI's Reset form: through Flask's test client (CSRF, roles) and in a real headless
Chromium driving ``odin dev``'s HTTP door while a temporalio worker runs the workflow."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid

import jwt
from rest_support import CONFIG, LONG_POLL, start_body, wid
from rest_workflows import Counter
from temporalio.client import Client
from temporalio.worker import Worker
from test_rest_ui import chrome, dev_server  # noqa: F401  (dev_server is a fixture)

from odin.api.rest import create_app
from odin.config import Settings
from odin.security import auth

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def finished_counter(api, sdk: Client, task_queue: str) -> tuple[str, str]:
    """A Counter run bumped by 3 and finished: its result is 3."""
    workflow_id = wid("ui-reset")
    run_id = (await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("Counter", task_queue))).get_json()["runId"]
    handle = sdk.get_workflow_handle(workflow_id)
    for _ in range(100):
        if (await handle.describe()).history_length >= 4:  # the first workflow task completed
            break
        await asyncio.sleep(0.05)
    await handle.signal("bump", 3)
    await handle.signal("finish")
    assert await handle.result() == 3
    return workflow_id, run_id


async def test_the_reset_form_needs_its_csrf_token_and_opens_the_new_run(served_sqlite, sdk, task_queue):
    api = served_sqlite
    async with Worker(sdk, task_queue=task_queue, workflows=[Counter]):
        workflow_id, old_run = await finished_counter(api, sdk, task_queue)
        page = (await api.get(f"{UI}/workflows/{workflow_id}")).get_data(as_text=True)
        assert 'id="reset"' in page and "(first workflow task)" in page and "(last workflow task)" in page
        points = [int(p) for p in re.findall(r'<option value="(\d+)"', page)]
        request_id = re.search(r'name="request_id" value="([^"]+)"', page).group(1)
        form = {"event_id": str(points[0]), "reason": "from the form", "run_id": old_run, "request_id": request_id}

        forged = await api.post(f"{UI}/workflows/{workflow_id}/reset", data={**form, "csrf_token": "guess" * 10})
        assert forged.status_code == 403
        assert (await sdk.get_workflow_handle(workflow_id).describe()).run_id == old_run  # nothing changed

        done = await api.post(f"{UI}/workflows/{workflow_id}/reset", data={**form, "csrf_token": csrf_token(page)})
        assert done.status_code == 303
        new_run = re.search(r"runId=([0-9a-f-]+)", done.headers["Location"]).group(1)
        assert new_run != old_run and done.headers["Location"].endswith("done=reset")
        again = await api.post(f"{UI}/workflows/{workflow_id}/reset", data={**form, "csrf_token": csrf_token(page)})
        assert again.headers["Location"] == done.headers["Location"]  # the same form resets once
        assert await sdk.get_workflow_handle(workflow_id).result() == 3  # both signals reapplied
        shown = (await api.get(done.headers["Location"])).get_data(as_text=True)
        assert "Workflow reset: this is the new run." in shown and new_run in shown and "from the form" in shown


def test_readers_may_not_reset(migrated_url):
    secret = "ui-reset-hs256-test-secret-that-is-long-enough"
    app = create_app(
        Settings(database_url=migrated_url, num_shards=4, auth=auth.AuthConfig(enabled=True, hs256_secret=secret)), config=CONFIG
    )
    try:
        http = app.test_client()

        def bearer(*permissions: str) -> dict[str, str]:
            claims = {"sub": "ann", "permissions": list(permissions), "exp": int(time.time() + 600)}
            return {"Authorization": f"Bearer {jwt.encode(claims, secret, 'HS256')}"}

        workflow_id = wid("ro")
        assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"), headers=bearer("default:writer")).status_code == 201
        body = {"workflowTaskFinishEventId": 3, "reason": "no"}
        refused = http.post(f"{NS}/workflows/{workflow_id}/reset", json=body, headers=bearer("default:reader"))
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "PERMISSION_DENIED"
        # A writer passes the gate (and meets the check of the reset point: this run has no task to reset to).
        allowed = http.post(f"{NS}/workflows/{workflow_id}/reset", json=body, headers=bearer("default:writer"))
        assert allowed.status_code == 400 and allowed.get_json()["error"]["code"] == "INVALID_ARGUMENT"
    finally:
        app.extensions["odin"].close()


async def test_reset_in_a_browser(dev_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    class Direct:  # finished_counter's view of the REST API, over real HTTP
        async def post(self, path: str, json: dict):
            body = await asyncio.to_thread(post, path, json)
            return type("R", (), {"get_json": lambda self: body})()

    def browse(workflow_id: str, old_run: str) -> str:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import Select, WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 15)
            driver.get(f"{base}{UI}/workflows/{workflow_id}")
            point = Select(wait.until(ec.presence_of_element_located((By.ID, "reset-point"))))
            first = next(o for o in point.options if "(first " in o.text)
            point.select_by_value(first.get_attribute("value"))
            driver.find_element(By.ID, "reset-reason").send_keys("clicked in a browser")
            driver.find_element(By.ID, "reset").click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            assert "Workflow reset: this is the new run." in driver.find_element(By.CSS_SELECTOR, "p.notice").text
            shown_run = driver.find_element(By.CSS_SELECTOR, "section.summary dd.mono").text
            assert shown_run != old_run
            assert "Workflow Task Failed" in driver.find_element(By.ID, "history").text
            return shown_run
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        workflow_id, old_run = await finished_counter(Direct(), client, task_queue)
        new_run = await asyncio.to_thread(browse, workflow_id, old_run)
        handle = client.get_workflow_handle(workflow_id)
        assert (await handle.describe()).run_id == new_run
        assert await asyncio.wait_for(handle.result(), LONG_POLL) == 3
