"""Authentication and authorization on the gRPC door: bearer JWTs (HS256, RS256) and API keys,
per-namespace roles from ``odin.api.auth.OPERATIONS``, worker identities, audit lines.

Each refusal is checked for its status and for having changed nothing."""

from __future__ import annotations

import json
import logging
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from stamped import Stamped, stamp
from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetSystemInfoRequest,
    ListNamespacesRequest,
    PollWorkflowTaskQueueRequest,
    RegisterNamespaceRequest,
    RespondWorkflowTaskFailedRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from odin.api import auth
from odin.api.grpc.server import _OPERATOR_RPCS, _RPCS
from odin.config import Settings, sqlite_url_for_path
from odin.server import OdinServer

SECRET = "hs256-test-secret-that-is-long-enough-for-the-check"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
WORKER_KEY = "worker-api-key-" + uuid.uuid4().hex
PINNED_KEY = "pinned-worker-key-" + uuid.uuid4().hex


def token(sub: str, permissions: list[str], *, expires_in: float = 3600, key=SECRET, alg="HS256", **claims) -> str:
    return jwt.encode({"sub": sub, "permissions": permissions, "exp": int(time.time() + expires_in), **claims}, key, alg)


ADMIN = token("root", ["odin-system:admin"])


@pytest.fixture
async def server(tmp_path):
    config = auth.AuthConfig(
        enabled=True,
        hs256_secret=SECRET,
        rs256_public_key=RSA_PUBLIC,
        api_keys=auth.parse_api_keys(
            {
                "keys": [
                    {"sha256": auth.hash_api_key(WORKER_KEY), "subject": "worker-svc", "permissions": ["default:worker"]},
                    {"key": PINNED_KEY, "subject": "pinned", "permissions": ["default:worker"], "worker_identity": "billing-*"},
                ]
            }
        ),
    )
    s = OdinServer(Settings(database_url=sqlite_url_for_path(str(tmp_path / "odin.db")), grpc_port=0, auth=config))
    await s.start()
    yield s
    await s.stop(grace=0.5)


async def connect(server, api_key: str | None, namespace: str = "default") -> Client:
    return await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}", namespace=namespace, api_key=api_key, tls=False)


@pytest.fixture
async def stub(server):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.endpoints.grpc_port}")
    yield WorkflowServiceStub(channel)
    await channel.close()


async def workflow_ids(server, namespace: str = "default") -> list[str]:
    admin = await connect(server, ADMIN, namespace)
    return [w.id async for w in admin.list_workflows()]


def test_every_served_call_is_in_the_permission_table():
    assert set(_RPCS) | set(_OPERATOR_RPCS) <= set(auth.OPERATIONS)


async def test_without_a_token_only_system_info_answers(stub):
    assert (await stub.GetSystemInfo(GetSystemInfoRequest(), timeout=5)).server_version
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DescribeNamespace(DescribeNamespaceRequest(namespace="default"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in err.value.details()


@pytest.mark.parametrize(
    "bad, reason",
    [
        (token("mallory", ["default:writer"], key="another-secret-of-sufficient-length-xx"), "Invalid token"),
        (token("late", ["default:writer"], expires_in=-10), "expired"),
        ("not-a-known-api-key", "Unknown API key"),
        (jwt.encode({"sub": "x", "permissions": ["default:writer"]}, SECRET, "HS256"), "exp"),  # no expiry
    ],
)
async def test_bad_tokens_are_unauthenticated_and_change_nothing(server, task_queue, bad, reason):
    client = await connect(server, bad)
    with pytest.raises(RPCError) as err:
        await client.start_workflow(Stamped.run, "x", id=f"bad-{uuid.uuid4()}", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.UNAUTHENTICATED
    assert reason in err.value.message
    assert await workflow_ids(server) == []


async def test_roles_decide_what_a_token_may_do(server, task_queue):
    admin = await connect(server, ADMIN)
    await admin.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="other"))
    writer = await connect(server, token("app", ["default:writer"]))
    reader = await connect(server, token("viewer", ["default:reader"]))

    # A writer starts workflows in its namespace...
    handle = await writer.start_workflow(Stamped.run, "x", id=f"w-{uuid.uuid4()}", task_queue=task_queue)
    # ...but not in another one, and nothing is created there.
    writer_elsewhere = await connect(server, token("app", ["default:writer"]), "other")
    with pytest.raises(RPCError) as err:
        await writer_elsewhere.start_workflow(Stamped.run, "x", id="elsewhere", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    assert "'other'" in err.value.message
    assert await workflow_ids(server, "other") == []

    # A reader sees the workflow but cannot start, signal or terminate.
    assert (await reader.get_workflow_handle(handle.id).describe()).status.name == "RUNNING"
    with pytest.raises(RPCError) as err:
        await reader.start_workflow(Stamped.run, "x", id="by-reader", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    with pytest.raises(RPCError) as err:
        await reader.get_workflow_handle(handle.id).terminate("no")
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    assert (await writer.get_workflow_handle(handle.id).describe()).status.name == "RUNNING"
    assert sorted(await workflow_ids(server)) == [handle.id]

    # Only a cluster admin registers namespaces; a namespace admin is not one.
    ns_admin = await connect(server, token("ops", ["default:admin"]))
    with pytest.raises(RPCError) as err:
        await ns_admin.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="sneaky"))
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    # Each caller lists only the namespaces it has a role in.
    listed = await reader.workflow_service.list_namespaces(ListNamespacesRequest())
    assert [n.namespace_info.name for n in listed.namespaces] == ["default"]
    everything = await admin.workflow_service.list_namespaces(ListNamespacesRequest())
    assert {n.namespace_info.name for n in everything.namespaces} == {"default", "other"}


async def test_worker_api_key_and_rs256_writer_run_a_workflow_end_to_end(server, task_queue):
    writer = await connect(server, token("app", ["default:writer"], key=RSA_KEY, alg="RS256"))
    worker_client = await connect(server, WORKER_KEY)
    async with Worker(worker_client, task_queue=task_queue, workflows=[Stamped], activities=[stamp]):
        assert await writer.execute_workflow(Stamped.run, "ok", id=f"e2e-{uuid.uuid4()}", task_queue=task_queue) == "[ok]"
    # A worker key cannot start workflows.
    with pytest.raises(RPCError) as err:
        await worker_client.start_workflow(Stamped.run, "x", id="by-worker", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED


async def test_a_worker_may_only_poll_as_the_identities_it_is_allowed(stub, task_queue):
    metadata = (("authorization", f"Bearer {PINNED_KEY}"),)

    def poll(identity: str):
        return stub.PollWorkflowTaskQueue(
            PollWorkflowTaskQueueRequest(
                namespace="default",
                task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                identity=identity,
            ),
            metadata=metadata,
            timeout=2,
        )

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await poll("1234@laptop")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "billing-*" in err.value.details()
    assert (await poll("billing-7")).task_token == b""  # allowed: an empty long poll


async def test_a_task_token_only_works_in_its_own_namespace(server, stub, task_queue):
    admin = await connect(server, ADMIN)
    await admin.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="second"))
    await admin.start_workflow("Anything", id=f"tok-{uuid.uuid4()}", task_queue=task_queue)
    md = (("authorization", f"Bearer {ADMIN}"),)
    polled = await stub.PollWorkflowTaskQueue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="w"),
        metadata=md,
        timeout=5,
    )
    assert polled.task_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RespondWorkflowTaskFailed(
            RespondWorkflowTaskFailedRequest(namespace="second", task_token=polled.task_token, identity="w"),
            metadata=md,
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not belong to namespace second" in err.value.details()


async def test_mutating_calls_leave_audit_lines(server, task_queue, caplog):
    caplog.set_level(logging.INFO, logger="odin.audit")
    writer = await connect(server, token("app", ["default:writer"]))
    reader = await connect(server, token("viewer", ["default:reader"]))
    handle = await writer.start_workflow(Stamped.run, "x", id=f"aud-{uuid.uuid4()}", task_queue=task_queue)
    await handle.describe()  # reads are not audited
    with pytest.raises(RPCError):
        await reader.get_workflow_handle(handle.id).terminate("denied")
    await writer.get_workflow_handle(handle.id).terminate("done")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "odin.audit"]
    assert [(x["subject"], x["operation"], x["target"], x["outcome"]) for x in lines] == [
        ("app", "StartWorkflowExecution", handle.id, "OK"),
        ("app", "TerminateWorkflowExecution", handle.id, "OK"),
    ]


def test_permission_strings_are_validated():
    with pytest.raises(ValueError):
        auth.parse_permissions(["default:superuser"])
    with pytest.raises(ValueError):
        auth.parse_permissions("default:reader")
    roles, cluster = auth.parse_permissions(["a:reader", "a:worker", "*:reader", "odin-system:admin"])
    assert roles == {"a": frozenset({"reader", "worker"}), "*": frozenset({"reader"})} and cluster
