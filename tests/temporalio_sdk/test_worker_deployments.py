"""Worker deployments through the temporalio SDK and the ``temporal`` CLI, on SQLite and
PostgreSQL: workers started with ``WorkerDeploymentConfig`` create their deployment and version by
polling; the operator's calls describe, list, set the current and ramping version, update metadata
and delete versions; bad requests are refused as Temporal refuses them.

The error texts and details are the ones Temporal's dev server (CLI 1.5, server 1.29) gives for the
same requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as Version
from temporalio.api.enums.v1 import TaskQueueType, VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig

from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer
from tests.distributed.cluster import deployed_shape
from tests.support.services import REDIS_URL, require_redis, temporal_cli

Status = WorkerDeploymentVersionStatus


@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class Pinned:
    @workflow.run
    async def run(self) -> str:
        return "done"


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
def shape(request, tmp_path) -> Iterator[dict]:
    """Where a routing test's server keeps runs and queues: SQLite with in-memory queues (the
    server runs its own sweeps and timers), or PostgreSQL with Redis streams (a key prefix of the
    test's own) with a real Celery worker and beat as the system workers, as deployed."""
    if request.param == "sqlite+memory":
        yield {"database_url": sqlite_url_for_path(str(tmp_path / "odin.db"))}
        return
    with deployed_shape(tmp_path, request.getfixturevalue("redis_prefix")) as settings:
        yield settings


@contextlib.asynccontextmanager
async def odin(database_url: str, **settings) -> AsyncIterator[tuple[OdinServer, Client]]:
    """A server and a client on a namespace of the test's own (the PostgreSQL database is shared)."""
    server = OdinServer(Settings(database_url=database_url, grpc_port=0, **settings))
    await server.start()
    try:
        address = f"127.0.0.1:{server.endpoints.grpc_port}"
        namespace = f"deploy-{uuid.uuid4().hex[:10]}"
        admin = await Client.connect(address)
        await admin.workflow_service.register_namespace(
            ws.RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period={"seconds": 86400})
        )
        yield server, await Client.connect(address, namespace=namespace)
    finally:
        await server.stop(grace=0.5)


async def run_versions(client: Client, deployment: str, *builds: str, queue: str = "orders") -> None:
    """Start a versioned worker of each build until its polls have registered it."""
    for build in builds:
        config = WorkerDeploymentConfig(version=WorkerDeploymentVersion(deployment, build), use_worker_versioning=True)
        async with Worker(client, task_queue=queue, workflows=[Pinned], deployment_config=config):
            for _ in range(600):
                with contextlib.suppress(RPCError):
                    if await describe_version(client, deployment, build):
                        break
                await asyncio.sleep(0.05)


async def describe_version(client: Client, deployment: str, build: str) -> ws.DescribeWorkerDeploymentVersionResponse:
    return await client.workflow_service.describe_worker_deployment_version(
        ws.DescribeWorkerDeploymentVersionRequest(
            namespace=client.namespace, deployment_version=Version(deployment_name=deployment, build_id=build)
        )
    )


async def refused(call, code: RPCStatusCode, message: str, detail=None) -> None:
    with pytest.raises(RPCError) as caught:
        await call
    assert (caught.value.status, caught.value.message) == (code, message)
    if detail is not None:
        assert caught.value.grpc_status.details[0].Is(detail.DESCRIPTOR)


async def test_versions_registered_by_polls_and_routing_calls(database_url):
    async with odin(database_url) as (_, client):
        svc, ns, name = client.workflow_service, client.namespace, "shop"
        await run_versions(client, name, "v1", "v2")

        described = await svc.describe_worker_deployment(ws.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name=name))
        info = described.worker_deployment_info
        assert info.name == name
        # Newest version first, both inactive; nothing current yet (new runs go to unversioned workers).
        assert [s.version for s in info.version_summaries] == ["shop.v2", "shop.v1"]
        assert {s.status for s in info.version_summaries} == {Status.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE}
        assert info.routing_config.current_version == "__unversioned__"
        version = (await describe_version(client, name, "v1")).worker_deployment_version_info
        # The workflow queue the worker polled; its sticky queue is not a task queue of the version.
        assert [(q.name, q.type) for q in version.task_queue_infos] == [("orders", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)]

        # v1 current, then a 30 % ramp to v2.
        current = await svc.set_worker_deployment_current_version(
            ws.SetWorkerDeploymentCurrentVersionRequest(namespace=ns, deployment_name=name, build_id="v1", identity="ops")
        )
        assert current.previous_version == "__unversioned__" and not current.HasField("previous_deployment_version")
        ramp = await svc.set_worker_deployment_ramping_version(
            ws.SetWorkerDeploymentRampingVersionRequest(
                namespace=ns, deployment_name=name, build_id="v2", percentage=30, identity="ops"
            )
        )
        assert (ramp.previous_version, ramp.previous_percentage) == ("", 0.0)
        routing = (
            await svc.describe_worker_deployment(ws.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name=name))
        ).worker_deployment_info.routing_config
        assert (routing.current_version, routing.ramping_version, routing.ramping_version_percentage) == (
            "shop.v1", "shop.v2", 30.0,
        )
        assert routing.ramping_deployment_version == Version(deployment_name=name, build_id="v2")

        # A stale conflict token is refused.
        await refused(
            svc.set_worker_deployment_current_version(
                ws.SetWorkerDeploymentCurrentVersionRequest(
                    namespace=ns, deployment_name=name, build_id="v2", conflict_token=current.conflict_token
                )
            ),
            RPCStatusCode.FAILED_PRECONDITION,
            "conflict token does not match the deployment's current state",
        )
        # Promoting v2 ends the ramp; v1 drains (it has no pinned runs left to wait for here).
        promoted = await svc.set_worker_deployment_current_version(
            ws.SetWorkerDeploymentCurrentVersionRequest(
                namespace=ns, deployment_name=name, build_id="v2", conflict_token=ramp.conflict_token
            )
        )
        assert promoted.previous_deployment_version == Version(deployment_name=name, build_id="v1")
        v1 = (await describe_version(client, name, "v1")).worker_deployment_version_info
        assert v1.drainage_info.status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING
        assert v1.status == Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING
        listed = await svc.list_worker_deployments(ws.ListWorkerDeploymentsRequest(namespace=ns))
        assert [(d.name, d.routing_config.current_version, d.routing_config.ramping_version) for d in listed.worker_deployments] == [
            (name, "shop.v2", "")
        ]
        assert listed.worker_deployments[0].current_version_summary.version == "shop.v2"

        # Metadata.
        updated = await svc.update_worker_deployment_version_metadata(
            ws.UpdateWorkerDeploymentVersionMetadataRequest(
                namespace=ns,
                deployment_version=Version(deployment_name=name, build_id="v2"),
                upsert_entries={"release": Payload(data=b'"r42"'), "x": Payload(data=b"1")},
                remove_entries=["x"],
            )
        )
        assert list(updated.metadata.entries) == ["release"]
        v2 = (await describe_version(client, name, "v2")).worker_deployment_version_info
        assert v2.metadata.entries["release"].data == b'"r42"'

        # Deleting: the current version never; a draining one only when skipping drainage.
        def delete(build: str, skip: bool = False):
            return svc.delete_worker_deployment_version(
                ws.DeleteWorkerDeploymentVersionRequest(
                    namespace=ns, deployment_version=Version(deployment_name=name, build_id=build), skip_drainage=skip
                )
            )

        await refused(delete("v2"), RPCStatusCode.FAILED_PRECONDITION, "version 'shop:v2' cannot be deleted since it is current or ramping")
        await refused(delete("v1"), RPCStatusCode.FAILED_PRECONDITION, "version 'shop:v1' cannot be deleted since it is draining")
        await refused(delete("v9"), RPCStatusCode.NOT_FOUND, "Worker Deployment Version not found", NotFoundFailure)
        # v1's worker polled this server within the last five minutes.
        await refused(
            delete("v1", skip=True), RPCStatusCode.FAILED_PRECONDITION, "version 'shop:v1' cannot be deleted since it has active pollers"
        )
        await refused(
            svc.delete_worker_deployment(ws.DeleteWorkerDeploymentRequest(namespace=ns, deployment_name=name)),
            RPCStatusCode.FAILED_PRECONDITION,
            "deployment has versions, can't be deleted",
        )


async def test_a_version_polled_through_another_server_is_not_deleted(postgres_url, redis_prefix):
    """Two servers on one PostgreSQL and Redis: the one asked to delete a version sees the polls
    its peer served."""
    require_redis()
    settings = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    # Bounded below pytest's own timeout, so a hang fails with the await it hung in.
    async with asyncio.timeout(60), odin(postgres_url, **settings) as (_, client):
        peer = OdinServer(Settings(database_url=postgres_url, grpc_port=0, **settings))
        await peer.start()
        try:
            other = await Client.connect(f"127.0.0.1:{peer.endpoints.grpc_port}", namespace=client.namespace)
            await run_versions(other, "split", "v1")  # polled through the peer only
            request = ws.DeleteWorkerDeploymentVersionRequest(
                namespace=client.namespace, deployment_version=Version(deployment_name="split", build_id="v1"), skip_drainage=True
            )
            await refused(
                client.workflow_service.delete_worker_deployment_version(request),
                RPCStatusCode.FAILED_PRECONDITION,
                "version 'split:v1' cannot be deleted since it has active pollers",
            )
            assert await describe_version(client, "split", "v1")  # still there
        finally:
            await peer.stop(grace=0.5)


async def test_bad_requests_are_refused_as_temporal_refuses_them(database_url):
    async with odin(database_url) as (_, client):
        svc, ns, name = client.workflow_service, client.namespace, "billing"
        await run_versions(client, name, "v1", "v2", queue="invoices")
        await svc.set_worker_deployment_current_version(
            ws.SetWorkerDeploymentCurrentVersionRequest(namespace=ns, deployment_name=name, build_id="v1")
        )
        before = await svc.describe_worker_deployment(ws.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name=name))

        await refused(
            svc.describe_worker_deployment(ws.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name="nope")),
            RPCStatusCode.NOT_FOUND,
            "no Worker Deployment found with name 'nope'; does your Worker Deployment have pollers?",
            NotFoundFailure,
        )
        await refused(describe_version(client, name, "v9"), RPCStatusCode.NOT_FOUND, "Worker Deployment Version not found", NotFoundFailure)
        await refused(
            svc.set_worker_deployment_current_version(
                ws.SetWorkerDeploymentCurrentVersionRequest(namespace=ns, deployment_name=name, build_id="v9")
            ),
            RPCStatusCode.NOT_FOUND,
            "build ID 'v9' not found in Worker Deployment 'billing'",
            NotFoundFailure,
        )
        for percentage in (-1, 130):
            await refused(
                svc.set_worker_deployment_ramping_version(
                    ws.SetWorkerDeploymentRampingVersionRequest(
                        namespace=ns, deployment_name=name, build_id="v2", percentage=percentage
                    )
                ),
                RPCStatusCode.INVALID_ARGUMENT,
                "Percentage must be between 0 and 100 (inclusive)",
            )
        await refused(
            svc.set_worker_deployment_ramping_version(
                ws.SetWorkerDeploymentRampingVersionRequest(namespace=ns, deployment_name=name, build_id="v1", percentage=5)
            ),
            RPCStatusCode.FAILED_PRECONDITION,
            "requested ramping version billing.v1 is already current",
        )
        after = await svc.describe_worker_deployment(ws.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name=name))
        assert after == before  # nothing changed, not even the conflict token


async def test_temporal_cli_worker_deployment_commands(database_url):
    cli = temporal_cli()
    async with odin(database_url) as (server, client):
        address = f"127.0.0.1:{server.endpoints.grpc_port}"
        await run_versions(client, "web", "r1", "r2", queue="pages")

        def run(*args: str, ok: bool = True) -> str:
            done = subprocess.run(
                [cli, "--address", address, "--namespace", client.namespace, "worker", "deployment", *args],
                capture_output=True, text=True, timeout=60,
            )
            assert (done.returncode == 0) == ok, done.stdout + done.stderr
            return done.stdout + done.stderr

        listed = json.loads(await asyncio.to_thread(run, "list", "-o", "json"))
        assert [d["name"] for d in listed] == ["web"]
        out = await asyncio.to_thread(run, "set-current-version", "--deployment-name", "web", "--build-id", "r1", "-y")
        assert "Successfully set the current worker deployment version" in out
        await asyncio.to_thread(run, "set-ramping-version", "--deployment-name", "web", "--build-id", "r2", "--percentage", "25", "-y")
        described = json.loads(await asyncio.to_thread(run, "describe", "--name", "web", "-o", "json"))
        routing = described["routingConfig"]
        assert (routing["currentVersionDeploymentName"], routing["currentVersionBuildID"]) == ("web", "r1")
        assert (routing["rampingVersionDeploymentName"], routing["rampingVersionBuildID"]) == ("web", "r2")
        assert routing["rampingVersionPercentage"] == 25
        assert [v["BuildID"] for v in described["versionSummaries"]] == ["r2", "r1"]
        out = await asyncio.to_thread(
            run, "set-ramping-version", "--deployment-name", "web", "--build-id", "r2", "--percentage", "150", "-y", ok=False
        )
        assert "Percentage must be between 0 and 100 (inclusive)" in out
        await asyncio.to_thread(
            run, "update-version-metadata", "--deployment-name", "web", "--build-id", "r2", "--metadata", 'release="r2"'
        )
        version = json.loads(
            await asyncio.to_thread(run, "describe-version", "--deployment-name", "web", "--build-id", "r2", "-o", "json")
        )
        assert version["rampPercentage"] == 25 and "release" in json.dumps(version["metadata"])
        assert version["taskQueuesInfos"][0]["name"] == "pages"
        out = await asyncio.to_thread(run, "delete-version", "--deployment-name", "web", "--build-id", "r1", ok=False)
        assert "cannot be deleted since it is current or ramping" in out
        # Back to the unversioned workers: r1 drains.
        await asyncio.to_thread(run, "set-current-version", "--deployment-name", "web", "--unversioned", "-y")
        out = await asyncio.to_thread(run, "describe", "--name", "web")
        assert "draining" in out


# -- routing by version ------------------------------------------------------------------------
# Two builds of one application: each workflow type exists in a v1 and a v2 form that answer with
# their build, registered under the same name by the worker of that build.


@workflow.defn(name="PinnedWait", versioning_behavior=VersioningBehavior.PINNED)
class PinnedV1:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "v1"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.query
    def where(self) -> str:
        return "v1"


@workflow.defn(name="PinnedWait", versioning_behavior=VersioningBehavior.PINNED)
class PinnedV2:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "v2"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.query
    def where(self) -> str:
        return "v2"


@workflow.defn(name="AutoWait", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoV1:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "v1"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.query
    def where(self) -> str:
        return "v1"


@workflow.defn(name="AutoWait", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoV2:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return "v2"

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.query
    def where(self) -> str:
        return "v2"


@workflow.defn(name="Which", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class WhichV1:
    @workflow.run
    async def run(self) -> str:
        return "v1"


@workflow.defn(name="Which", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class WhichV2:
    @workflow.run
    async def run(self) -> str:
        return "v2"


def versioned_worker(client: Client, build: str, *workflows) -> Worker:
    config = WorkerDeploymentConfig(version=WorkerDeploymentVersion("rel", build), use_worker_versioning=True)
    return Worker(client, task_queue="rel-q", workflows=list(workflows), deployment_config=config)


async def registered(client: Client, build: str) -> None:
    """Wait until the running worker of ``build`` has registered its version by polling."""
    for _ in range(600):
        with contextlib.suppress(RPCError):
            if await describe_version(client, "rel", build):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"version {build} never registered")


async def set_current(client: Client, build: str) -> None:
    await client.workflow_service.set_worker_deployment_current_version(
        ws.SetWorkerDeploymentCurrentVersionRequest(namespace=client.namespace, deployment_name="rel", build_id=build)
    )


async def first_task_done(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(600):
        events = [e async for e in handle.fetch_history_events()]
        if any(e.HasField("workflow_task_completed_event_attributes") for e in events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never completed a workflow task")


async def test_pinned_runs_stay_on_their_version_auto_upgrade_runs_move(shape):
    async with odin(**shape) as (_, client):
        async with versioned_worker(client, "v1", PinnedV1, AutoV1):
            await registered(client, "v1")
            await set_current(client, "v1")
            pinned = await client.start_workflow("PinnedWait", id="pinned", task_queue="rel-q")
            auto = await client.start_workflow("AutoWait", id="auto", task_queue="rel-q")
            await first_task_done(client, "pinned")
            await first_task_done(client, "auto")
            async with versioned_worker(client, "v2", PinnedV2, AutoV2):
                await registered(client, "v2")
                await set_current(client, "v2")
                # The queue's pollers: each version's, with its deployment options.
                described = await client.workflow_service.describe_task_queue(
                    ws.DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name="rel-q"))
                )
                assert {p.deployment_options.build_id for p in described.pollers} == {"v1", "v2"}
                # Queries go where the run's tasks go.
                assert await pinned.query("where") == "v1"
                assert await auto.query("where") == "v2"
                await pinned.signal("proceed")
                await auto.signal("proceed")
                assert await pinned.result() == "v1"  # started on v1, finished on v1
                assert await auto.result() == "v2"  # moved at its next workflow task
                fresh = await client.start_workflow("PinnedWait", id="fresh", task_queue="rel-q")
                await fresh.signal("proceed")
                assert await fresh.result() == "v2"  # new runs go to the current version
        # Each completed workflow task records the version and behaviour, as Temporal's do.
        events = [e async for e in pinned.fetch_history_events()]
        done = [e.workflow_task_completed_event_attributes for e in events if e.HasField("workflow_task_completed_event_attributes")]
        assert {(a.deployment_version.build_id, a.versioning_behavior) for a in done} == {("v1", VersioningBehavior.PINNED.value)}
        events = [e async for e in auto.fetch_history_events()]
        done = [e.workflow_task_completed_event_attributes for e in events if e.HasField("workflow_task_completed_event_attributes")]
        assert [a.deployment_version.build_id for a in done] == ["v1", "v2"]


class _Family:
    """A pinned parent that, once told, starts a child and continues as new with its answer."""

    build = ""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, kid: str) -> str:
        if kid:  # the continue-as-new run
            return f"{kid}+{self.build}"
        await workflow.wait_condition(lambda: self.go)
        kid = await workflow.execute_child_workflow("Kid", id=f"{workflow.info().workflow_id}-kid")
        workflow.continue_as_new(kid)

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="Family", versioning_behavior=VersioningBehavior.PINNED)
class FamilyV1(_Family):
    build = "v1"

    @workflow.run
    async def run(self, kid: str) -> str:
        return await super().run(kid)


@workflow.defn(name="Family", versioning_behavior=VersioningBehavior.PINNED)
class FamilyV2(_Family):
    build = "v2"

    @workflow.run
    async def run(self, kid: str) -> str:
        return await super().run(kid)


@workflow.defn(name="Kid", versioning_behavior=VersioningBehavior.PINNED)
class KidV1:
    @workflow.run
    async def run(self) -> str:
        return "kid:v1"


@workflow.defn(name="Kid", versioning_behavior=VersioningBehavior.PINNED)
class KidV2:
    @workflow.run
    async def run(self) -> str:
        return "kid:v2"


async def test_children_and_continue_as_new_of_a_pinned_run_inherit_its_version(shape):
    async with odin(**shape) as (_, client):
        async with versioned_worker(client, "v1", FamilyV1, KidV1):
            await registered(client, "v1")
            await set_current(client, "v1")
            family = await client.start_workflow("Family", "", id="family", task_queue="rel-q")
            await first_task_done(client, "family")
            async with versioned_worker(client, "v2", FamilyV2, KidV2):
                await registered(client, "v2")
                await set_current(client, "v2")
                await family.signal("proceed")
                # The child and the next run started after v2 became current, on v1 all the same.
                assert await client.get_workflow_handle("family").result() == "kid:v1+v1"
        for workflow_id in ("family-kid", "family"):
            events = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
            started = events[0].workflow_execution_started_event_attributes
            assert (started.inherited_pinned_version.deployment_name, started.inherited_pinned_version.build_id) == ("rel", "v1")
        first = [e async for e in client.get_workflow_handle("family", run_id=family.result_run_id).fetch_history_events()]
        assert not first[0].workflow_execution_started_event_attributes.HasField("inherited_pinned_version")


async def test_a_pinned_run_waits_for_its_version_to_come_back(shape):
    async with odin(**shape) as (_, client):
        async with versioned_worker(client, "v2", PinnedV2):
            await registered(client, "v2")
        async with versioned_worker(client, "v1", PinnedV1):
            await registered(client, "v1")
            await set_current(client, "v1")
            pinned = await client.start_workflow("PinnedWait", id="waits", task_queue="rel-q")
            await first_task_done(client, "waits")
        await set_current(client, "v2")
        # v1's worker is gone: the signal's workflow task waits for it; v2's worker does not take it.
        async with versioned_worker(client, "v2", PinnedV2):
            await pinned.signal("proceed")
            await asyncio.sleep(2.2)  # past the drainage grace period
            assert (await pinned.describe()).status.name == "RUNNING"
            # v1 still has a pinned run open: it stays draining (checked, and the check says so).
            info = (await describe_version(client, "rel", "v1")).worker_deployment_version_info
            assert info.drainage_info.status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING
            assert info.drainage_info.last_checked_time.ToSeconds() > info.drainage_info.last_changed_time.ToSeconds() - 1
            listed = client.list_workflows("TemporalWorkerDeploymentVersion = 'rel:v1' AND ExecutionStatus = 'Running'")
            assert [w.id async for w in listed] == ["waits"]
        async with versioned_worker(client, "v1", PinnedV1):
            assert await pinned.result() == "v1"
        # Its last pinned run closed: v1 is drained (shown in the deployment's summary too).
        for _ in range(300):
            described = await client.workflow_service.describe_worker_deployment(
                ws.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name="rel")
            )
            drainage = {s.deployment_version.build_id: s.drainage_status for s in described.worker_deployment_info.version_summaries}
            if drainage["v1"] == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED:
                break
            await asyncio.sleep(0.1)
        assert drainage == {"v1": VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED, "v2": 0}


async def test_a_ramp_sends_its_share_of_new_runs_to_the_ramping_version(shape):
    async with odin(**shape) as (_, client):
        async with versioned_worker(client, "v1", WhichV1), versioned_worker(client, "v2", WhichV2):
            await registered(client, "v1")
            await registered(client, "v2")
            await set_current(client, "v1")
            await client.workflow_service.set_worker_deployment_ramping_version(
                ws.SetWorkerDeploymentRampingVersionRequest(
                    namespace=client.namespace, deployment_name="rel", build_id="v2", percentage=30
                )
            )
            results = await asyncio.gather(
                *(client.execute_workflow("Which", id=f"ramp-{i}", task_queue="rel-q") for i in range(200))
            )
        assert 40 <= results.count("v2") <= 80, results.count("v2")  # about 30 % of 200
        assert results.count("v1") + results.count("v2") == 200


async def test_a_versioning_override_pins_an_auto_upgrade_run(database_url):
    from google.protobuf.field_mask_pb2 import FieldMask
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions

    pinned_to = VersioningOverride.PinnedOverride
    mask = FieldMask(paths=["versioning_override"])

    def options(workflow_id: str, override: VersioningOverride | None, update_mask: FieldMask | None = mask):
        return ws.UpdateWorkflowExecutionOptionsRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            workflow_execution_options=WorkflowExecutionOptions(versioning_override=override),
            update_mask=update_mask,
            identity="ops",
        )

    async with odin(database_url) as (_, client):
        svc = client.workflow_service
        async with versioned_worker(client, "v2", AutoV2):
            await registered(client, "v2")
        async with versioned_worker(client, "v1", AutoV1):
            await registered(client, "v1")
            await set_current(client, "v1")
            run = await client.start_workflow("AutoWait", id="ov", task_queue="rel-q")
            await first_task_done(client, "ov")
            info = (await run.describe()).raw_description.workflow_execution_info.versioning_info
            assert (info.behavior, info.deployment_version.build_id) == (VersioningBehavior.AUTO_UPGRADE.value, "v1")

            # Bad requests, as Temporal answers them.
            await refused(svc.update_workflow_execution_options(options("ov", None, None)), RPCStatusCode.INVALID_ARGUMENT, "UpdateMask is required")
            await refused(
                svc.update_workflow_execution_options(options("ov", None, FieldMask(paths=["bogus"]))),
                RPCStatusCode.INVALID_ARGUMENT,
                'error parsing UpdateMask: proto: invalid path "bogus" for message "temporal.api.workflow.v1.WorkflowExecutionOptions"',
            )
            unknown = VersioningOverride(pinned=pinned_to(behavior=1, version=Version(deployment_name="rel", build_id="zz")))
            await refused(
                svc.update_workflow_execution_options(options("ov", unknown)),
                RPCStatusCode.FAILED_PRECONDITION,
                "Pinned version 'rel:zz' is not present in task queue 'rel-q' of type 'Workflow'",
            )
            await client.start_workflow("AutoWait", id="nowhere", task_queue="nobody-polls")
            await refused(
                svc.update_workflow_execution_options(options("nowhere", VersioningOverride(pinned=pinned_to(behavior=1)))),
                RPCStatusCode.FAILED_PRECONDITION,
                "must specify a specific pinned override version because workflow with id nowhere has behavior "
                "Unspecified and is not yet pinned to any version",
            )

            # An auto-upgrade run is pinned only to a version named (a pinned run may omit it).
            await refused(
                svc.update_workflow_execution_options(options("ov", VersioningOverride(pinned=pinned_to(behavior=1)))),
                RPCStatusCode.FAILED_PRECONDITION,
                "must specify a specific pinned override version because workflow with id ov has behavior "
                "AutoUpgrade and is not yet pinned to any version",
            )
            v1 = VersioningOverride(pinned=pinned_to(behavior=1, version=Version(deployment_name="rel", build_id="v1")))
            answer = await svc.update_workflow_execution_options(options("ov", v1))
            assert answer.workflow_execution_options.versioning_override.pinned.version == Version(deployment_name="rel", build_id="v1")
            # Listed (and counted against v1's drainage) as pinned: the search attributes give the
            # effective behaviour, as Temporal's do.
            pinned_runs = client.list_workflows("TemporalWorkerDeploymentVersion = 'rel:v1' AND TemporalWorkflowVersioningBehavior = 'Pinned'")
            assert [w.id async for w in pinned_runs] == ["ov"]
            async with versioned_worker(client, "v2", AutoV2):
                await set_current(client, "v2")
                await run.signal("proceed")
                assert await run.result() == "v1"
        events = [e async for e in run.fetch_history_events()]
        updated = [e.workflow_execution_options_updated_event_attributes for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED]
        assert [(u.versioning_override.pinned.version.build_id, u.identity) for u in updated] == [("v1", "ops")]
        info = (await run.describe()).raw_description.workflow_execution_info.versioning_info
        assert info.versioning_override.pinned.version.build_id == "v1"
