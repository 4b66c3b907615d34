"""Worker deployments: the operator's calls that describe them and move new work between their
versions (docs/architecture.md#worker-deployments); what pollers register is in ``versions``."""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.deployment.v1 import (
    RoutingConfig,
    VersionDrainageInfo,
    VersionMetadata,
    WorkerDeploymentInfo,
    WorkerDeploymentVersion,
    WorkerDeploymentVersionInfo,
)
from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_LIST_PAGE, check_id, offset_token, page_size
from odin.frontend.versions import POLLER_TTL, conflict_token
from odin.history import deployments as dep
from odin.history import operations
from odin.history.events import timestamp
from odin.history.routing import QUEUE_KINDS, versioned_queue
from odin.persistence.store import DeploymentRecord, NamespaceRecord
from odin.visibility import sql as visibility_sql

DEFAULT_DEPLOYMENTS_PAGE = 100
# A draining version's open pinned runs are counted at most once per DRAINAGE_REFRESH seconds,
# when the deployment or version is described or listed, and not before DRAINAGE_GRACE seconds
# after it stopped receiving new runs (a run sent to it just before may not be pinned yet).
DRAINAGE_REFRESH = 1.0
DRAINAGE_GRACE = 2.0


def _has(message: Any, name: str) -> bool:
    """Whether this API version's message has a field (temporalio 1.31 lacks some 1.35 ones)."""
    return name in message.DESCRIPTOR.fields_by_name


def _set(message: Any, name: str, value: Any) -> None:
    if value is None or not _has(message, name):
        return
    target = getattr(message, name)
    if hasattr(target, "CopyFrom"):
        target.CopyFrom(value)
    else:
        setattr(message, name, value)


def _ts(at: float | None):
    return None if at is None else timestamp(at)


class DeploymentCalls(FrontendBase):
    """The worker-deployment calls of WorkflowService."""

    async def _refresh_drainage(self, ns: NamespaceRecord, record: DeploymentRecord, d: dep.Deployment):
        """Count the open runs pinned to each draining version that is due a check; a version
        with none left is drained. The (possibly updated) record and deployment."""
        now = self.clock.now().timestamp()
        due = [
            v.build_id
            for v in d.versions.values()
            if v.drainage == dep.DRAINING
            and (v.last_deactivation or 0.0) + DRAINAGE_GRACE <= now
            and (v.drainage_checked or 0.0) + DRAINAGE_REFRESH <= now
            and "'" not in d.name + v.build_id
        ]
        if not due:
            return record, d
        custom = await self.engine.search_attributes.custom(ns.id)
        counts = {}
        for build_id in due:
            _, where, _ = visibility_sql.compile_query(
                f"TemporalWorkerDeploymentVersion = '{d.name}:{build_id}' AND "
                "TemporalWorkflowVersioningBehavior = 'Pinned' AND ExecutionStatus = 'Running'",
                custom,
            )
            counts[build_id] = (await self.store.count_visibility(ns.id, where, False))[0]

        def record_all(d: dep.Deployment) -> None:
            for build_id, pinned in counts.items():
                dep.record_drainage(d, build_id, pinned, now)

        _, record, d = await self.deployments.change(ns.id, d.name, record_all)
        return record, d

    async def _version_target(self, req) -> tuple[str, str, str]:
        """(namespace id, deployment name, build id) a version call names, by ``deployment_version``
        or the deprecated ``version`` string."""
        ns = await self.namespace(req.namespace)
        if req.HasField("deployment_version") and req.deployment_version.deployment_name:
            name, build_id = req.deployment_version.deployment_name, req.deployment_version.build_id
        elif req.version:
            if "." not in req.version:
                raise InvalidArgument(f"invalid version string {req.version!r}: expected <deployment_name>.<build_id>")
            name, build_id = req.version.split(".", 1)
        else:
            raise InvalidArgument("deployment_version is required")
        check_id(name, "DeploymentName")
        check_id(build_id, "BuildId")
        return ns.id, name, build_id

    # -- the calls ------------------------------------------------------------------------

    async def describe_worker_deployment(self, req: ws.DescribeWorkerDeploymentRequest) -> ws.DescribeWorkerDeploymentResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.deployment_name, "DeploymentName")
        record, d = await self.deployments.load(ns.id, req.deployment_name)
        record, d = await self._refresh_drainage(ns, record, d)
        return ws.DescribeWorkerDeploymentResponse(conflict_token=conflict_token(record), worker_deployment_info=self._info(ns.id, d))

    async def list_worker_deployments(self, req: ws.ListWorkerDeploymentsRequest) -> ws.ListWorkerDeploymentsResponse:
        ns = await self.namespace(req.namespace)
        found = await self.store.list_worker_deployments(ns.id)
        offset = offset_token(req.next_page_token)
        size = page_size(req.page_size, DEFAULT_DEPLOYMENTS_PAGE, MAX_LIST_PAGE)
        page = [(await self._refresh_drainage(ns, r, dep.Deployment.from_json(r.data)))[1] for r in found[offset : offset + size]]
        summary_type = ws.ListWorkerDeploymentsResponse.WorkerDeploymentSummary
        summaries = []
        for d in page:
            s = summary_type(name=d.name, create_time=timestamp(d.create_time), routing_config=_routing(d))
            latest = max(d.versions.values(), key=lambda v: v.create_time, default=None)
            if latest is not None:
                _set(s, "latest_version_summary", self._summary(ns.id, d, latest))
            if d.current in d.versions:
                _set(s, "current_version_summary", self._summary(ns.id, d, d.versions[d.current]))
            if d.ramping in d.versions:
                _set(s, "ramping_version_summary", self._summary(ns.id, d, d.versions[d.ramping]))
            summaries.append(s)
        more = offset + size < len(found)
        return ws.ListWorkerDeploymentsResponse(
            worker_deployments=summaries, next_page_token=str(offset + size).encode() if more else b""
        )

    async def delete_worker_deployment(self, req: ws.DeleteWorkerDeploymentRequest) -> ws.DeleteWorkerDeploymentResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.deployment_name, "DeploymentName")
        record, d = await self.deployments.load(ns.id, req.deployment_name)
        if d.versions:
            raise FailedPrecondition("deployment has versions, can't be deleted")
        await self.store.delete_worker_deployment(ns.id, d.name, record.db_version)
        self.engine.routing.forget(ns.id)
        self.deployments.forget(ns.id, d.name)
        return ws.DeleteWorkerDeploymentResponse()

    async def set_worker_deployment_current_version(
        self, req: ws.SetWorkerDeploymentCurrentVersionRequest
    ) -> ws.SetWorkerDeploymentCurrentVersionResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.deployment_name, "DeploymentName")
        build_id = dep.build_id_of(req.deployment_name, req.build_id, req.version)
        now = self.clock.now().timestamp()
        previous, record, d = await self.deployments.change(
            ns.id,
            req.deployment_name,
            lambda d: dep.set_current(d, build_id, req.identity, now),
            token=req.conflict_token,
        )
        answer = ws.SetWorkerDeploymentCurrentVersionResponse(
            conflict_token=conflict_token(record), previous_version=d.version_name(previous)
        )
        _set(answer, "previous_deployment_version", _version_ref(d, previous))
        return answer

    async def set_worker_deployment_ramping_version(
        self, req: ws.SetWorkerDeploymentRampingVersionRequest
    ) -> ws.SetWorkerDeploymentRampingVersionResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.deployment_name, "DeploymentName")
        if not 0.0 <= req.percentage <= 100.0:
            raise InvalidArgument("Percentage must be between 0 and 100 (inclusive)")
        # No version (neither a build id nor a version string): end the ramp.
        build_id: str | None = dep.build_id_of(req.deployment_name, req.build_id, req.version)
        if not req.build_id and not req.version:
            build_id = None
        now = self.clock.now().timestamp()
        (previous, previous_ramp), record, d = await self.deployments.change(
            ns.id,
            req.deployment_name,
            lambda d: dep.set_ramping(d, build_id, req.percentage, req.identity, now),
            token=req.conflict_token,
        )
        answer = ws.SetWorkerDeploymentRampingVersionResponse(
            conflict_token=conflict_token(record),
            previous_version="" if previous is None else d.version_name(previous),
            previous_percentage=previous_ramp,
        )
        if previous is not None:
            _set(answer, "previous_deployment_version", _version_ref(d, previous))
        return answer

    async def describe_worker_deployment_version(
        self, req: ws.DescribeWorkerDeploymentVersionRequest
    ) -> ws.DescribeWorkerDeploymentVersionResponse:
        ns_id, name, build_id = await self._version_target(req)
        record = await self.store.get_worker_deployment(ns_id, name)
        d = None if record is None else dep.Deployment.from_json(record.data)
        if record is not None and d is not None:
            record, d = await self._refresh_drainage(await self.namespace(req.namespace), record, d)
        v = None if d is None else d.versions.get(build_id)
        if d is None or v is None:
            raise NotFound("Worker Deployment Version not found", NotFoundFailure())
        answer = ws.DescribeWorkerDeploymentVersionResponse(worker_deployment_version_info=_version_info(d, v))
        if _has(answer, "version_task_queues"):
            queue_type = ws.DescribeWorkerDeploymentVersionResponse.VersionTaskQueue
            answer.version_task_queues.extend(queue_type(name=q, type=t) for q, t in v.task_queues)
        return answer

    async def delete_worker_deployment_version(
        self, req: ws.DeleteWorkerDeploymentVersionRequest
    ) -> ws.DeleteWorkerDeploymentVersionResponse:
        ns_id, name, build_id = await self._version_target(req)
        record = await self.store.get_worker_deployment(ns_id, name)
        v = None if record is None else dep.Deployment.from_json(record.data).versions.get(build_id)
        polled = v is not None and await self._polled(ns_id, name, build_id, v.task_queues)

        def delete(d: dep.Deployment) -> None:
            dep.delete_version(d, build_id, req.skip_drainage)
            if polled:
                raise FailedPrecondition(f"version '{d.name}:{build_id}' cannot be deleted since it has active pollers")

        try:
            await self.deployments.change(ns_id, name, delete)
        except NotFound:
            raise NotFound("Worker Deployment Version not found", NotFoundFailure()) from None
        self.deployments.forget(ns_id, name, build_id)
        return ws.DeleteWorkerDeploymentVersionResponse()

    async def _polled(self, namespace_id: str, name: str, build_id: str, task_queues: list) -> bool:
        """Whether any of the version's queues was polled within POLLER_TTL (by any process: the
        queues keep their pollers in Redis)."""
        for queue, queue_type in task_queues:
            polled = versioned_queue(queue, name, build_id)
            if await self.engine.queues.has_recent_poller(namespace_id, polled, QUEUE_KINDS[queue_type], POLLER_TTL):
                return True
        return False

    async def update_worker_deployment_version_metadata(
        self, req: ws.UpdateWorkerDeploymentVersionMetadataRequest
    ) -> ws.UpdateWorkerDeploymentVersionMetadataResponse:
        ns_id, name, build_id = await self._version_target(req)
        upsert = {k: v.SerializeToString().hex() for k, v in req.upsert_entries.items()}
        try:
            metadata, _, _ = await self.deployments.change(
                ns_id, name, lambda d: dep.update_metadata(d, build_id, upsert, list(req.remove_entries))
            )
        except NotFound:
            raise NotFound("Worker Deployment Version not found", NotFoundFailure()) from None
        return ws.UpdateWorkerDeploymentVersionMetadataResponse(metadata=_metadata(metadata))

    async def update_workflow_execution_options(
        self, req: ws.UpdateWorkflowExecutionOptionsRequest
    ) -> ws.UpdateWorkflowExecutionOptionsResponse:
        """The versioning override of a run (its other options are not served)."""
        ns, wid, rid = await self._target(req.namespace, req.workflow_execution)
        if not req.HasField("update_mask"):
            raise InvalidArgument("UpdateMask is required")
        for path in req.update_mask.paths:
            if path not in req.workflow_execution_options.DESCRIPTOR.fields_by_name:
                raise InvalidArgument(
                    f'error parsing UpdateMask: proto: invalid path "{path}" for message '
                    '"temporal.api.workflow.v1.WorkflowExecutionOptions"'
                )
            if path != "versioning_override":
                raise Unimplemented(f"updating {path} is not supported by this server")
        options = req.workflow_execution_options
        override = options.versioning_override if options.HasField("versioning_override") else None
        if override is not None and not override.auto_upgrade and override.behavior != dep.AUTO_UPGRADE_BEHAVIOR:
            name, build_id = dep.pinned_override_version(override)
            if build_id:
                await self._check_pinned_target(ns, wid, rid, name, build_id)
        if "versioning_override" in req.update_mask.paths:
            effective = await operations.set_versioning_override(self.engine, ns.id, wid, rid, override, req.identity)
        else:
            effective = dep.current_override((await self.engine.load(ns.id, wid, rid)).state)
        answer = ws.UpdateWorkflowExecutionOptionsResponse()
        if effective is not None:
            answer.workflow_execution_options.versioning_override.CopyFrom(effective)
        return answer

    async def _check_pinned_target(self, ns: NamespaceRecord, wid: str, rid: str, name: str, build_id: str) -> None:
        """A pinned override must name a version whose workers poll the run's task queue."""
        queue = (await self.engine.load(ns.id, wid, rid)).state.task_queue
        record = await self.store.get_worker_deployment(ns.id, name)
        v = None if record is None else dep.Deployment.from_json(record.data).versions.get(build_id)
        if v is None or [queue, 1] not in v.task_queues:
            raise FailedPrecondition(f"Pinned version '{name}:{build_id}' is not present in task queue '{queue}' of type 'Workflow'")

    # -- answers --------------------------------------------------------------------------

    def _summary(self, namespace_id: str, d: dep.Deployment, v: dep.Version):
        s = WorkerDeploymentInfo.WorkerDeploymentVersionSummary(
            version=d.version_name(v.build_id), create_time=timestamp(v.create_time), drainage_status=VersionDrainageStatus.ValueType(v.drainage)
        )
        _set(s, "deployment_version", _version_ref(d, v.build_id))
        _set(s, "status", _status(d, v))
        if v.drainage:
            _set(s, "drainage_info", _drainage(v))
        _set(s, "current_since_time", _ts(v.current_since))
        _set(s, "ramping_since_time", _ts(v.ramping_since))
        _set(s, "routing_update_time", _ts(v.routing_changed))
        _set(s, "first_activation_time", _ts(v.first_activation))
        _set(s, "last_deactivation_time", _ts(v.last_deactivation))
        return s

    def _info(self, namespace_id: str, d: dep.Deployment) -> WorkerDeploymentInfo:
        info = WorkerDeploymentInfo(
            name=d.name,
            create_time=timestamp(d.create_time),
            routing_config=_routing(d),
            last_modifier_identity=d.last_modifier,
        )
        info.version_summaries.extend(
            self._summary(namespace_id, d, v) for v in sorted(d.versions.values(), key=lambda v: -v.create_time)
        )
        return info


def _version_ref(d: dep.Deployment, build_id: str) -> WorkerDeploymentVersion | None:
    """The version as a message; None for the unversioned workers (Temporal leaves it unset)."""
    return None if build_id == dep.UNVERSIONED else WorkerDeploymentVersion(deployment_name=d.name, build_id=build_id)


def _status(d: dep.Deployment, v: dep.Version) -> int:
    S = WorkerDeploymentVersionStatus
    if v.build_id == d.current:
        return S.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT
    if v.build_id == d.ramping:
        return S.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING
    if v.drainage == dep.DRAINING:
        return S.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING
    if v.drainage == dep.DRAINED:
        return S.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED
    return S.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE


def _drainage(v: dep.Version) -> VersionDrainageInfo:
    return VersionDrainageInfo(
        status=VersionDrainageStatus.ValueType(v.drainage), last_changed_time=_ts(v.drainage_changed), last_checked_time=_ts(v.drainage_checked)
    )


def _metadata(entries: dict[str, str]) -> VersionMetadata:
    return VersionMetadata(entries={k: Payload.FromString(bytes.fromhex(v)) for k, v in entries.items()})


def _routing(d: dep.Deployment) -> RoutingConfig:
    r = RoutingConfig(
        current_version=d.version_name(d.current),
        ramping_version="" if d.ramping is None else d.version_name(d.ramping),
        ramping_version_percentage=d.ramp,
        current_version_changed_time=_ts(d.current_changed),
        ramping_version_changed_time=_ts(d.ramping_changed),
        ramping_version_percentage_changed_time=_ts(d.ramp_changed),
    )
    _set(r, "current_deployment_version", _version_ref(d, d.current))
    if d.ramping is not None:
        _set(r, "ramping_deployment_version", _version_ref(d, d.ramping))
    return r


def _version_info(d: dep.Deployment, v: dep.Version) -> WorkerDeploymentVersionInfo:
    info = WorkerDeploymentVersionInfo(
        version=d.version_name(v.build_id),
        deployment_name=d.name,
        create_time=timestamp(v.create_time),
        routing_changed_time=_ts(v.routing_changed),
        current_since_time=_ts(v.current_since),
        ramping_since_time=_ts(v.ramping_since),
        ramp_percentage=v.ramp,
        metadata=_metadata(v.metadata),
    )
    _set(info, "deployment_version", _version_ref(d, v.build_id))
    _set(info, "status", _status(d, v))
    _set(info, "first_activation_time", _ts(v.first_activation))
    _set(info, "last_deactivation_time", _ts(v.last_deactivation))
    info.task_queue_infos.extend(
        WorkerDeploymentVersionInfo.VersionTaskQueueInfo(name=q, type=t) for q, t in v.task_queues
    )
    if v.drainage:
        info.drainage_info.CopyFrom(_drainage(v))
    return info
