"""Operator calls on a run's pending activities: PauseActivity, UnpauseActivity, ResetActivity,
UpdateActivityOptions (the changes themselves are ``odin.history.activity_ops``)."""

from __future__ import annotations

import random
import uuid

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import InvalidArgument
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_ID_LENGTH, check_text
from odin.history import activity_ops, operations
from odin.history.activity_ops import Selector
from odin.history.events import seconds
from odin.persistence.store import NamespaceRecord

# The longest pause reason kept (Temporal accepts any length; a reason is for people to read).
MAX_REASON_LENGTH = 1000
_TIMEOUT_NAMES = {
    "schedule_to_close_timeout": "ScheduleToCloseTimeout",
    "schedule_to_start_timeout": "ScheduleToStartTimeout",
    "start_to_close_timeout": "StartToCloseTimeout",
    "heartbeat_timeout": "HeartbeatTimeout",
}


class ActivityCalls(FrontendBase):
    """The operator's calls on pending activities: validated here, applied by one history operation each."""

    async def _run_of(self, namespace: str, execution: WorkflowExecution) -> tuple[NamespaceRecord, str, str]:
        """The run a request addresses (with Temporal's wording for a bad run id on these calls);
        a standalone activity's request (see ``_execution``) gives an empty workflow id."""
        if execution.run_id:
            try:
                uuid.UUID(execution.run_id)
            except ValueError:
                raise InvalidArgument("RunId is not valid UUID.") from None
        if execution.workflow_id == _STANDALONE:
            return await self.namespace(namespace), "", execution.run_id
        return await self._target(namespace, execution)

    async def pause_activity(self, req: ws.PauseActivityRequest) -> ws.PauseActivityResponse:
        ns, wid, rid = await self._run_of(req.namespace, req.execution)
        selector = _selector(req.id, req.type)
        if len(req.identity) > MAX_ID_LENGTH:
            raise InvalidArgument(f"Identity exceeds length limit of {MAX_ID_LENGTH}.")
        check_text(req.identity, "Identity")
        check_text(req.reason, "Reason")
        reason = req.reason[:MAX_REASON_LENGTH]
        await operations.pause_activity(self.engine, ns.id, wid, rid, selector, req.identity, reason)
        return ws.PauseActivityResponse()

    async def unpause_activity(self, req: ws.UnpauseActivityRequest) -> ws.UnpauseActivityResponse:
        ns, wid, rid = await self._run_of(req.namespace, req.execution)
        selector = _selector(req.id, req.type, req.unpause_all)
        delay = _jitter(req.jitter)
        await operations.unpause_activity(
            self.engine, ns.id, wid, rid, selector, req.reset_attempts, req.reset_heartbeat, delay
        )
        return ws.UnpauseActivityResponse()

    async def reset_activity(self, req: ws.ResetActivityRequest) -> ws.ResetActivityResponse:
        ns, wid, rid = await self._run_of(req.namespace, req.execution)
        selector = _selector(req.id, req.type, req.match_all)
        delay = _jitter(req.jitter)
        await operations.reset_activity(
            self.engine, ns.id, wid, rid, selector, req.reset_heartbeat, req.keep_paused, delay, req.restore_original_options
        )
        return ws.ResetActivityResponse()

    async def update_activity_options(self, req: ws.UpdateActivityOptionsRequest) -> ws.UpdateActivityOptionsResponse:
        ns, wid, rid = await self._run_of(req.namespace, req.execution)
        selector = _selector(req.id, req.type, req.match_all)
        paths: list[str] = []
        if not req.restore_original:
            if not req.HasField("activity_options"):
                raise InvalidArgument("ActivityOptions are not provided")
            if not req.HasField("update_mask"):
                raise InvalidArgument("UpdateMask is not provided")
            paths = activity_ops.normalized_paths(req.update_mask.paths)
            for field, name in _TIMEOUT_NAMES.items():
                if seconds(getattr(req.activity_options, field)) < 0:
                    raise InvalidArgument(f"invalid {name}: negative duration")
            if any(p.split(".")[0] == "task_queue" for p in paths):
                queue = req.activity_options.task_queue.name
                if len(queue) > MAX_ID_LENGTH:
                    raise InvalidArgument(f"TaskQueue exceeds length limit of {MAX_ID_LENGTH}.")
                check_text(queue, "TaskQueue")
        options = await operations.update_activity_options(
            self.engine, ns.id, wid, rid, selector, req.activity_options, paths, req.restore_original
        )
        return ws.UpdateActivityOptionsResponse(activity_options=options)


    # -- the same calls addressing one activity by workflow id and activity id ---------------
    # (what the ``temporal activity`` commands send). Without a workflow id they name a
    # standalone activity by its id (and run id).

    async def pause_activity_execution(self, req: ws.PauseActivityExecutionRequest) -> ws.PauseActivityExecutionResponse:
        await self.pause_activity(
            ws.PauseActivityRequest(
                namespace=req.namespace, execution=_execution(req), id=req.activity_id, identity=req.identity, reason=req.reason
            )
        )
        return ws.PauseActivityExecutionResponse()

    async def unpause_activity_execution(
        self, req: ws.UnpauseActivityExecutionRequest
    ) -> ws.UnpauseActivityExecutionResponse:
        await self.unpause_activity(
            ws.UnpauseActivityRequest(
                namespace=req.namespace, execution=_execution(req), id=req.activity_id, identity=req.identity, jitter=req.jitter,
                # Fields of older API versions only (temporalio 1.31's protos have them).
                reset_attempts=_optional(req, "reset_attempts"), reset_heartbeat=_optional(req, "reset_heartbeat"),
            )
        )
        return ws.UnpauseActivityExecutionResponse()

    async def reset_activity_execution(self, req: ws.ResetActivityExecutionRequest) -> ws.ResetActivityExecutionResponse:
        await self.reset_activity(
            ws.ResetActivityRequest(
                namespace=req.namespace,
                execution=_execution(req),
                id=req.activity_id,
                identity=req.identity,
                reset_heartbeat=_optional(req, "reset_heartbeat"),  # newer API versions only
                keep_paused=req.keep_paused,
                jitter=req.jitter,
                restore_original_options=req.restore_original_options,
            )
        )
        return ws.ResetActivityExecutionResponse()

    async def update_activity_execution_options(
        self, req: ws.UpdateActivityExecutionOptionsRequest
    ) -> ws.UpdateActivityExecutionOptionsResponse:
        if not req.restore_original and not req.HasField("activity_options"):
            raise InvalidArgument("ActivityOptions are not provided")
        response = await self.update_activity_options(
            ws.UpdateActivityOptionsRequest(
                namespace=req.namespace,
                execution=_execution(req),
                id=req.activity_id,
                identity=req.identity,
                activity_options=req.activity_options if req.HasField("activity_options") else None,
                update_mask=req.update_mask if req.HasField("update_mask") else None,
                restore_original=req.restore_original,
            )
        )
        return ws.UpdateActivityExecutionOptionsResponse(activity_options=response.activity_options)


def _execution(req) -> WorkflowExecution:
    """The run an ``...ActivityExecution`` request addresses; a workflow activity needs its ids."""
    if not req.activity_id:
        raise InvalidArgument("activity ID is required")
    return WorkflowExecution(workflow_id=req.workflow_id or _STANDALONE, run_id=req.run_id)


# The workflow id ``_execution`` gives a request for a standalone activity (a real workflow id
# never holds NUL).
_STANDALONE = "\x00standalone"


def _selector(activity_id: str, activity_type: str, match_all: bool = False) -> Selector:
    for value, what in ((activity_id, "ActivityId"), (activity_type, "ActivityType")):
        if len(value) > MAX_ID_LENGTH:
            raise InvalidArgument(f"{what} exceeds length limit of {MAX_ID_LENGTH}.")
        check_text(value, what)
    selector = Selector(activity_id, activity_type, match_all)
    selector.check()
    return selector


def _jitter(jitter: Duration) -> float:
    """The delay before the next attempt: a random point within ``jitter`` (none when zero or negative,
    which Temporal accepts)."""
    span = seconds(jitter)
    return random.uniform(0.0, span) if span > 0 else 0.0


def _optional(req, name: str) -> bool:
    """A boolean field the request's API version may not have (False when absent)."""
    return bool(getattr(req, name)) if name in req.DESCRIPTOR.fields_by_name else False
