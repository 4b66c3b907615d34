"""Namespace lifecycle through gRPC: register, update (merged data, retention, archival),
describe from a fresh cache, delete (refused while workflows run, forced by terminating them),
purge by the retention job, and the name free again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import ArchivalState, NamespaceState
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.operatorservice.v1 import DeleteNamespaceRequest
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode


@pytest.fixture
async def ns_client(odin_server) -> tuple[Client, str]:
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    name = f"team-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, description="first", data={"team": "a", "tier": "1"})
    )
    return client, name


async def _describe(client: Client, name: str):
    return await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))


async def test_update_merges_data_and_changes_settings(ns_client, odin_server):
    client, name = ns_client
    assert (await _describe(client, name)).namespace_info.description == "first"  # now cached
    response = await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=name,
            update_info=UpdateNamespaceInfo(description="second", owner_email="ops@example.com", data={"tier": "2"}),
            config=NamespaceConfig(
                workflow_execution_retention_ttl=timedelta(days=7),
                history_archival_state=ArchivalState.ARCHIVAL_STATE_ENABLED,
                history_archival_uri="file:///var/tmp/odin-archive",
            ),
        )
    )
    assert response.namespace_info.description == "second"
    described = await _describe(client, name)  # the cache was refreshed by the update
    assert described.namespace_info.owner_email == "ops@example.com"
    assert dict(described.namespace_info.data) == {"team": "a", "tier": "2"}
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=7)
    assert described.config.history_archival_uri == "file:///var/tmp/odin-archive"


@pytest.mark.parametrize(
    "config, fragment",
    [
        (NamespaceConfig(workflow_execution_retention_ttl=timedelta(seconds=-5)), "Retention"),
        (NamespaceConfig(history_archival_uri="gopher://x"), "archival URI"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(ns_client, config, fragment):
    client, name = ns_client
    before = await _describe(client, name)
    with pytest.raises(RPCError) as err:
        await client.workflow_service.update_namespace(UpdateNamespaceRequest(namespace=name, config=config))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT and fragment in err.value.message
    assert await _describe(client, name) == before


async def test_update_of_an_unknown_namespace_is_not_found(odin_server):
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    with pytest.raises(RPCError) as err:
        await client.workflow_service.update_namespace(UpdateNamespaceRequest(namespace="nope"))
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_delete_refuses_running_workflows_unless_forced_then_purges(ns_client, odin_server, task_queue):
    client, name = ns_client
    scoped = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}", namespace=name)
    handle = await scoped.start_workflow("Anything", id="busy", task_queue=task_queue)
    with pytest.raises(RPCError) as err:
        await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=name))
    assert err.value.status == RPCStatusCode.FAILED_PRECONDITION and "running workflows" in err.value.message
    assert (await handle.describe()).status.name == "RUNNING"  # nothing changed

    # Forced (the REST door offers ?force=true): running workflows are terminated first.
    frontend = odin_server.frontend
    response = await frontend.delete_namespace(DeleteNamespaceRequest(namespace=name), force=True)
    assert response.deleted_namespace.startswith(f"{name}-deleted-")
    with pytest.raises(RPCError) as err:
        await _describe(client, name)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as err:
        await scoped.start_workflow("Anything", id="after", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    listed = await client.workflow_service.list_namespaces(ListNamespacesRequest())
    assert name not in [n.namespace_info.name for n in listed.namespaces]
    deleted = await _describe(client, response.deleted_namespace)
    assert deleted.namespace_info.state == NamespaceState.NAMESPACE_STATE_DELETED

    # The retention job purges its runs and the namespace itself; the name can be used again.
    assert await odin_server.runtime.jobs.purge_deleted_namespaces() == 1
    namespace_id = deleted.namespace_info.id
    assert await odin_server.store.get_execution(namespace_id, "busy", handle.run_id) is None
    assert await odin_server.store.get_namespace(id=namespace_id) is None
    await client.workflow_service.register_namespace(RegisterNamespaceRequest(namespace=name))
    assert (await _describe(client, name)).namespace_info.state == NamespaceState.NAMESPACE_STATE_REGISTERED


async def test_delete_of_an_idle_namespace_and_of_unknown_ones(ns_client):
    client, name = ns_client
    response = await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=name))
    assert response.deleted_namespace
    for request in (DeleteNamespaceRequest(namespace=name), DeleteNamespaceRequest(namespace_id=str(uuid.uuid4()))):
        with pytest.raises(RPCError) as err:
            await client.operator_service.delete_namespace(request)
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_the_system_namespace_name_is_reserved(odin_server):
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    with pytest.raises(RPCError) as err:
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="odin-system"))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
