"""The web UI's worker deployments page: each deployment's versions with their state, share of new
runs and open pinned runs, and the make-current and ramp forms: through Flask's test client on a
server whose versioned temporalio workers registered two builds, and in a headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionRef
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerDeploymentConfig
from test_rest_ui import chrome, csrf_token, dev_server  # noqa: F401  (dev_server is a fixture)

UI = "/namespaces/default"


@workflow.defn(name="UiPinned", versioning_behavior=VersioningBehavior.PINNED)
class UiPinned:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


def _worker(client: Client, build: str) -> Worker:
    config = WorkerDeploymentConfig(version=WorkerDeploymentVersion("web-shop", build), use_worker_versioning=True)
    return Worker(client, task_queue="ui-deploy", workflows=[UiPinned], deployment_config=config)


async def _page(api) -> str:
    response = await api.get(f"{UI}/deployments")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


async def _shown(api, build: str) -> None:
    for _ in range(600):
        with contextlib.suppress(RPCError):
            if f'data-build="{build}"' in await _page(api):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{build} never shown")


async def _started_pinned(client: Client, workflow_id: str):
    """A UiPinned run whose first workflow task has completed (so it is pinned to its version)."""
    run = await client.start_workflow("UiPinned", id=workflow_id, task_queue="ui-deploy")
    for _ in range(600):
        if [e async for e in run.fetch_history_events() if e.HasField("workflow_task_completed_event_attributes")]:
            break
        await asyncio.sleep(0.05)
    return run


async def test_the_deployments_page_shows_versions_and_routes_new_runs(served_sqlite, sqlite_server):
    api = served_sqlite
    client = await Client.connect(f"127.0.0.1:{sqlite_server.endpoints.grpc_port}")
    assert "No worker deployments yet" in await _page(api)
    async with _worker(client, "b2"):
        await _shown(api, "b2")
    async with _worker(client, "b1"):
        await _shown(api, "b1")
        page = await _page(api)
        assert 'id="nav-deployments"' in page and "web-shop" in page and "__unversioned__" in page
        token = csrf_token(page)
        made = await api.post(f"{UI}/deployments/web-shop/current", data={"csrf_token": token, "build_id": "b1"})
        assert made.status_code == 303, made.get_data(as_text=True)
        await _started_pinned(client, "ui-pinned")
        page = (await api.get(made.headers["Location"])).get_data(as_text=True)
        assert "The version is now current." in page
        b1 = page.split('data-build="b1"')[1].split("</tr>")[0]
        assert "current" in b1 and '<td class="pinned">1</td>' in b1 and "100%" in b1

        # A ramp outside 0-100 is refused and changes nothing; 25 % is set.
        bad = await api.post(f"{UI}/deployments/web-shop/ramp", data={"csrf_token": token, "build_id": "b2", "percentage": "120"})
        assert bad.status_code == 400 and "Percentage must be between 0 and 100" in bad.get_data(as_text=True)
        forged = await api.post(f"{UI}/deployments/web-shop/ramp", data={"csrf_token": "x" * 40, "build_id": "b2", "percentage": "5"})
        assert forged.status_code == 403
        assert 'class="ramping-version"' not in await _page(api)
        ramped = await api.post(f"{UI}/deployments/web-shop/ramp", data={"csrf_token": token, "build_id": "b2", "percentage": "25"})
        assert ramped.status_code == 303
        page = await _page(api)
        b2 = page.split('data-build="b2"')[1].split("</tr>")[0]
        assert "ramping" in b2 and "25%" in b2 and '<td class="pinned">0</td>' in b2
        assert '<strong class="ramping-version">web-shop.b2</strong>' in page


async def test_ramp_and_make_current_in_a_browser(dev_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    base = f"http://127.0.0.1:{dev_server.endpoints.http_port}"
    client = await Client.connect(f"127.0.0.1:{dev_server.endpoints.grpc_port}")
    screenshots = (tmp_path / "deployments-ramping.png", tmp_path / "deployments-current.png")

    def browse() -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        def row(build: str) -> str:
            return driver.find_element(By.CSS_SELECTOR, f'tr[data-build="{build}"]').text

        driver = chrome(tmp_path / "chrome-profile")
        try:
            wait = WebDriverWait(driver, 15)
            driver.get(f"{base}/")
            wait.until(ec.element_to_be_clickable((By.ID, "nav-deployments"))).click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-build="b2"]')))
            assert row("b1").split()[:4] == ["b1", "current", "100%", "1"]  # one pinned run open
            assert row("b2").split()[:3] == ["b2", "inactive", "0"]
            ramp = driver.find_element(By.CSS_SELECTOR, 'tr[data-build="b2"] input.ramp-input')
            ramp.clear()
            ramp.send_keys("25")
            driver.find_element(By.CSS_SELECTOR, 'tr[data-build="b2"] button.set-ramp').click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
            assert driver.find_element(By.CSS_SELECTOR, "strong.ramping-version").text == "web-shop.b2"
            assert row("b2").split()[:3] == ["b2", "ramping", "25%"] and row("b1").split()[:3] == ["b1", "current", "75%"]
            driver.save_screenshot(str(screenshots[0]))
            driver.find_element(By.CSS_SELECTOR, 'tr[data-build="b2"] button.make-current').click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "p.notice"), "The version is now current."))
            assert driver.find_element(By.CSS_SELECTOR, "strong.current-version").text == "web-shop.b2"
            assert row("b2").split()[:3] == ["b2", "current", "100%"]
            assert row("b1").split()[:2] == ["b1", "draining"]  # its pinned run is still open
            driver.save_screenshot(str(screenshots[1]))
        finally:
            driver.quit()

    async with _worker(client, "b2"):
        await _registered(client, "b2")
    async with _worker(client, "b1"):
        await _registered(client, "b1")
        await client.workflow_service.set_worker_deployment_current_version(
            ws.SetWorkerDeploymentCurrentVersionRequest(namespace="default", deployment_name="web-shop", build_id="b1")
        )
        run = await _started_pinned(client, "ui-pinned-browser")
        await asyncio.to_thread(browse)
        await run.terminate()
    assert all(s.stat().st_size > 0 for s in screenshots)
    print(f"screenshots: {screenshots}")


async def _registered(client: Client, build: str) -> None:
    request = ws.DescribeWorkerDeploymentVersionRequest(
        namespace="default", deployment_version=VersionRef(deployment_name="web-shop", build_id=build)
    )
    for _ in range(600):
        with contextlib.suppress(RPCError):
            await client.workflow_service.describe_worker_deployment_version(request)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{build} never registered")
