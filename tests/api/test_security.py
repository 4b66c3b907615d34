"""Authentication and authorization on the gRPC door: bearer JWTs (HS256, RS256) and API keys,
per-namespace roles from ``odin.security.auth.OPERATIONS``, worker identities, audit lines.

Each refusal is checked for its status and for having changed nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
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

from odin.api.grpc.server import _OPERATOR_RPCS, _RPCS
from odin.config import Settings
from odin.operations import Operation
from odin.security import auth
from odin.server import OdinServer
from tests.support.services import migrated_sqlite_url
from tests.support.workflows import OneActivity, echo

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


def hs256_signed_with(key: bytes, claims: dict) -> str:
    """An HS256 token whose HMAC key is ``key`` (built by hand: PyJWT refuses a PEM key as an HMAC
    secret, which is the point of the attack: a server that verified HS256 with its RS256 public
    key would accept it)."""
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps({**claims, "exp": int(time.time() + 600)}).encode())
    signature = part(hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


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
    s = OdinServer(Settings(database_url=migrated_sqlite_url(tmp_path / "odin.db"), grpc_port=0, auth=config))
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


def test_the_operations_are_the_served_calls_under_their_method_names():
    assert set(Operation) == set(_RPCS) | set(_OPERATOR_RPCS) == set(auth.OPERATIONS)
    assert not set(_RPCS) & set(_OPERATOR_RPCS)
    assert all(op.name == op.value for op in Operation)
    from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb2
    from temporalio.api.workflowservice.v1 import service_pb2 as workflow_pb2

    workflow_methods = {m.name for m in workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"].methods}
    operator_methods = {m.name for m in operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].methods}
    assert set(_RPCS) <= workflow_methods and set(_OPERATOR_RPCS) <= operator_methods


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
        # Attacks on the signature check:
        (jwt.encode({"sub": "x", "permissions": ["*:admin"], "exp": int(time.time() + 60)}, None, "none"), "'none' are not accepted"),
        (hs256_signed_with(RSA_PUBLIC.encode(), {"sub": "x", "permissions": ["*:admin"]}), "Invalid token"),  # key confusion
        (token("early", ["default:writer"], nbf=int(time.time() + 600)), "not yet valid"),
        (jwt.encode({"permissions": ["default:writer"], "exp": int(time.time() + 60)}, SECRET, "HS256"), '"sub"'),
        (token("x", ["default:writer"])[:-4] + "AAAA", "Invalid token"),  # tampered signature
    ],
)
async def test_bad_tokens_are_unauthenticated_and_change_nothing(server, task_queue, bad, reason):
    client = await connect(server, bad)
    with pytest.raises(RPCError) as err:
        await client.start_workflow(OneActivity.run, "x", id=f"bad-{uuid.uuid4()}", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.UNAUTHENTICATED
    assert reason in err.value.message
    assert await workflow_ids(server) == []


async def test_audience_and_issuer_are_checked_when_configured(tmp_path, task_queue):
    config = auth.AuthConfig(enabled=True, hs256_secret=SECRET, audience="odin", issuer="https://idp.example")
    s = OdinServer(Settings(database_url=migrated_sqlite_url(tmp_path / "aud.db"), grpc_port=0, auth=config))
    await s.start()
    try:
        good = {"aud": "odin", "iss": "https://idp.example"}
        for claims, reason in (
            ({**good, "aud": "someone-else"}, "Audience"),
            ({"iss": "https://idp.example"}, "aud"),
            ({**good, "iss": "https://evil.example"}, "issuer"),
        ):
            client = await connect(s, token("x", ["default:writer"], **claims))
            with pytest.raises(RPCError) as err:
                await client.start_workflow(OneActivity.run, "x", id=f"aud-{uuid.uuid4()}", task_queue=task_queue)
            assert err.value.status == RPCStatusCode.UNAUTHENTICATED and reason in err.value.message, err.value.message
        admin = await connect(s, token("root", ["odin-system:admin"], **good))
        assert [w.id async for w in admin.list_workflows()] == []
    finally:
        await s.stop(grace=0.5)


async def test_roles_decide_what_a_token_may_do(server, task_queue):
    admin = await connect(server, ADMIN)
    await admin.workflow_service.register_namespace(RegisterNamespaceRequest(namespace="other"))
    writer = await connect(server, token("app", ["default:writer"]))
    reader = await connect(server, token("viewer", ["default:reader"]))

    # A writer starts workflows in its namespace...
    handle = await writer.start_workflow(OneActivity.run, "x", id=f"w-{uuid.uuid4()}", task_queue=task_queue)
    # ...but not in another one, and nothing is created there.
    writer_elsewhere = await connect(server, token("app", ["default:writer"]), "other")
    with pytest.raises(RPCError) as err:
        await writer_elsewhere.start_workflow(OneActivity.run, "x", id="elsewhere", task_queue=task_queue)
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    assert "'other'" in err.value.message
    assert await workflow_ids(server, "other") == []

    # A reader sees the workflow but cannot start, signal or terminate.
    assert (await reader.get_workflow_handle(handle.id).describe()).status.name == "RUNNING"
    with pytest.raises(RPCError) as err:
        await reader.start_workflow(OneActivity.run, "x", id="by-reader", task_queue=task_queue)
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
    async with Worker(worker_client, task_queue=task_queue, workflows=[OneActivity], activities=[echo]):
        assert await writer.execute_workflow(OneActivity.run, "ok", id=f"e2e-{uuid.uuid4()}", task_queue=task_queue) == "ok"
    # A worker key cannot start workflows.
    with pytest.raises(RPCError) as err:
        await worker_client.start_workflow(OneActivity.run, "x", id="by-worker", task_queue=task_queue)
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
    handle = await writer.start_workflow(OneActivity.run, "x", id=f"aud-{uuid.uuid4()}", task_queue=task_queue)
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


# -- the authorization matrix, generated from the one operations table --------------------------


def _method_types(service: str, name: str):
    from google.protobuf import message_factory
    from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb2
    from temporalio.api.workflowservice.v1 import service_pb2 as workflow_pb2

    descriptor = (workflow_pb2 if service == "WorkflowService" else operator_pb2).DESCRIPTOR.services_by_name[service]
    method = descriptor.methods_by_name[name]
    return (
        f"/{descriptor.full_name}/{name}",
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )


# What each role may do, as the README documents it (the test's own statement of the policy).
ROLE_LEVELS = {
    "reader": {auth.Level.READ},
    "writer": {auth.Level.READ, auth.Level.WRITE},
    "worker": {auth.Level.READ, auth.Level.WORK},
    "admin": {auth.Level.READ, auth.Level.WRITE, auth.Level.WORK, auth.Level.ADMIN},
}
MATRIX_CALLS = [("WorkflowService", name) for name in sorted(_RPCS)] + [("OperatorService", name) for name in sorted(_OPERATOR_RPCS)]
PRINCIPALS = {
    **{f"default:{role}": [f"default:{role}"] for role in auth.ROLES},
    "other:admin": ["other:admin"],  # a namespace's admin, acting on another namespace
}


async def test_every_call_and_role_is_allowed_or_refused_as_the_operations_table_says(server):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.endpoints.grpc_port}")
    checked = 0
    try:
        for principal, permissions in PRINCIPALS.items():
            metadata = (("authorization", f"Bearer {token(principal, permissions)}"),)
            levels = set().union(*(ROLE_LEVELS[p.split(':')[1]] for p in permissions if p.startswith("default:")))
            for service, name in MATRIX_CALLS:
                path, request_type, response_type = _method_types(service, name)
                request = request_type()
                if "namespace" in request_type.DESCRIPTOR.fields_by_name:
                    request.namespace = "default"
                needed = auth.OPERATIONS[name]
                allowed = bool(needed & {auth.Level.PUBLIC, auth.Level.AUTHENTICATED}) or bool(needed & levels)
                call = channel.unary_unary(path, request_serializer=request_type.SerializeToString,
                                           response_deserializer=response_type.FromString)
                try:
                    await call(request, metadata=metadata, timeout=3)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as err:
                    code = err.code()
                if allowed:
                    assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (principal, name, code)
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (principal, name, code)
                checked += 1
    finally:
        await channel.close()
    assert checked == len(PRINCIPALS) * len(MATRIX_CALLS)
    # Empty requests started nothing anywhere (the admin's empty DeleteNamespace may have removed
    # the namespace itself, which is the admin's right).
    import sqlalchemy as sa

    from odin.persistence import tables

    def runs() -> int:
        with server.store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(tables.workflow_executions)).scalar_one()

    assert await server.store.db.run(runs) == 0


async def test_a_batch_deletion_needs_admin_rights_other_batches_writer_rights(server):
    from temporalio.api.batch.v1 import message_pb2 as batch
    from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

    writer = await connect(server, token("ops", ["default:writer"]))
    reader = await connect(server, token("viewer", ["default:reader"]))
    admin = await connect(server, token("boss", ["default:admin"]))
    query = f"WorkflowType = 'Nothing{uuid.uuid4().hex[:6]}'"

    def start(job_id: str, **operation) -> ws.StartBatchOperationRequest:
        return ws.StartBatchOperationRequest(namespace="default", job_id=job_id, visibility_query=query, reason="r", **operation)

    with pytest.raises(RPCError) as err:
        await writer.workflow_service.start_batch_operation(start("del-w", deletion_operation=batch.BatchOperationDeletion()))
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    assert err.value.message == (
        "ops may not call StartBatchOperation with a deletion in namespace 'default': it needs admin access."
    )
    with pytest.raises(RPCError) as err:
        await reader.workflow_service.start_batch_operation(start("term-r", termination_operation=batch.BatchOperationTermination()))
    assert err.value.status == RPCStatusCode.PERMISSION_DENIED
    # Refused calls wrote nothing; a reader may list.
    listed = await reader.workflow_service.list_batch_operations(ws.ListBatchOperationsRequest(namespace="default"))
    assert list(listed.operation_info) == []
    await writer.workflow_service.start_batch_operation(start("term-w", termination_operation=batch.BatchOperationTermination()))
    for _ in range(100):
        d = await reader.workflow_service.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace="default", job_id="term-w"))
        if d.state != 1:
            break
        await asyncio.sleep(0.1)
    await admin.workflow_service.start_batch_operation(start("del-a", deletion_operation=batch.BatchOperationDeletion()))
    listed = await reader.workflow_service.list_batch_operations(ws.ListBatchOperationsRequest(namespace="default"))
    assert [i.job_id for i in listed.operation_info] == ["del-a", "term-w"]
