"""FrontendService: the one place requests are validated, namespaces resolved and callers let in.

Both doors (gRPC and REST) call it with WorkflowService request protos and get response protos
back; errors are ``odin.errors`` exceptions. Its calls are grouped by subject in the modules of
this package.
"""

from __future__ import annotations

from odin.frontend.activities import ActivityCalls
from odin.frontend.activity_executions import ActivityExecutionCalls
from odin.frontend.batches import BatchCalls
from odin.frontend.common import DEFAULT_RETENTION, HISTORY_LONG_POLL, MAX_ID_LENGTH, check_id
from odin.frontend.deployments import DeploymentCalls
from odin.frontend.namespaces import NamespaceCalls
from odin.frontend.schedules import ScheduleCalls
from odin.frontend.visibility import VisibilityCalls, keyword_payload, visibility_info
from odin.frontend.workers import WorkerCalls
from odin.frontend.workflows import WorkflowCalls, execution_info, pending_activity

__all__ = [
    "DEFAULT_RETENTION",
    "HISTORY_LONG_POLL",
    "MAX_ID_LENGTH",
    "FrontendService",
    "check_id",
    "execution_info",
    "keyword_payload",
    "pending_activity",
    "visibility_info",
]


class FrontendService(
    NamespaceCalls, WorkflowCalls, VisibilityCalls, WorkerCalls, ScheduleCalls, ActivityCalls, ActivityExecutionCalls,
    BatchCalls, DeploymentCalls,
):
    """Every call of both doors; the parts it works with are set up by ``FrontendBase``."""
