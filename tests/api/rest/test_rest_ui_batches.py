"""The web UI's batch operations: on the workflows list, check runs (or take all the filter
matches) and terminate or cancel them as a batch; the batch's page shows its progress. Through
Flask's test client for the forms' checks, and a real headless Chromium on ``odin dev``'s shape."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid

from rest_support import start_body, wid
from test_rest_ui import NS, UI, chrome, csrf_token, dev_server  # noqa: F401  (dev_server is a fixture)


def test_the_batch_form_checks_its_input(http):
    kind = f"Form{uuid.uuid4().hex[:6]}"
    workflow_id = wid("form")
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body(kind, "q")).status_code == 201
    page = http.get(f"{UI}/workflows", query_string={"query": f"WorkflowType = '{kind}'"}).get_data(as_text=True)
    assert 'id="batch-form"' in page and 'name="run" form="batch-form"' in page and 'id="check-all"' in page
    token = csrf_token(page)

    forged = http.post(f"{UI}/batch-operations", data={"csrf_token": "guess" * 10, "action": "terminate", "scope": "query", "query": "x"})
    assert forged.status_code == 403
    nothing = http.post(f"{UI}/batch-operations", data={"csrf_token": token, "action": "terminate", "scope": "selected"})
    assert nothing.status_code == 400 and "No workflows are selected." in nothing.get_data(as_text=True)
    everything = http.post(f"{UI}/batch-operations", data={"csrf_token": token, "action": "cancel", "scope": "query", "query": ""})
    assert everything.status_code == 400 and "Filter first" in everything.get_data(as_text=True)
    bad_query = http.post(f"{UI}/batch-operations", data={"csrf_token": token, "action": "cancel", "scope": "query", "query": "Nope = 1"})
    assert bad_query.status_code == 400 and "invalid visibility query" in bad_query.get_data(as_text=True)
    # Nothing was started by the refused forms.
    assert http.get(f"{NS}/batch-operations").get_json().get("operationInfo", []) == []

    started = http.post(
        f"{UI}/batch-operations",
        data={"csrf_token": token, "action": "terminate", "scope": "selected", "run": [f":{workflow_id}"], "reason": "tidy"},
    )
    assert started.status_code == 303, started.get_data(as_text=True)
    page = http.get(started.headers["Location"]).get_data(as_text=True)
    assert "Batch started" in page and "tidy" in page and workflow_id in page and "terminate workflow" in page
    assert 'id="batch-progress"' in page
    listing = http.get(f"{UI}/batch-operations").get_data(as_text=True)
    job_id = started.headers["Location"].split("/batch-operations/")[1].split("?")[0]
    assert job_id in listing


async def test_batch_terminate_and_cancel_in_a_browser(dev_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    kind = f"Browse{uuid.uuid4().hex[:6]}"
    ids = [f"{kind}-{i}" for i in range(4)]
    shots = tmp_path / "batch-list.png", tmp_path / "batch-page.png"

    def http_json(path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{base}{path}", data=data, method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        for workflow_id in ids:
            http_json(f"{NS}/workflows/{workflow_id}", {"workflowType": {"name": kind}, "taskQueue": {"name": "nobody"}})
        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 20)
            query = urllib.parse.urlencode({"query": f"WorkflowType = '{kind}'"})
            driver.get(f"{base}{UI}/workflows?{query}")
            wait.until(ec.presence_of_element_located((By.ID, "batch-form")))
            for workflow_id in ids[:2]:
                driver.find_element(By.CSS_SELECTOR, f'input[aria-label="Check {workflow_id}"]').click()
            driver.find_element(By.NAME, "reason").send_keys("two of them")
            driver.save_screenshot(str(shots[0]))
            driver.find_element(By.ID, "batch-terminate").click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            # The page refreshes itself while the batch runs.
            wait.until(lambda d: "completed" in d.find_element(By.ID, "batch-state").text)
            assert "2 of 2 done: 2 succeeded, 0 failed" in driver.find_element(By.ID, "batch-counts").text
            assert driver.find_element(By.ID, "batch-progress").get_attribute("value") == "100"
            driver.save_screenshot(str(shots[1]))

            # Then every run the filter matches, the whole page checked by one box for good measure.
            driver.get(f"{base}{UI}/workflows?{query}&status=Running")
            wait.until(ec.presence_of_element_located((By.ID, "check-all"))).click()
            assert all(b.is_selected() for b in driver.find_elements(By.CSS_SELECTOR, 'input[name="run"]'))
            driver.find_element(By.ID, "scope-query").click()
            driver.find_element(By.ID, "batch-cancel").click()
            wait.until(ec.alert_is_present()).accept()
            wait.until(lambda d: "completed" in d.find_element(By.ID, "batch-state").text)
            assert "2 of 2 done" in driver.find_element(By.ID, "batch-counts").text
            driver.find_element(By.LINK_TEXT, "All batch operations").click()
            assert len(wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#batches tbody tr"))) == 2
        finally:
            driver.quit()

    await asyncio.to_thread(browse)

    def status(workflow_id: str) -> str:
        return http_json(f"{NS}/workflows/{workflow_id}")["workflowExecutionInfo"]["status"]

    statuses = await asyncio.to_thread(lambda: [status(i) for i in ids])
    assert statuses[:2] == ["WORKFLOW_EXECUTION_STATUS_TERMINATED"] * 2
    assert statuses[2:] == ["WORKFLOW_EXECUTION_STATUS_RUNNING"] * 2  # cancellation requested; nobody runs them
    history = await asyncio.to_thread(http_json, f"{NS}/workflows/{ids[3]}/history")
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED" in [e["eventType"] for e in history["history"]["events"]]
    print(f"screenshots: {shots[0]} {shots[1]}")
