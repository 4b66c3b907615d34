"""Safe deploys with worker deployments through the Odin SDK: a release's workers poll as their
build beside the old ones and make their build current; a run started on the old build finishes
there even though the new code would not replay it (no VersionGate), new runs take the new code,
and the old build drains. Also the ``odin worker`` flags that name the build. On SQLite, and on
PostgreSQL with Redis queues and a real Celery worker and beat as the system workers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import click
import payments_broken
import payments_v1
import pytest
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import EventType, VersionDrainageStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.service import RPCError

from odin.cli import _versioning
from odin.config import Settings
from odin.sdk import ReplayMismatch
from odin.server import OdinServer
from tests.distributed.cluster import deployed_shape
from tests.odin_sdk.test_versions_and_determinism import _wait_for_event
from tests.support.odin_apps import point
from tests.support.services import migrated_sqlite_url


@pytest.fixture(params=["sqlite", "postgres+redis"])
async def odin(request, tmp_path):
    """The server the apps point at (this module's own ``odin``): SQLite, or PostgreSQL and Redis
    with the system workers as deployed."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            settings = Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0)
        else:
            shape = deployed_shape(tmp_path, request.getfixturevalue("redis_prefix"))
            settings = Settings(**await asyncio.to_thread(stack.enter_context, shape), grpc_port=0)
        server = OdinServer(settings)
        await server.start()
        try:
            yield server
        finally:
            await server.stop(grace=0.5)


async def _current(app, deployment: str) -> str:
    client = await app.client_async()
    described = await client.workflow_service.describe_worker_deployment(
        ws.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
    )
    return described.worker_deployment_info.routing_config.current_version


async def _until_current(app, deployment: str, build: str) -> None:
    for _ in range(600):
        with contextlib.suppress(RPCError):
            if await _current(app, deployment) == f"{deployment}.{build}":
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{build} never became current")


# Versioned workers count as the queue's pollers: starting a run warns of no worker only when none polls.
@pytest.mark.filterwarnings("error::odin.sdk.NoWorkerWarning")
async def test_a_release_beside_the_old_one_keeps_runs_on_the_build_that_started_them(odin):
    queue = point(payments_v1.app, odin)
    point(payments_broken.app, odin)
    payments_broken.app.task_queue = queue
    deployment = f"pay-{uuid.uuid4().hex[:6]}"
    async with payments_v1.app.worker(build_id="r1", deployment=deployment, promote=100):
        await _until_current(payments_v1.app, deployment, "r1")
        old = await payments_v1.payment.start_async(f"old-{uuid.uuid4().hex[:6]}")
        await _wait_for_event(old, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        # The new code cannot replay the old run: an unversioned worker's replay check refuses it...
        with pytest.raises(ReplayMismatch, match=old.id):
            await payments_broken.app.worker().check_replay(10)
        # ...but the run is pinned to r1, so r2's workers never get it and their check passes it by.
        # The release: its workers start beside the old ones and make their build current.
        async with payments_broken.app.worker(
            build_id="r2", deployment=deployment, promote=100, max_cached_workflows=0, replay_check=10
        ):
            await _until_current(payments_v1.app, deployment, "r2")
            await old.signal_async("approve")
            assert (await old.result_async(timeout=30)).startswith("v1:old-")
            new = await payments_broken.payment.start_async(f"new-{uuid.uuid4().hex[:6]}")
            await new.signal_async("approve")
            await new.result_async(timeout=30)
    # The old run never met the new code (no task failed); the new run ran the new first step.
    old_types = [e.event_type for e in (await old.history_async()).events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in old_types
    new_events = (await new.history_async()).events
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in new_events if e.HasField("activity_task_scheduled_event_attributes")]
    assert scheduled[0].endswith("audit"), scheduled
    # r1 no longer receives new runs and its one pinned run has closed: it drains, then is drained.
    client = await payments_v1.app.client_async()
    request = ws.DescribeWorkerDeploymentVersionRequest(
        namespace=client.namespace, deployment_version=WorkerDeploymentVersion(deployment_name=deployment, build_id="r1")
    )
    seen = []
    for _ in range(300):
        version = await client.workflow_service.describe_worker_deployment_version(request)
        seen.append(version.worker_deployment_version_info.drainage_info.status)
        if seen[-1] == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED:
            break
        await asyncio.sleep(0.1)
    assert seen[-1] == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED, seen


def test_worker_flags_name_the_build(monkeypatch):
    for variable in ("ODIN_BUILD_ID", "SOURCE_VERSION", "HEROKU_BUILD_COMMIT", "HEROKU_SLUG_COMMIT", "ODIN_DEPLOYMENT"):
        monkeypatch.delenv(variable, raising=False)
    assert _versioning("shop", None, None, "pinned", False, None) == {}  # unversioned unless asked
    assert _versioning("shop", "abc", None, "pinned", True, None) == {
        "build_id": "abc", "deployment": "shop", "default_versioning": "pinned", "promote": 100.0,
    }
    monkeypatch.setenv("SOURCE_VERSION", "f00d")  # Heroku's
    assert _versioning("shop", None, "web", "auto-upgrade", False, 30.0) == {
        "build_id": "f00d", "deployment": "web", "default_versioning": "auto-upgrade", "promote": 30.0,
    }
    monkeypatch.setenv("ODIN_BUILD_ID", "b7")
    assert _versioning("shop", None, "web", "pinned", False, None)["build_id"] == "b7"
    monkeypatch.delenv("SOURCE_VERSION")
    monkeypatch.delenv("ODIN_BUILD_ID")
    with pytest.raises(click.UsageError, match="needs a build id"):
        _versioning("shop", None, "web", "pinned", False, None)
    with pytest.raises(click.UsageError, match="need --build-id or --deployment"):
        _versioning("shop", None, None, "pinned", True, None)
    with pytest.raises(click.UsageError, match="exclude each other"):
        _versioning("shop", "b", None, "pinned", True, 10.0)


async def test_a_killed_worker_of_the_old_build_resumes_its_pinned_runs_when_it_comes_back(odin):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    queue = point(payments_v1.app, odin)
    point(payments_broken.app, odin)
    payments_broken.app.task_queue = queue
    deployment = f"pay-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "ODIN_ADDRESS": payments_v1.app.address, "ODIN_TASK_QUEUE": queue}

    def odin_worker(*flags: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "odin.cli", "worker", "-A", "payments_v1:app", "--build-id", "r1", "--deployment", deployment,
             "--sticky-timeout", "1", *flags],
            cwd=Path(__file__).parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    proc = odin_worker("--make-current")
    try:
        await asyncio.to_thread(proc.stdout.readline)
        assert f"deployment {deployment}, build r1 (pinned)" in await asyncio.to_thread(proc.stdout.readline)
        await _until_current(payments_v1.app, deployment, "r1")
        run = await payments_v1.payment.start_async(f"old-{uuid.uuid4().hex[:6]}")
        await _wait_for_event(run, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    finally:
        proc.kill()  # no clean shutdown: its sticky queue is simply abandoned
        await asyncio.to_thread(proc.communicate, timeout=30)
    async with payments_broken.app.worker(build_id="r2", deployment=deployment, promote=100, max_cached_workflows=0):
        await _until_current(payments_v1.app, deployment, "r2")
        await run.signal_async("approve")
        await asyncio.sleep(2.0)
        assert (await run.describe_async()).status.name == "RUNNING"
        types = [e.event_type for e in (await run.history_async()).events]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED not in types and EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types
        # r1 comes back (not made current again), to stop by itself once its last run is done.
        env["ODIN_DRAIN_CHECK_SECONDS"] = "0.5"
        proc = odin_worker("--exit-when-drained")
        try:
            assert (await run.result_async(timeout=30)).startswith("v1:old-")
            out, err = await asyncio.to_thread(proc.communicate, timeout=30)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err
        assert out.endswith(f"odin worker: stopped (deployment {deployment}: version r1 is drained)\n"), (out, err)
    assert await _current(payments_v1.app, deployment) == f"{deployment}.r2"
