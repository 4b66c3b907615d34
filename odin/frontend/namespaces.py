"""Namespaces and cluster information."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.api.namespace.v1 import NamespaceConfig, NamespaceInfo
from temporalio.api.replication.v1 import NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin import __version__
from odin.clock import monotonic
from odin.errors import InvalidArgument, NotFound
from odin.frontend.common import CLUSTER_NAME, DEFAULT_RETENTION, MAX_NAMESPACE_LENGTH, NAMESPACE_CACHE_TTL, check_id
from odin.history.events import duration
from odin.persistence import archive
from odin.persistence.store import NamespaceRecord


@dataclass
class _Cached:
    record: NamespaceRecord
    at: float


class NamespaceCalls:
    # -- namespaces ------------------------------------------------------------------------

    async def namespace(self, name: str) -> NamespaceRecord:
        if not name:
            raise InvalidArgument("Namespace is not set on request.")
        cached = self._ns_cache.get(name)
        if cached is not None and monotonic() - cached.at < NAMESPACE_CACHE_TTL:
            return cached.record
        record = await self.store.get_namespace(name=name)
        if record is None:
            raise NotFound(f"Namespace {name} is not found.", NamespaceNotFoundFailure(namespace=name))
        self._ns_cache[name] = _Cached(record, monotonic())
        return record

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
        retention = req.workflow_execution_retention_period.ToTimedelta().total_seconds() or DEFAULT_RETENTION
        if retention < 0:
            raise InvalidArgument("WorkflowExecutionRetentionPeriod cannot be negative.")
        for uri in (req.history_archival_uri, req.visibility_archival_uri):
            if uri:
                try:
                    archive.validate_uri(uri)
                except archive.ArchiveError as exc:
                    raise InvalidArgument(f"Invalid archival URI: {exc}") from None
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
            ns = await self.namespace(req.namespace)
        return self._describe_ns(ns)

    async def list_namespaces(self, req: ws.ListNamespacesRequest) -> ws.ListNamespacesResponse:
        all_ns = await self.store.list_namespaces()
        try:
            start = int(req.next_page_token or b"0")
            if start < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("Invalid NextPageToken.") from None
        size = req.page_size or 100
        page = all_ns[start : start + size]
        token = str(start + size).encode() if start + size < len(all_ns) else b""
        return ws.ListNamespacesResponse(namespaces=[self._describe_ns(ns) for ns in page], next_page_token=token)


    async def get_cluster_info(self, req: ws.GetClusterInfoRequest) -> ws.GetClusterInfoResponse:
        return ws.GetClusterInfoResponse(
            server_version=__version__,
            cluster_id=await self.store.cluster_id(),
            cluster_name=CLUSTER_NAME,
            history_shard_count=self.engine.num_shards,
            persistence_store=self.store.engine.dialect.name,
            visibility_store=self.store.engine.dialect.name,
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
