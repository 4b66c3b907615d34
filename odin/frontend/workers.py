"""What SDK workers call: polls, task completions, heartbeats, task queues."""

from __future__ import annotations

import socket
import uuid
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.deployment.v1 import WorkerDeploymentOptions
from temporalio.api.enums.v1 import (
    BuildIdTaskReachability,
    DescribeTaskQueueMode,
    TaskQueueKind,
    TaskQueueType,
    WorkerVersioningMode,
)
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.failure.v1 import Failure
from temporalio.api.query.v1 import WorkflowQueryResult
from temporalio.api.taskqueue.v1 import (
    PollerInfo,
    TaskQueue,
    TaskQueuePartitionMetadata,
    TaskQueueStats,
    TaskQueueStatus,
    TaskQueueTypeInfo,
)
from temporalio.api.worker.v1 import WorkerHeartbeat, WorkerInfo, WorkerListInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import InvalidArgument, NotFound
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_LIST_PAGE, check_enum, check_id, offset_token, page_size
from odin.frontend.limits import (
    FAILURE_TOO_LARGE,
    HEARTBEAT_TOO_LARGE,
    RESULT_TOO_LARGE,
    Limits,
    limits_for,
    oversized_failure,
)
from odin.history import activities, operations, standalone, tokens
from odin.history.events import duration, timestamp
from odin.history.routing import versioned_queue
from odin.matching import ACTIVITY, WORKFLOW, QueueStats
from odin.matching import PollerInfo as QueuePoller
from odin.matching.workers import worker_matches
from odin.visibility.query import QueryError
from odin.visibility.query import parse as parse_query

DEFAULT_WORKERS_PAGE = 1000
# The largest worker heartbeat kept (a real one is a few hundred bytes).
MAX_WORKER_HEARTBEAT_BYTES = 64 * 1024


class WorkerCalls(FrontendBase):
    # -- worker calls ----------------------------------------------------------------------

    def _poll_timeout(self, timeout: float) -> float:
        return max(min(self.long_poll_seconds, timeout - 1.0), 0.0)

    async def poll_workflow_task_queue(
        self, req: ws.PollWorkflowTaskQueueRequest, timeout: float
    ) -> ws.PollWorkflowTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.task_queue.name, "TaskQueue")
        task_queue = req.task_queue
        if req.HasField("deployment_options") and task_queue.kind != TaskQueueKind.TASK_QUEUE_KIND_STICKY:
            physical = await self.deployments.register_poller(ns.id, req.deployment_options, task_queue.name, WORKFLOW)
            if physical != task_queue.name:  # a versioned worker takes its version's tasks
                task_queue = TaskQueue(name=physical, kind=task_queue.kind)
        return await self.tasks.poll_workflow_task(
            ns.id, ns.name, task_queue, req.identity, self._poll_timeout(timeout), limits_for(ns).continue_as_new
        )

    async def poll_activity_task_queue(
        self, req: ws.PollActivityTaskQueueRequest, timeout: float
    ) -> ws.PollActivityTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.task_queue.name, "TaskQueue")
        rate = None
        if req.HasField("task_queue_metadata") and req.task_queue_metadata.HasField("max_tasks_per_second"):
            rate = req.task_queue_metadata.max_tasks_per_second.value
            if not rate > 0:  # NaN too
                raise InvalidArgument("TaskQueueMetadata.MaxTasksPerSecond must be positive.")
        queue = req.task_queue.name
        if req.HasField("deployment_options"):
            queue = await self.deployments.register_poller(ns.id, req.deployment_options, queue, ACTIVITY)
        return await self.tasks.poll_activity_task(
            ns.id, ns.name, queue, req.identity, self._poll_timeout(timeout), rate
        )

    async def respond_workflow_task_completed(
        self, req: ws.RespondWorkflowTaskCompletedRequest
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        limits = await self._limits(req.namespace, req.task_token)
        eager = await self.tasks.respond_workflow_task_completed(req, limits.pending, limits.sizes)
        return ws.RespondWorkflowTaskCompletedResponse(activity_tasks=eager)

    async def respond_workflow_task_failed(
        self, req: ws.RespondWorkflowTaskFailedRequest
    ) -> ws.RespondWorkflowTaskFailedResponse:
        await self._token_in_namespace(req.namespace, req.task_token)
        await self.tasks.respond_workflow_task_failed(req.task_token, req.cause, req.failure, req.identity)
        return ws.RespondWorkflowTaskFailedResponse()

    async def respond_query_task_completed(
        self, req: ws.RespondQueryTaskCompletedRequest
    ) -> ws.RespondQueryTaskCompletedResponse:
        await self._token_in_namespace(req.namespace, req.task_token)
        await self.tasks.respond_query_task_completed(
            req.task_token,
            WorkflowQueryResult(
                result_type=req.completed_type, answer=req.query_result, error_message=req.error_message, failure=req.failure
            ),
        )
        return ws.RespondQueryTaskCompletedResponse()

    async def record_activity_task_heartbeat(
        self, req: ws.RecordActivityTaskHeartbeatRequest
    ) -> ws.RecordActivityTaskHeartbeatResponse:
        limits = await self._limits(req.namespace, req.task_token)
        answer = await self.tasks.activity_update(req.task_token, _heartbeat(limits, req, "RecordActivityTaskHeartbeat"))
        return ws.RecordActivityTaskHeartbeatResponse(
            cancel_requested=answer.cancel_requested, activity_paused=answer.paused, activity_reset=answer.reset
        )

    async def respond_activity_task_completed(
        self, req: ws.RespondActivityTaskCompletedRequest
    ) -> ws.RespondActivityTaskCompletedResponse:
        limits = await self._limits(req.namespace, req.task_token)
        await self.tasks.activity_update(req.task_token, _completion(limits, req, "RespondActivityTaskCompleted"))
        return ws.RespondActivityTaskCompletedResponse()

    async def respond_activity_task_failed(
        self, req: ws.RespondActivityTaskFailedRequest
    ) -> ws.RespondActivityTaskFailedResponse:
        limits = await self._limits(req.namespace, req.task_token)
        failure, details = _bounded_failure(limits, req.namespace, req.failure, req.last_heartbeat_details)
        await self.tasks.activity_update(req.task_token, lambda t, a: activities.failed(t, a, failure, req.identity, details))
        return ws.RespondActivityTaskFailedResponse()

    async def respond_activity_task_canceled(
        self, req: ws.RespondActivityTaskCanceledRequest
    ) -> ws.RespondActivityTaskCanceledResponse:
        await self._token_in_namespace(req.namespace, req.task_token)
        await self.tasks.activity_update(req.task_token, lambda t, a: activities.report_canceled(t, a, req.details, req.identity))
        return ws.RespondActivityTaskCanceledResponse()

    async def _limits(self, namespace: str, task_token: bytes) -> Limits:
        """Check the token belongs to the request's namespace; that namespace's size limits."""
        await self._token_in_namespace(namespace, task_token)
        return limits_for(await self.namespace(namespace)) if namespace else Limits()

    async def _token_in_namespace(self, namespace: str, task_token: bytes) -> None:
        """A task token works only in the namespace named on the request (which the caller was
        let into): a worker of one namespace cannot complete another's tasks."""
        token = tokens.decode(
            task_token,
            (tokens.WorkflowTaskToken, tokens.ActivityTaskToken, tokens.StandaloneActivityTaskToken, tokens.QueryTaskToken),
        )
        if namespace and (await self.namespace(namespace)).id != token.namespace_id:
            raise InvalidArgument(f"Task token does not belong to namespace {namespace}.")

    # -- activities addressed by id (async completion) ------------------------------------

    async def _activity_by_id(self, req, apply) -> Any:
        """Apply to the activity a request names by id: a workflow's (workflow id set) or, without
        a workflow id, a standalone activity (its run id optional)."""
        ns = await self.namespace(req.namespace)
        if req.workflow_id:
            check_id(req.workflow_id, "WorkflowId")
        check_id(req.activity_id, "ActivityId")
        if req.run_id:
            try:
                uuid.UUID(req.run_id)
            except ValueError:
                raise InvalidArgument("Invalid RunId.") from None
        if not req.workflow_id:
            result, _ = await self.engine.activity_executions.update(
                ns.id, req.activity_id, req.run_id, lambda t: apply(t, standalone.attempt_by_id(t))
            )
            return result

        return await operations.on_started_activity(self.engine, ns.id, req.workflow_id, req.run_id, req.activity_id, apply)

    async def record_activity_task_heartbeat_by_id(
        self, req: ws.RecordActivityTaskHeartbeatByIdRequest
    ) -> ws.RecordActivityTaskHeartbeatByIdResponse:
        limits = limits_for(await self.namespace(req.namespace))
        answer = await self._activity_by_id(req, _heartbeat(limits, req, "RecordActivityTaskHeartbeatById"))
        return ws.RecordActivityTaskHeartbeatByIdResponse(
            cancel_requested=answer.cancel_requested, activity_paused=answer.paused, activity_reset=answer.reset
        )

    async def respond_activity_task_completed_by_id(
        self, req: ws.RespondActivityTaskCompletedByIdRequest
    ) -> ws.RespondActivityTaskCompletedByIdResponse:
        limits = limits_for(await self.namespace(req.namespace))
        await self._activity_by_id(req, _completion(limits, req, "RespondActivityTaskCompletedById"))
        return ws.RespondActivityTaskCompletedByIdResponse()

    async def respond_activity_task_failed_by_id(
        self, req: ws.RespondActivityTaskFailedByIdRequest
    ) -> ws.RespondActivityTaskFailedByIdResponse:
        limits = limits_for(await self.namespace(req.namespace))
        failure, details = _bounded_failure(limits, req.namespace, req.failure, req.last_heartbeat_details)
        await self._activity_by_id(req, lambda t, a: activities.failed(t, a, failure, req.identity, details))
        return ws.RespondActivityTaskFailedByIdResponse()

    async def respond_activity_task_canceled_by_id(
        self, req: ws.RespondActivityTaskCanceledByIdRequest
    ) -> ws.RespondActivityTaskCanceledByIdResponse:
        await self._activity_by_id(req, lambda t, a: activities.report_canceled(t, a, req.details, req.identity))
        return ws.RespondActivityTaskCanceledByIdResponse()

    # -- task queues and stickiness --------------------------------------------------------

    async def reset_sticky_task_queue(self, req: ws.ResetStickyTaskQueueRequest) -> ws.ResetStickyTaskQueueResponse:
        ns, wid, rid = await self._target(req.namespace, req.execution)
        await operations.reset_sticky(self.engine, ns.id, wid, rid)
        return ws.ResetStickyTaskQueueResponse()

    async def describe_task_queue(self, req: ws.DescribeTaskQueueRequest) -> ws.DescribeTaskQueueResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.task_queue.name, "TaskQueue")
        if req.api_mode == DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED:
            return await self._describe_task_queue_enhanced(ns.id, req)
        kind = ACTIVITY if req.task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY else WORKFLOW
        queues = self.engine.queues
        backlog = await queues.backlog(ns.id, req.task_queue.name, kind)
        return ws.DescribeTaskQueueResponse(
            pollers=await self._pollers(ns.id, req.task_queue.name, kind),
            task_queue_status=TaskQueueStatus(backlog_count_hint=backlog, rate_per_second=100_000.0)
            if req.include_task_queue_status
            else None,
        )

    async def _describe_task_queue_enhanced(self, namespace_id: str, req: ws.DescribeTaskQueueRequest) -> ws.DescribeTaskQueueResponse:
        """The enhanced form (``temporal task-queue describe``): per build id and task type, pollers
        and stats, and reachability. Odin has no worker versioning, so every poller and task is
        unversioned (build id ""); a build id asked for has no pollers, no tasks, and nothing can
        reach it."""
        for task_type in req.task_queue_types:
            check_enum(TaskQueueType, task_type, "TaskQueueTypes")
        types = list(req.task_queue_types) or [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
        selection = req.versions
        build_ids = ([""] if not req.HasField("versions") or selection.unversioned or selection.all_active else [])
        build_ids += [b for b in selection.build_ids if b and b not in build_ids]
        unversioned: dict[int, TaskQueueTypeInfo] = {}
        for task_type in types:
            info = TaskQueueTypeInfo()
            kind = _QUEUE_KINDS.get(task_type)  # Nexus: Odin has no such queue, so nothing to report
            if kind is not None and req.report_pollers:
                info.pollers.extend(await self._pollers(namespace_id, req.task_queue.name, kind))
            if req.report_stats:
                stats = await self.engine.queues.stats(namespace_id, req.task_queue.name, kind) if kind else None
                info.stats.CopyFrom(_stats(stats))
            unversioned[task_type] = info
        response = ws.DescribeTaskQueueResponse()
        for build_id in build_ids:
            version = response.versions_info[build_id]
            for task_type in types:
                version.types_info[task_type].CopyFrom(
                    unversioned[task_type] if not build_id else TaskQueueTypeInfo(stats=_stats(None) if req.report_stats else None)
                )
            if req.report_task_reachability:
                version.task_reachability = (
                    BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_REACHABLE
                    if not build_id
                    else BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_UNREACHABLE
                )
        return response

    async def _pollers(self, namespace_id: str, queue: str, kind: str) -> list[PollerInfo]:
        """A queue's recent pollers, most recent first: its unversioned workers' and those of each
        deployment version that polls it (with their deployment options)."""
        queues = self.engine.queues
        found: list[tuple[QueuePoller, WorkerDeploymentOptions | None]] = [
            (p, None) for p in await queues.pollers(namespace_id, queue, kind)
        ]
        for name, build_id in await self.engine.routing.versions_of(namespace_id, queue, kind):
            options = WorkerDeploymentOptions(
                deployment_name=name, build_id=build_id,
                worker_versioning_mode=WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED,
            )
            found += [(p, options) for p in await queues.pollers(namespace_id, versioned_queue(queue, name, build_id), kind)]
        infos = []
        for p, deployment in sorted(found, key=lambda item: -item[0].last_access_time):
            info = _poller_infos([p])[0]
            if deployment is not None:
                info.deployment_options.CopyFrom(deployment)
            infos.append(info)
        return infos

    async def shutdown_worker(self, req: ws.ShutdownWorkerRequest) -> ws.ShutdownWorkerResponse:
        ns = await self.namespace(req.namespace)
        if req.sticky_task_queue:
            await operations.return_sticky_tasks(self.engine, ns.id, req.sticky_task_queue)
        if req.worker_heartbeat.worker_instance_key:
            # The worker's last word about itself (status SHUTTING_DOWN or SHUTDOWN) stays listed.
            await self.workers.record(ns.id, _bounded_heartbeat(req.worker_heartbeat))
        return ws.ShutdownWorkerResponse()

    # -- worker heartbeats -----------------------------------------------------------------

    async def record_worker_heartbeat(self, req: ws.RecordWorkerHeartbeatRequest) -> ws.RecordWorkerHeartbeatResponse:
        ns = await self.namespace(req.namespace)
        for heartbeat in req.worker_heartbeat:
            # Heartbeats without a key name no worker (Temporal accepts and drops them too).
            if heartbeat.worker_instance_key:
                await self.workers.record(ns.id, _bounded_heartbeat(heartbeat))
        return ws.RecordWorkerHeartbeatResponse()

    async def _workers_matching(self, namespace: str, query: str) -> list[WorkerHeartbeat]:
        ns = await self.namespace(namespace)
        try:
            where = parse_query(query).where if query.strip() else None
        except QueryError as exc:
            raise InvalidArgument(f"malformed query: {exc}") from None
        return [hb for hb in await self.workers.list(ns.id) if worker_matches(where, hb)]

    async def list_workers(self, req: ws.ListWorkersRequest) -> ws.ListWorkersResponse:
        found = await self._workers_matching(req.namespace, req.query)
        offset = offset_token(req.next_page_token)
        size = page_size(req.page_size, DEFAULT_WORKERS_PAGE, MAX_LIST_PAGE)
        page = found[offset : offset + size]
        more = offset + size < len(found)
        return ws.ListWorkersResponse(
            workers_info=[WorkerInfo(worker_heartbeat=hb) for hb in page],
            workers=[worker_list_info(hb) for hb in page],
            next_page_token=str(offset + size).encode() if more else b"",
        )

    async def count_workers(self, req: ws.CountWorkersRequest) -> ws.CountWorkersResponse:
        return ws.CountWorkersResponse(count=len(await self._workers_matching(req.namespace, req.query)))

    async def describe_worker(self, req: ws.DescribeWorkerRequest) -> ws.DescribeWorkerResponse:
        ns = await self.namespace(req.namespace)
        check_id(req.worker_instance_key, "WorkerInstanceKey")
        heartbeat = await self.workers.get(ns.id, req.worker_instance_key)
        if heartbeat is None:
            raise NotFound(f"Worker {req.worker_instance_key} not found", NotFoundFailure())
        return ws.DescribeWorkerResponse(worker_info=WorkerInfo(worker_heartbeat=heartbeat))


    async def list_task_queue_partitions(
        self, req: ws.ListTaskQueuePartitionsRequest
    ) -> ws.ListTaskQueuePartitionsResponse:
        await self.namespace(req.namespace)
        check_id(req.task_queue.name, "TaskQueue")
        # One partition per queue type, served by every frontend process.
        partition = TaskQueuePartitionMetadata(key=req.task_queue.name, owner_host_name=socket.gethostname())
        return ws.ListTaskQueuePartitionsResponse(
            activity_task_queue_partitions=[partition], workflow_task_queue_partitions=[partition]
        )


_QUEUE_KINDS = {TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW: WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY: ACTIVITY}


def _poller_infos(pollers: list[QueuePoller]) -> list[PollerInfo]:
    """A queue's recent pollers, most recent first (each may take 100,000 tasks a second, the
    rate Temporal reports for a poller that set none)."""
    return [
        PollerInfo(identity=p.identity, last_access_time=timestamp(p.last_access_time), rate_per_second=100_000.0)
        for p in sorted(pollers, key=lambda p: -p.last_access_time)
    ]


def _stats(stats: QueueStats | None) -> TaskQueueStats:
    """A queue's stats as Temporal reports them (zero for a queue that cannot exist here)."""
    if stats is None:
        return TaskQueueStats(approximate_backlog_age=duration(0))
    return TaskQueueStats(
        approximate_backlog_count=stats.backlog,
        approximate_backlog_age=duration(stats.backlog_age),
        tasks_add_rate=stats.add_rate,
        tasks_dispatch_rate=stats.dispatch_rate,
    )



def worker_list_info(hb: WorkerHeartbeat) -> WorkerListInfo:
    """The summary ListWorkers gives of a worker's heartbeat."""
    return WorkerListInfo(
        worker_instance_key=hb.worker_instance_key,
        worker_identity=hb.worker_identity,
        task_queue=hb.task_queue,
        deployment_version=hb.deployment_version if hb.HasField("deployment_version") else None,
        sdk_name=hb.sdk_name,
        sdk_version=hb.sdk_version,
        status=hb.status,
        start_time=hb.start_time if hb.HasField("start_time") else None,
        host_name=hb.host_info.host_name,
        worker_grouping_key=hb.host_info.worker_grouping_key,
        process_id=hb.host_info.process_id,
        plugins=hb.plugins,
        drivers=hb.drivers,
    )


def _bounded_heartbeat(hb: WorkerHeartbeat) -> WorkerHeartbeat:
    """A heartbeat fit to keep: a key of at most MAX_ID_LENGTH characters and a bounded size."""
    check_id(hb.worker_instance_key, "WorkerInstanceKey")
    if hb.ByteSize() > MAX_WORKER_HEARTBEAT_BYTES:
        raise InvalidArgument(f"WorkerHeartbeat exceeds size limit of {MAX_WORKER_HEARTBEAT_BYTES} bytes.")
    return hb


def _completion(limits: Limits, req, call: str):
    """How a completion by token or by id is recorded: as completed, or, with a result over the
    size limit, as a failure the workflow can see (as Temporal does)."""
    if limits.blob_ok(req.result.ByteSize(), f"{call} result", req.namespace):
        # No result is no result (not an empty list of payloads, which the SDKs refuse).
        result = req.result if req.HasField("result") else None
        return lambda t, a: activities.completed(t, a, result, req.identity)
    failure = oversized_failure(RESULT_TOO_LARGE)
    return lambda t, a: activities.failed(t, a, failure, req.identity, Payloads())


def _heartbeat(limits: Limits, req, call: str):
    """How a heartbeat by token or by id is recorded; it returns whether the worker should stop.
    Details over the size limit fail the attempt for good and tell the worker to stop (as
    Temporal does)."""
    if limits.blob_ok(req.details.ByteSize(), f"{call} details", req.namespace):
        return lambda t, a: activities.heartbeat(t, a, req.details)
    failure = oversized_failure(HEARTBEAT_TOO_LARGE)

    def fail(t, a) -> activities.HeartbeatAnswer:
        activities.failed(t, a, failure, req.identity, Payloads())
        return activities.HeartbeatAnswer(cancel_requested=True)

    return fail


def _bounded_failure(limits: Limits, namespace: str, failure: Failure, details: Payloads) -> tuple[Failure, Payloads]:
    """An activity failure and its last heartbeat details, with anything over the size limit
    replaced (an oversized failure by a non-retryable server failure saying so)."""
    if not limits.blob_ok(failure.ByteSize(), "activity failure", namespace):
        failure = oversized_failure(FAILURE_TOO_LARGE)
    if not limits.blob_ok(details.ByteSize(), "activity heartbeat details", namespace):
        details = Payloads()
    return failure, details
