"""Namespaces and cluster information."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import ArchivalState, NamespaceState
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.api.namespace.v1 import NamespaceConfig, NamespaceInfo
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.replication.v1 import NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin import __version__
from odin.errors import FailedPrecondition, InvalidArgument, NotFound
from odin.frontend.base import FrontendBase
from odin.frontend.common import (
    CLUSTER_NAME,
    DEFAULT_RETENTION,
    MAX_NAMESPACE_LENGTH,
    check_enum,
    check_id,
    offset_token,
    page_size,
)
from odin.frontend.limits import limits_for
from odin.history import operations
from odin.history.events import duration, seconds
from odin.persistence import archive
from odin.persistence.store import NamespaceRecord
from odin.security.auth import SYSTEM_NAMESPACE
from odin.security.gate import current_principal

# Running workflows terminated per round when a namespace is deleted with force.
DELETE_TERMINATE_BATCH = 500


def _check_archival_uris(*uris: str) -> None:
    for uri in uris:
        if uri:
            try:
                archive.validate_uri(uri)
            except archive.ArchiveError as exc:
                raise InvalidArgument(f"Invalid archival URI: {exc}") from None


def _check_archival_states(*states: int) -> None:
    for state in states:
        check_enum(ArchivalState, state, "ArchivalState")


class NamespaceCalls(FrontendBase):
    # -- namespaces ------------------------------------------------------------------------

    async def ensure_namespace(self, name: str, retention_seconds: float = DEFAULT_RETENTION) -> NamespaceRecord:
        try:
            return await self.namespace(name)
        except NotFound:
            pass
        req = ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=duration(retention_seconds))
        try:
            await self.register_namespace(req)
        except Exception:
            pass  # registered concurrently
        return await self.namespace(name)

    async def register_namespace(self, req: ws.RegisterNamespaceRequest) -> ws.RegisterNamespaceResponse:
        check_id(req.namespace, "Namespace", MAX_NAMESPACE_LENGTH)
        if req.namespace == SYSTEM_NAMESPACE:
            raise InvalidArgument(f"Namespace name {SYSTEM_NAMESPACE} is reserved.")
        retention = seconds(req.workflow_execution_retention_period) or DEFAULT_RETENTION
        if retention < 0:
            raise InvalidArgument("WorkflowExecutionRetentionPeriod cannot be negative.")
        _check_archival_uris(req.history_archival_uri, req.visibility_archival_uri)
        _check_archival_states(req.history_archival_state, req.visibility_archival_state)
        await self.store.create_namespace(
            NamespaceRecord(
                id=str(uuid.uuid4()),
                name=req.namespace,
                state=NamespaceState.NAMESPACE_STATE_REGISTERED,
                data={
                    "description": req.description,
                    "owner_email": req.owner_email,
                    "retention_seconds": retention,
                    "data": dict(req.data),
                    "history_archival_state": req.history_archival_state,
                    "history_archival_uri": req.history_archival_uri,
                    "visibility_archival_state": req.visibility_archival_state,
                    "visibility_archival_uri": req.visibility_archival_uri,
                },
                created_at=self.clock.now(),
            )
        )
        return ws.RegisterNamespaceResponse()

    def _describe_ns(self, ns: NamespaceRecord) -> ws.DescribeNamespaceResponse:
        return ws.DescribeNamespaceResponse(
            namespace_info=NamespaceInfo(
                name=ns.name,
                id=ns.id,
                state=ns.state,
                description=ns.data.get("description", ""),
                owner_email=ns.data.get("owner_email", ""),
                data=ns.data.get("data", {}),
                limits=limits_for(ns).published(),
                # Workers send RecordWorkerHeartbeat (for ListWorkers). ``worker_commands`` stays
                # off: the SDKs then do not poll for commands on a system Nexus queue.
                capabilities=NamespaceInfo.Capabilities(worker_heartbeats=True),
            ),
            config=NamespaceConfig(
                workflow_execution_retention_ttl=duration(ns.data.get("retention_seconds", DEFAULT_RETENTION)),
                history_archival_state=ns.data.get("history_archival_state", 0),
                history_archival_uri=ns.data.get("history_archival_uri", ""),
                visibility_archival_state=ns.data.get("visibility_archival_state", 0),
                visibility_archival_uri=ns.data.get("visibility_archival_uri", ""),
            ),
            replication_config=NamespaceReplicationConfig(active_cluster_name=CLUSTER_NAME),
            is_global_namespace=False,
        )

    async def describe_namespace(self, req: ws.DescribeNamespaceRequest) -> ws.DescribeNamespaceResponse:
        if req.id:
            ns = await self.store.get_namespace(id=req.id)
            if ns is None:
                raise NotFound(f"Namespace {req.id} is not found.", NamespaceNotFoundFailure(namespace=req.id))
        else:
            try:
                ns = await self.namespace(req.namespace)
            except NotFound:
                # A deleted namespace can still be described (its state says so) until purged.
                ns = await self.store.get_namespace(name=req.namespace)
                if ns is None:
                    raise
        return self._describe_ns(ns)

    async def list_namespaces(self, req: ws.ListNamespacesRequest) -> ws.ListNamespacesResponse:
        """The namespaces the caller has a role in (every one for a cluster admin)."""
        principal = current_principal.get()
        all_ns = [
            ns
            for ns in await self.store.list_namespaces()
            if ns.state != NamespaceState.NAMESPACE_STATE_DELETED and principal.can_access(ns.name)
        ]
        start = offset_token(req.next_page_token)
        size = page_size(req.page_size, 100)
        page = all_ns[start : start + size]
        token = str(start + size).encode() if start + size < len(all_ns) else b""
        return ws.ListNamespacesResponse(namespaces=[self._describe_ns(ns) for ns in page], next_page_token=token)



    async def update_namespace(self, req: ws.UpdateNamespaceRequest) -> ws.UpdateNamespaceResponse:
        """Change description, owner, data (merged key by key), retention or archival settings."""
        ns = await self.namespace(req.namespace)
        current = await self.store.get_namespace(id=ns.id) or ns  # not the cached copy: no lost update
        data = dict(current.data)
        if req.HasField("update_info"):
            info = req.update_info
            if info.description:
                data["description"] = info.description
            if info.owner_email:
                data["owner_email"] = info.owner_email
            data["data"] = {**data.get("data", {}), **dict(info.data)}
        if req.HasField("config"):
            config = req.config
            if config.HasField("workflow_execution_retention_ttl"):
                retention = seconds(config.workflow_execution_retention_ttl)
                if retention <= 0:
                    raise InvalidArgument("WorkflowExecutionRetentionTtl must be positive.")
                data["retention_seconds"] = retention
            _check_archival_uris(config.history_archival_uri, config.visibility_archival_uri)
            _check_archival_states(config.history_archival_state, config.visibility_archival_state)
            for kind in ("history", "visibility"):
                state = getattr(config, f"{kind}_archival_state")
                uri = getattr(config, f"{kind}_archival_uri")
                if state:
                    data[f"{kind}_archival_state"] = state
                if uri:
                    data[f"{kind}_archival_uri"] = uri
        updated = NamespaceRecord(current.id, current.name, current.state, data, current.created_at)
        await self.store.update_namespace(updated)
        self.forget_namespace(current.name)
        described = self._describe_ns(updated)
        return ws.UpdateNamespaceResponse(
            namespace_info=described.namespace_info,
            config=described.config,
            replication_config=described.replication_config,
            is_global_namespace=False,
        )

    async def delete_namespace(self, req: ops.DeleteNamespaceRequest, force: bool = False) -> ops.DeleteNamespaceResponse:
        """Retire a namespace: refused while workflows run there unless ``force`` (then they are
        terminated first). The name is freed at once; the runs are purged by the retention job."""
        if req.namespace_id:
            ns = await self.store.get_namespace(id=req.namespace_id)
            if ns is None or ns.state == NamespaceState.NAMESPACE_STATE_DELETED:
                raise NotFound(f"Namespace {req.namespace_id} is not found.", NamespaceNotFoundFailure(namespace=req.namespace_id))
        else:
            ns = await self.namespace(req.namespace)
        running = await self.store.list_runs(ns.id, DELETE_TERMINATE_BATCH, running_only=True)
        if running and not force:
            raise FailedPrecondition(
                f"Namespace {ns.name} still has running workflows; terminate them first or delete with force."
            )
        while running:
            for workflow_id, run_id in running:
                try:
                    await operations.terminate(
                        self.engine, ns.id, workflow_id, run_id, "namespace deleted", None, "odin-namespace-delete"
                    )
                except NotFound:
                    pass  # closed meanwhile
            running = await self.store.list_runs(ns.id, DELETE_TERMINATE_BATCH, running_only=True)
        deleted_name = f"{ns.name}-deleted-{ns.id[:8]}"
        data = {**ns.data, "deleted_name": ns.name}
        await self.store.update_namespace(
            NamespaceRecord(ns.id, deleted_name, NamespaceState.NAMESPACE_STATE_DELETED, data, ns.created_at)
        )
        self.forget_namespace(ns.name)
        return ops.DeleteNamespaceResponse(deleted_namespace=deleted_name)

    async def get_cluster_info(self, req: ws.GetClusterInfoRequest) -> ws.GetClusterInfoResponse:
        return ws.GetClusterInfoResponse(
            server_version=__version__,
            cluster_id=await self.store.cluster_id(),
            cluster_name=CLUSTER_NAME,
            history_shard_count=self.engine.num_shards,
            persistence_store=self.store.dialect_name,
            visibility_store=self.store.dialect_name,
            initial_failover_version=1,
            failover_version_increment=10,
        )

    def system_info(self) -> ws.GetSystemInfoResponse:
        return ws.GetSystemInfoResponse(
            server_version=f"odin-{__version__}",
            capabilities=ws.GetSystemInfoResponse.Capabilities(
                signal_and_query_header=True,
                internal_error_differentiation=True,
                activity_failure_include_heartbeat=True,
                sdk_metadata=True,
                upsert_memo=True,
            ),
        )
