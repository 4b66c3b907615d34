"""The web UI's worker deployments page: each deployment's versions with their state, share of new
runs and open pinned runs, and the make-current and ramp forms (Flask's test client on a server
whose versioned temporalio workers registered two builds)."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkerDeploymentConfig
from test_rest_ui import csrf_token

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
        run = await client.start_workflow("UiPinned", id="ui-pinned", task_queue="ui-deploy")
        for _ in range(600):
            if [e async for e in run.fetch_history_events() if e.HasField("workflow_task_completed_event_attributes")]:
                break
            await asyncio.sleep(0.05)
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
