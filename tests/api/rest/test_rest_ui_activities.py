"""The web UI's activity buttons (pause, unpause on the workflow page's pending activities) and its
Workers page: through Flask's test client, and in a headless Chromium."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

from rest_support import start_body, wid
from rest_workflows import WaitsForAnActivity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker
from test_rest_ui import chrome, csrf_token, dev_server  # noqa: F401  (dev_server is a fixture)

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"


async def _page_with_activity(api, workflow_id: str) -> str:
    for _ in range(100):
        page = (await api.get(f"{UI}/workflows/{workflow_id}")).get_data(as_text=True)
        if 'data-activity-id="a1"' in page:
            return page
        await asyncio.sleep(0.05)
    raise AssertionError("the activity never showed")


async def test_pause_and_unpause_buttons(served_sqlite, sdk, task_queue):
    api = served_sqlite
    workflow_id, queue = wid("paused"), f"nobody-{uuid.uuid4().hex[:6]}"
    async with Worker(sdk, task_queue=task_queue, workflows=[WaitsForAnActivity]):
        await api.post(f"{NS}/workflows/{workflow_id}", json=start_body("WaitsForAnActivity", task_queue, queue))
        page = await _page_with_activity(api, workflow_id)
        assert 'class="pause-activity warn"' in page and "unpause-activity" not in page
        pause_url = f"{UI}/workflows/{workflow_id}/activities/a1/pause"
        done = await api.post(pause_url, data={"csrf_token": csrf_token(page), "reason": "db <maintenance>"})
        assert done.status_code == 303 and done.headers["Location"].endswith("done=pause-activity")
        page = (await api.get(done.headers["Location"])).get_data(as_text=True)
        assert "Activity paused: no new attempt starts until it is unpaused." in page
        state = re.search(r'class="activity-state">(.*?)</td>', page, re.S).group(1)
        assert state.split()[0] == "paused" and "by odin-ui" in state and "db &lt;maintenance&gt;" in state
        assert 'class="unpause-activity"' in page
        p = (await sdk.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities[0]
        assert p.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        done = await api.post(f"{UI}/workflows/{workflow_id}/activities/a1/unpause", data={"csrf_token": csrf_token(page)})
        page = (await api.get(done.headers["Location"])).get_data(as_text=True)
        assert "Activity unpaused." in page and 'class="pause-activity warn"' in page
        # Without the form's token nothing happens.
        refused = await api.post(pause_url, data={})
        assert refused.status_code == 403
        p = (await sdk.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities[0]
        assert not p.paused
        await sdk.get_workflow_handle(workflow_id).terminate()


async def test_the_workers_page_and_pause_in_a_browser(dev_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    runtime = Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}", runtime=runtime)
    task_queue, workflow_id, queue = f"tq-{uuid.uuid4().hex[:8]}", wid("browser"), f"nobody-{uuid.uuid4().hex[:6]}"
    screenshots = (tmp_path / "workers-page.png", tmp_path / "paused-activity.png")

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 15)
            driver.get(f"{base}/")
            wait.until(ec.element_to_be_clickable((By.ID, "nav-workers"))).click()
            for _ in range(50):  # the worker's first heartbeat comes within a second
                # Read in the page's script, in one step (an element of the page a refresh replaced is stale).
                rows = wait.until(lambda d: d.execute_script(
                    "const table = document.getElementById('workers'); return table ? [table.innerText] : null"
                ))[0]
                if task_queue in rows:
                    break
                driver.refresh()
                driver.implicitly_wait(0.2)
            assert task_queue in rows and "running" in rows and "temporal-python" in rows
            driver.save_screenshot(str(screenshots[0]))
            driver.get(f"{base}/namespaces/default/workflows/{workflow_id}")
            wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.pause-activity"))).click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            assert driver.find_element(By.CSS_SELECTOR, "td.activity-state").text.startswith("paused")
            driver.save_screenshot(str(screenshots[1]))
            driver.find_element(By.CSS_SELECTOR, "button.unpause-activity").click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "p.notice"), "Activity unpaused."))
            assert driver.find_element(By.CSS_SELECTOR, "td.activity-state").text.startswith("scheduled")
        finally:
            driver.quit()

    async with Worker(client, task_queue=task_queue, workflows=[WaitsForAnActivity]):
        handle = await client.start_workflow(WaitsForAnActivity.run, queue, id=workflow_id, task_queue=task_queue)
        for _ in range(100):
            if (await handle.describe()).raw_description.pending_activities:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(browse)
        await handle.terminate()
    assert all(s.stat().st_size > 0 for s in screenshots)
    print(f"screenshots: {screenshots}")
