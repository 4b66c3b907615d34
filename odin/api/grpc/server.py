"""A thin adapter: WorkflowService protos in, FrontendService call, protos out.

RPCs not listed in ``_RPCS`` (or ``_OPERATOR_RPCS``) answer UNIMPLEMENTED.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from temporalio.api.operatorservice.v1 import service_pb2 as operator_pb2
from temporalio.api.operatorservice.v1 import service_pb2_grpc as operator_grpc
from temporalio.api.workflowservice.v1 import service_pb2, service_pb2_grpc

from odin import tracing
from odin.api.tls import ReloadingCredentials, TlsFiles
from odin.errors import OdinError, infrastructure_error
from odin.frontend import FrontendService
from odin.operations import Operation

log = logging.getLogger(__name__)

SERVICE_NAME = "temporal.api.workflowservice.v1.WorkflowService"
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
# The largest request accepted, as Temporal's frontend (RESOURCE_EXHAUSTED beyond it).
MAX_RECEIVE_BYTES = 4 * 1024 * 1024
# Without a client deadline, answer long polls well inside the SDK's own 70 s.
DEFAULT_TIMEOUT = 65.0

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
    # A taken port must fail the start, not be shared with another server (grpc's default).
    ("grpc.so_reuseport", 0),
]

Call = Callable[[FrontendService, Any, float], Awaitable[Any]]


async def _system_info(f: FrontendService, req, timeout: float):
    return f.system_info()


def _plain(method: str) -> Call:
    async def call(f: FrontendService, req, timeout: float):
        return await getattr(f, method)(req)

    return call


def _timed(method: str) -> Call:
    async def call(f: FrontendService, req, timeout: float):
        return await getattr(f, method)(req, timeout)

    return call


_RPCS: dict[Operation, Call] = {
    Operation.GetSystemInfo: _system_info,
    Operation.GetClusterInfo: _plain("get_cluster_info"),
    Operation.ListTaskQueuePartitions: _plain("list_task_queue_partitions"),
    Operation.RegisterNamespace: _plain("register_namespace"),
    Operation.DescribeNamespace: _plain("describe_namespace"),
    Operation.ListNamespaces: _plain("list_namespaces"),
    Operation.UpdateNamespace: _plain("update_namespace"),
    Operation.StartWorkflowExecution: _plain("start_workflow_execution"),
    Operation.SignalWithStartWorkflowExecution: _plain("signal_with_start_workflow_execution"),
    Operation.GetWorkflowExecutionHistory: _timed("get_workflow_execution_history"),
    Operation.PollWorkflowTaskQueue: _timed("poll_workflow_task_queue"),
    Operation.RespondWorkflowTaskCompleted: _plain("respond_workflow_task_completed"),
    Operation.RespondWorkflowTaskFailed: _plain("respond_workflow_task_failed"),
    Operation.PollActivityTaskQueue: _timed("poll_activity_task_queue"),
    Operation.RecordActivityTaskHeartbeat: _plain("record_activity_task_heartbeat"),
    Operation.RespondActivityTaskCompleted: _plain("respond_activity_task_completed"),
    Operation.RespondActivityTaskFailed: _plain("respond_activity_task_failed"),
    Operation.RespondActivityTaskCanceled: _plain("respond_activity_task_canceled"),
    Operation.SignalWorkflowExecution: _plain("signal_workflow_execution"),
    Operation.QueryWorkflow: _timed("query_workflow"),
    Operation.RespondQueryTaskCompleted: _plain("respond_query_task_completed"),
    Operation.DescribeWorkflowExecution: _plain("describe_workflow_execution"),
    Operation.RequestCancelWorkflowExecution: _plain("request_cancel_workflow_execution"),
    Operation.TerminateWorkflowExecution: _plain("terminate_workflow_execution"),
    Operation.ResetWorkflowExecution: _plain("reset_workflow_execution"),
    Operation.ShutdownWorker: _plain("shutdown_worker"),
    Operation.RecordActivityTaskHeartbeatById: _plain("record_activity_task_heartbeat_by_id"),
    Operation.RespondActivityTaskCompletedById: _plain("respond_activity_task_completed_by_id"),
    Operation.RespondActivityTaskFailedById: _plain("respond_activity_task_failed_by_id"),
    Operation.RespondActivityTaskCanceledById: _plain("respond_activity_task_canceled_by_id"),
    Operation.ResetStickyTaskQueue: _plain("reset_sticky_task_queue"),
    Operation.DescribeTaskQueue: _plain("describe_task_queue"),
    Operation.DeleteWorkflowExecution: _plain("delete_workflow_execution"),
    Operation.GetWorkflowExecutionHistoryReverse: _plain("get_workflow_execution_history_reverse"),
    Operation.ListWorkflowExecutions: _plain("list_workflow_executions"),
    Operation.UpdateWorkflowExecution: _timed("update_workflow_execution"),
    Operation.PollWorkflowExecutionUpdate: _timed("poll_workflow_execution_update"),
    Operation.ExecuteMultiOperation: _timed("execute_multi_operation"),
    Operation.ScanWorkflowExecutions: _plain("scan_workflow_executions"),
    Operation.ListOpenWorkflowExecutions: _plain("list_open_workflow_executions"),
    Operation.ListClosedWorkflowExecutions: _plain("list_closed_workflow_executions"),
    Operation.CountWorkflowExecutions: _plain("count_workflow_executions"),
    Operation.GetSearchAttributes: _plain("get_search_attributes"),
    Operation.CreateSchedule: _plain("create_schedule"),
    Operation.DescribeSchedule: _plain("describe_schedule"),
    Operation.UpdateSchedule: _plain("update_schedule"),
    Operation.PatchSchedule: _plain("patch_schedule"),
    Operation.DeleteSchedule: _plain("delete_schedule"),
    Operation.ListSchedules: _plain("list_schedules"),
    Operation.ListScheduleMatchingTimes: _plain("list_schedule_matching_times"),
    Operation.PauseActivity: _plain("pause_activity"),
    Operation.UnpauseActivity: _plain("unpause_activity"),
    Operation.ResetActivity: _plain("reset_activity"),
    Operation.UpdateActivityOptions: _plain("update_activity_options"),
    Operation.PauseActivityExecution: _plain("pause_activity_execution"),
    Operation.UnpauseActivityExecution: _plain("unpause_activity_execution"),
    Operation.ResetActivityExecution: _plain("reset_activity_execution"),
    Operation.UpdateActivityExecutionOptions: _plain("update_activity_execution_options"),
    Operation.StartActivityExecution: _plain("start_activity_execution"),
    Operation.DescribeActivityExecution: _timed("describe_activity_execution"),
    Operation.PollActivityExecution: _timed("poll_activity_execution"),
    Operation.ListActivityExecutions: _plain("list_activity_executions"),
    Operation.CountActivityExecutions: _plain("count_activity_executions"),
    Operation.RequestCancelActivityExecution: _plain("request_cancel_activity_execution"),
    Operation.TerminateActivityExecution: _plain("terminate_activity_execution"),
    Operation.DeleteActivityExecution: _plain("delete_activity_execution"),
    Operation.RecordWorkerHeartbeat: _plain("record_worker_heartbeat"),
    Operation.ListWorkers: _plain("list_workers"),
    Operation.CountWorkers: _plain("count_workers"),
    Operation.DescribeWorker: _plain("describe_worker"),
    Operation.StartBatchOperation: _plain("start_batch_operation"),
    Operation.DescribeBatchOperation: _plain("describe_batch_operation"),
    Operation.ListBatchOperations: _plain("list_batch_operations"),
    Operation.StopBatchOperation: _plain("stop_batch_operation"),
    Operation.DescribeWorkerDeployment: _plain("describe_worker_deployment"),
    Operation.ListWorkerDeployments: _plain("list_worker_deployments"),
    Operation.DeleteWorkerDeployment: _plain("delete_worker_deployment"),
    Operation.SetWorkerDeploymentCurrentVersion: _plain("set_worker_deployment_current_version"),
    Operation.SetWorkerDeploymentRampingVersion: _plain("set_worker_deployment_ramping_version"),
    Operation.DescribeWorkerDeploymentVersion: _plain("describe_worker_deployment_version"),
    Operation.DeleteWorkerDeploymentVersion: _plain("delete_worker_deployment_version"),
    Operation.UpdateWorkerDeploymentVersionMetadata: _plain("update_worker_deployment_version_metadata"),
    Operation.UpdateWorkflowExecutionOptions: _plain("update_workflow_execution_options"),
}


class PortUnavailable(OSError):
    """A server port could not be bound."""


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def to_status(err: OdinError) -> grpc.Status:
    status = status_pb2.Status(code=grpc.StatusCode[err.code].value[0], message=err.message)
    if err.detail is not None:
        detail = AnyProto()
        detail.Pack(err.detail)
        status.details.append(detail)
    converted = rpc_status.to_status(status)
    if err.retry_after is None:
        return converted
    # A retry hint beside the details (seconds), like HTTP's Retry-After.
    metadata = tuple(converted.trailing_metadata) + (("retry-after", f"{err.retry_after:.3f}"),)
    return _Status(converted.code, converted.details, metadata)


def _target(request) -> str:
    """The workflow (or schedule) a request is about, for the audit log."""
    for field in ("workflow_id", "execution", "workflow_execution", "schedule_id"):
        if request.DESCRIPTOR.fields_by_name.get(field) is None:
            continue
        value = getattr(request, field)
        return value if isinstance(value, str) else value.workflow_id
    return ""


def _method(name: Operation, call: Call, service: str = SERVICE_NAME):
    async def handler(self, request, context: grpc.aio.ServicerContext):
        if tracing.enabled:  # a span per call, continuing the caller's trace (odin/tracing.py)
            metadata = dict(context.invocation_metadata() or ())
            with tracing.rpc_span(service, name.value, request, metadata) as span:
                span.set_attribute("odin.workflow_id", _target(request))
                return await serve(self, request, context)
        return await serve(self, request, context)

    async def serve(self, request, context: grpc.aio.ServicerContext):
        remaining = context.time_remaining()
        timeout = DEFAULT_TIMEOUT if remaining is None else remaining
        metadata = dict(context.invocation_metadata() or ())
        fields = request.DESCRIPTOR.fields_by_name
        try:
            return await self.frontend.gate.serve(
                name,
                metadata.get("authorization"),
                request.namespace if "namespace" in fields else None,
                lambda: call(self.frontend, request, timeout),
                identity=request.identity if "identity" in fields else None,
                target=_target(request),
            )
        except OdinError as err:
            await context.abort_with_status(to_status(err))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            transient = infrastructure_error(exc)
            if transient is not None:
                log.warning("%s: %s (%r)", name, transient.message, exc)
                await context.abort_with_status(to_status(transient))
            log.exception("%s failed", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}")

    handler.__name__ = name.value
    return handler


# OperatorService: the search-attribute registry (the rest answers UNIMPLEMENTED).
_OPERATOR_RPCS: dict[Operation, Call] = {
    Operation.AddSearchAttributes: _plain("add_search_attributes"),
    Operation.ListSearchAttributes: _plain("list_search_attributes"),
    Operation.RemoveSearchAttributes: _plain("remove_search_attributes"),
    Operation.DeleteNamespace: _plain("delete_namespace"),
}


class WorkflowService(service_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, frontend: FrontendService):
        self.frontend = frontend


class OperatorService(operator_grpc.OperatorServiceServicer):
    def __init__(self, frontend: FrontendService):
        self.frontend = frontend


def _unimplemented(service: str, name: str):
    # The generated servicer's default raises NotImplementedError, which grpc logs as an error
    # with a traceback on every call; a plain UNIMPLEMENTED status is all there is to say.
    async def handler(self, request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{service}/{name} is not implemented by this server.")

    handler.__name__ = name
    return handler


for _cls, _descriptor, _calls in (
    (WorkflowService, service_pb2.DESCRIPTOR.services_by_name["WorkflowService"], _RPCS),
    (OperatorService, operator_pb2.DESCRIPTOR.services_by_name["OperatorService"], _OPERATOR_RPCS),
):
    _served = {op.value: op for op in _calls}
    for _rpc in _descriptor.methods:
        _op = _served.get(_rpc.name)
        setattr(
            _cls, _rpc.name, _method(_op, _calls[_op], _descriptor.full_name) if _op else _unimplemented(_descriptor.name, _rpc.name)
        )


def build_grpc_server(
    frontend: FrontendService, host: str, port: int, tls: TlsFiles | None = None
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with the WorkflowService, OperatorService and health; returns it and the
    bound port. With ``tls`` the port speaks TLS (mutual if a client CA is given)."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    service_pb2_grpc.add_WorkflowServiceServicer_to_server(WorkflowService(frontend), server)
    operator_grpc.add_OperatorServiceServicer_to_server(OperatorService(frontend), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{host}:{port}"
    bound = _add_port(server, address, tls) if not port_taken(host, port) else 0
    if bound == 0:
        raise PortUnavailable(f"cannot listen on {address} for gRPC: the port is in use or not ours to take (choose another with --grpc-port)")
    server.health_servicer = health_servicer  # type: ignore[attr-defined]
    return server, bound


def _add_port(server: grpc.aio.Server, address: str, tls: TlsFiles | None) -> int:
    """Bind the port; 0 when grpc could not."""
    try:
        if tls is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, ReloadingCredentials(tls).server_credentials())
    except RuntimeError:
        return 0


def port_taken(host: str, port: int) -> bool:
    """Whether another socket already listens on this address (checked before grpc binds, whose
    own failure also logs a native error line; SO_REUSEADDR as grpc sets it)."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False  # let grpc report the unresolvable address
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


async def mark_serving(server: grpc.aio.Server) -> None:
    hs = server.health_servicer  # type: ignore[attr-defined]
    for name in ("", SERVICE_NAME):
        await hs.set(name, health_pb2.HealthCheckResponse.SERVING)
