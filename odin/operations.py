"""The operations a caller can make: the WorkflowService and OperatorService methods Odin serves.

An operation's name is the gRPC method's; the REST routes and the web UI name the method they
stand for. The gate authorizes, rate-limits and audits a call by it (``odin.security.auth.OPERATIONS``
says what each needs), and the gRPC door routes by it (``odin.api.grpc.server._RPCS``).
"""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    """A served method; each member's name is its value, the method name on the wire."""

    # WorkflowService
    GetSystemInfo = "GetSystemInfo"
    GetClusterInfo = "GetClusterInfo"
    ListTaskQueuePartitions = "ListTaskQueuePartitions"
    RegisterNamespace = "RegisterNamespace"
    DescribeNamespace = "DescribeNamespace"
    ListNamespaces = "ListNamespaces"
    UpdateNamespace = "UpdateNamespace"
    StartWorkflowExecution = "StartWorkflowExecution"
    SignalWithStartWorkflowExecution = "SignalWithStartWorkflowExecution"
    GetWorkflowExecutionHistory = "GetWorkflowExecutionHistory"
    PollWorkflowTaskQueue = "PollWorkflowTaskQueue"
    RespondWorkflowTaskCompleted = "RespondWorkflowTaskCompleted"
    RespondWorkflowTaskFailed = "RespondWorkflowTaskFailed"
    PollActivityTaskQueue = "PollActivityTaskQueue"
    RecordActivityTaskHeartbeat = "RecordActivityTaskHeartbeat"
    RespondActivityTaskCompleted = "RespondActivityTaskCompleted"
    RespondActivityTaskFailed = "RespondActivityTaskFailed"
    RespondActivityTaskCanceled = "RespondActivityTaskCanceled"
    SignalWorkflowExecution = "SignalWorkflowExecution"
    QueryWorkflow = "QueryWorkflow"
    RespondQueryTaskCompleted = "RespondQueryTaskCompleted"
    DescribeWorkflowExecution = "DescribeWorkflowExecution"
    RequestCancelWorkflowExecution = "RequestCancelWorkflowExecution"
    TerminateWorkflowExecution = "TerminateWorkflowExecution"
    ResetWorkflowExecution = "ResetWorkflowExecution"
    ShutdownWorker = "ShutdownWorker"
    RecordActivityTaskHeartbeatById = "RecordActivityTaskHeartbeatById"
    RespondActivityTaskCompletedById = "RespondActivityTaskCompletedById"
    RespondActivityTaskFailedById = "RespondActivityTaskFailedById"
    RespondActivityTaskCanceledById = "RespondActivityTaskCanceledById"
    ResetStickyTaskQueue = "ResetStickyTaskQueue"
    DescribeTaskQueue = "DescribeTaskQueue"
    DeleteWorkflowExecution = "DeleteWorkflowExecution"
    GetWorkflowExecutionHistoryReverse = "GetWorkflowExecutionHistoryReverse"
    ListWorkflowExecutions = "ListWorkflowExecutions"
    UpdateWorkflowExecution = "UpdateWorkflowExecution"
    PollWorkflowExecutionUpdate = "PollWorkflowExecutionUpdate"
    ExecuteMultiOperation = "ExecuteMultiOperation"
    ScanWorkflowExecutions = "ScanWorkflowExecutions"
    ListOpenWorkflowExecutions = "ListOpenWorkflowExecutions"
    ListClosedWorkflowExecutions = "ListClosedWorkflowExecutions"
    CountWorkflowExecutions = "CountWorkflowExecutions"
    GetSearchAttributes = "GetSearchAttributes"
    CreateSchedule = "CreateSchedule"
    DescribeSchedule = "DescribeSchedule"
    UpdateSchedule = "UpdateSchedule"
    PatchSchedule = "PatchSchedule"
    DeleteSchedule = "DeleteSchedule"
    ListSchedules = "ListSchedules"
    ListScheduleMatchingTimes = "ListScheduleMatchingTimes"
    # OperatorService
    AddSearchAttributes = "AddSearchAttributes"
    ListSearchAttributes = "ListSearchAttributes"
    RemoveSearchAttributes = "RemoveSearchAttributes"
    DeleteNamespace = "DeleteNamespace"
