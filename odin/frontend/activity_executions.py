"""Standalone activities: StartActivityExecution, DescribeActivityExecution, PollActivityExecution,
ListActivityExecutions, CountActivityExecutions, RequestCancelActivityExecution,
TerminateActivityExecution and DeleteActivityExecution (docs/architecture.md#standalone-activities).
Validated here; the changes are ``odin.history.activity_executions`` / ``standalone``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.activity.v1 import ActivityExecutionInfo, ActivityExecutionListInfo, ActivityExecutionOutcome
from temporalio.api.common.v1 import ActivityType, Header, Payload, Payloads, Priority, SearchAttributes
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import ActivityIdConflictPolicy, ActivityIdReusePolicy
from temporalio.api.failure.v1 import Failure
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.clock import monotonic
from odin.errors import FailedPrecondition, InvalidArgument
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_ID_LENGTH, MAX_LIST_PAGE, check_enum, check_id, check_text, offset_token, page_size
from odin.frontend.limits import limits_for
from odin.history import activity_ops, retry, standalone
from odin.history.activity_executions import wake_key
from odin.history.events import duration, seconds, timestamp
from odin.history.standalone import StandaloneActivity
from odin.history.state import unpack
from odin.ids import new_id
from odin.persistence.store import ActivityExecutionRecord
from odin.visibility import query as visibility_query
from odin.visibility import search_attributes
from odin.visibility.match import attribute_names, matches
from odin.visibility.search_attributes import settable_types, values_of

# Longest PollActivityExecution / a DescribeActivityExecution long poll wait (Temporal's
# activity.longPollTimeout), less a second before the caller's deadline.
LONG_POLL = 20.0
# The attributes a standalone-activity list filter may name, besides the namespace's own.
_ATTRIBUTES = ("ActivityId", "ActivityType", "ExecutionStatus", "TaskQueue", "StartTime", "CloseTime", "RunId")


class ActivityExecutionCalls(FrontendBase):
    """The calls on standalone activities."""

    async def start_activity_execution(self, req: ws.StartActivityExecutionRequest) -> ws.StartActivityExecutionResponse:
        ns = await self.namespace(req.namespace)
        # Temporal's wordings for a missing id, type or queue.
        if not req.activity_id:
            raise InvalidArgument("activityId is not set")
        check_id(req.activity_id, "ActivityId")
        if not req.activity_type.name:
            raise InvalidArgument("activityType is not set")
        check_id(req.activity_type.name, "ActivityType")
        if not req.task_queue.name:
            raise InvalidArgument("missing task queue name")
        check_id(req.task_queue.name, "TaskQueue")
        if len(req.request_id) > MAX_ID_LENGTH:
            raise InvalidArgument("RequestId exceeds length limit.")
        check_text(req.request_id, "RequestId")
        if len(req.identity) > MAX_ID_LENGTH:
            raise InvalidArgument(f"Identity exceeds length limit of {MAX_ID_LENGTH}.")
        check_enum(ActivityIdReusePolicy, req.id_reuse_policy, "IdReusePolicy")
        check_enum(ActivityIdConflictPolicy, req.id_conflict_policy, "IdConflictPolicy")
        if req.HasField("priority") and req.priority.priority_key < 0:
            raise InvalidArgument("PriorityKey cannot be negative.")
        s2c, s2s = seconds(req.schedule_to_close_timeout), seconds(req.schedule_to_start_timeout)
        stc, hb = seconds(req.start_to_close_timeout), seconds(req.heartbeat_timeout)
        for name, value in (
            ("ScheduleToCloseTimeout", s2c),
            ("ScheduleToStartTimeout", s2s),
            ("StartToCloseTimeout", stc),
            ("HeartbeatTimeout", hb),
        ):
            if value < 0:
                raise InvalidArgument(f"invalid {name}: negative duration")
        start_delay = seconds(req.start_delay) if req.HasField("start_delay") else 0.0
        if start_delay < 0:
            raise InvalidArgument("invalid StartDelay: negative duration")
        # Temporal's rules: schedule-to-close bounds the others; without it start-to-close is needed.
        if s2c > 0:
            s2s = min(s2s or s2c, s2c)
            stc = min(stc or s2c, s2c)
        elif stc <= 0:
            raise InvalidArgument(
                "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity."
                f" ActivityId={req.activity_id} ActivityType={req.activity_type.name}"
            )
        if stc and hb > stc:
            hb = stc
        try:
            policy = retry.normalize(req.retry_policy if req.HasField("retry_policy") else None)
        except retry.InvalidRetryPolicy as exc:
            raise InvalidArgument(str(exc)) from exc
        attributes = None
        if req.HasField("search_attributes") and req.search_attributes.indexed_fields:
            types = settable_types(await self.engine.search_attributes.custom(ns.id))
            try:
                attributes = search_attributes.validate(req.search_attributes, types)
            except search_attributes.InvalidSearchAttribute as exc:
                raise InvalidArgument(str(exc)) from exc
        limits_for(ns).check_blob(req.input.ByteSize(), "StartActivityExecution input", ns.name)
        request_id = req.request_id or new_id()
        now = self.clock.now()

        def build(run_id: str) -> standalone.ActivityTransition:
            return standalone.new_activity(
                namespace_id=ns.id,
                namespace=ns.name,
                activity_id=req.activity_id,
                run_id=run_id,
                request_id=request_id,
                identity=req.identity,
                activity_type=req.activity_type.name,
                task_queue=req.task_queue.name,
                schedule_to_close=s2c,
                schedule_to_start=s2s,
                start_to_close=stc,
                heartbeat=hb,
                retry=retry.info_of(policy),
                start_delay=start_delay,
                input=req.input if req.HasField("input") else None,
                header=req.header if req.HasField("header") else None,
                user_metadata=req.user_metadata if req.HasField("user_metadata") else None,
                priority=req.priority if req.HasField("priority") else None,
                search_attributes=attributes,
                now=now,
            )

        run_id, started = await self.engine.activity_executions.start(
            ns.id, req.activity_id, request_id, req.id_reuse_policy, req.id_conflict_policy, build
        )
        return ws.StartActivityExecutionResponse(run_id=run_id, started=started)

    async def describe_activity_execution(
        self, req: ws.DescribeActivityExecutionRequest, timeout: float
    ) -> ws.DescribeActivityExecutionResponse:
        ns, activity_id, run_id = await self._activity(req.namespace, req.activity_id, req.run_id)
        loaded = await self.engine.activity_executions.load(ns.id, activity_id, run_id)
        if req.long_poll_token:
            # Wait for a change past the one the token names (or the end of the budget).
            try:
                seen = int(req.long_poll_token)
            except ValueError:
                raise InvalidArgument("Invalid long poll token.") from None
            deadline = monotonic() + min(LONG_POLL, max(timeout - 1.0, 0.0))
            async with self.engine.notifier.subscribe(wake_key(ns.id, activity_id)) as sub:
                while loaded.activity.transitions <= seen and monotonic() < deadline:
                    await sub.wait(deadline - monotonic())
                    loaded = await self.engine.activity_executions.load(ns.id, activity_id, run_id)
        act = loaded.activity
        response = ws.DescribeActivityExecutionResponse(
            run_id=act.run_id, info=_info(act, loaded.record), long_poll_token=str(act.transitions).encode()
        )
        payloads = unpack(Payloads, act.input)
        if req.include_input and payloads is not None:
            response.input.CopyFrom(payloads)
        if req.include_outcome and not act.running:
            response.outcome.CopyFrom(_outcome(act))
        if not _optional(req, "include_heartbeat_details", True):
            response.info.ClearField("heartbeat_details")
        if not _optional(req, "include_last_failure", True):
            response.info.ClearField("last_failure")
        return response

    async def poll_activity_execution(
        self, req: ws.PollActivityExecutionRequest, timeout: float
    ) -> ws.PollActivityExecutionResponse:
        """Wait for the activity's outcome; an answer without one means "not yet, ask again"."""
        ns, activity_id, run_id = await self._activity(req.namespace, req.activity_id, req.run_id)
        deadline = monotonic() + min(LONG_POLL, max(timeout - 1.0, 0.0))
        async with self.engine.notifier.subscribe(wake_key(ns.id, activity_id)) as sub:
            while True:
                act = (await self.engine.activity_executions.load(ns.id, activity_id, run_id)).activity
                if not act.running:
                    return ws.PollActivityExecutionResponse(run_id=act.run_id, outcome=_outcome(act))
                run_id = act.run_id  # the run being waited for, even if the id starts another
                if monotonic() >= deadline:
                    return ws.PollActivityExecutionResponse()  # not yet (Temporal answers empty too)
                await sub.wait(deadline - monotonic())

    async def list_activity_executions(self, req: ws.ListActivityExecutionsRequest) -> ws.ListActivityExecutionsResponse:
        ns = await self.namespace(req.namespace)
        custom = await self.engine.search_attributes.custom(ns.id)
        where = _parse_filter(req.query, custom, count=False)
        size = page_size(req.page_size, MAX_LIST_PAGE, MAX_LIST_PAGE)
        offset = offset_token(req.next_page_token)
        found: list[ActivityExecutionListInfo] = []
        while len(found) < size:
            page = await self.store.list_activity_executions(ns.id, offset, size)
            for record in page:
                offset += 1
                if where is None or matches(where, _filter_values(record, custom)):
                    found.append(_list_info(record))
                    if len(found) == size:
                        break
            if len(page) < size and len(found) < size:
                offset = 0
                break
        return ws.ListActivityExecutionsResponse(executions=found, next_page_token=str(offset).encode() if offset else b"")

    async def count_activity_executions(self, req: ws.CountActivityExecutionsRequest) -> ws.CountActivityExecutionsResponse:
        ns = await self.namespace(req.namespace)
        custom = await self.engine.search_attributes.custom(ns.id)
        query = _parse(req.query)
        where = _parse_filter(req.query, custom, count=True)
        group_by = list(query.group_by) if query is not None else []
        for name in group_by:
            if name != "ExecutionStatus":
                raise InvalidArgument(
                    f"invalid query: operation is not supported: 'GROUP BY' clause is not supported for search attribute {name}"
                )
        total = 0
        groups: dict[str, int] = {}
        offset = 0
        while True:
            page = await self.store.list_activity_executions(ns.id, offset, MAX_LIST_PAGE)
            offset += len(page)
            for record in page:
                if where is None or matches(where, _filter_values(record, custom)):
                    total += 1
                    name = standalone.STATUS_NAMES.get(record.status, "Unspecified")
                    groups[name] = groups.get(name, 0) + 1
            if len(page) < MAX_LIST_PAGE:
                break
        response = ws.CountActivityExecutionsResponse(count=total)
        if group_by:
            for name, count in sorted(groups.items(), key=lambda item: -item[1]):
                response.groups.add(group_values=[_keyword(name)], count=count)
        return response

    async def request_cancel_activity_execution(
        self, req: ws.RequestCancelActivityExecutionRequest
    ) -> ws.RequestCancelActivityExecutionResponse:
        ns, activity_id, run_id = await self._activity(req.namespace, req.activity_id, req.run_id)
        _check_reason(req.identity, req.reason, req.request_id)
        request_id = req.request_id or new_id()
        try:
            await self.engine.activity_executions.update(
                ns.id, activity_id, run_id, lambda t: standalone.request_cancel(t, req.reason, req.identity, request_id)
            )
        except standalone.Closed as closed:
            raise FailedPrecondition(str(closed)) from None
        return ws.RequestCancelActivityExecutionResponse()

    async def terminate_activity_execution(
        self, req: ws.TerminateActivityExecutionRequest
    ) -> ws.TerminateActivityExecutionResponse:
        ns, activity_id, run_id = await self._activity(req.namespace, req.activity_id, req.run_id)
        _check_reason(req.identity, req.reason, req.request_id)
        request_id = req.request_id or new_id()
        try:
            await self.engine.activity_executions.update(
                ns.id, activity_id, run_id, lambda t: standalone.terminate(t, req.reason, req.identity, request_id)
            )
        except standalone.Closed as closed:
            raise FailedPrecondition(str(closed)) from None
        return ws.TerminateActivityExecutionResponse()

    async def delete_activity_execution(self, req: ws.DeleteActivityExecutionRequest) -> ws.DeleteActivityExecutionResponse:
        ns, activity_id, run_id = await self._activity(req.namespace, req.activity_id, req.run_id)
        await self.engine.activity_executions.delete(ns.id, activity_id, run_id)
        return ws.DeleteActivityExecutionResponse()

    async def _activity(self, namespace: str, activity_id: str, run_id: str):
        ns = await self.namespace(namespace)
        check_id(activity_id, "ActivityId")
        if run_id:
            try:
                uuid.UUID(run_id)
            except ValueError:
                raise InvalidArgument("invalid run id: must be a valid UUID") from None
        return ns, activity_id, run_id


def _check_reason(identity: str, reason: str, request_id: str) -> None:
    if len(identity) > MAX_ID_LENGTH:
        raise InvalidArgument(f"Identity exceeds length limit of {MAX_ID_LENGTH}.")
    if len(request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("RequestId exceeds length limit.")
    check_text(reason, "Reason")


def _optional(req, name: str, default: bool) -> bool:
    """A flag only some API versions have (``default`` when the field is absent)."""
    return getattr(req, name) if name in req.DESCRIPTOR.fields_by_name else default


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    t = Timestamp()
    t.FromDatetime(value)
    return t


def _outcome(act: StandaloneActivity) -> ActivityExecutionOutcome:
    if act.status == Status.ACTIVITY_EXECUTION_STATUS_COMPLETED:
        return ActivityExecutionOutcome(result=unpack(Payloads, act.result) or Payloads())
    outcome = ActivityExecutionOutcome(failure=unpack(Failure, act.failure) or Failure())
    if "retry_state" in ActivityExecutionOutcome.DESCRIPTOR.fields_by_name and act.retry_state:
        outcome.retry_state = act.retry_state  # type: ignore[assignment]
    return outcome


def _info(act: StandaloneActivity, record: ActivityExecutionRecord) -> ActivityExecutionInfo:
    a = act.info
    info = ActivityExecutionInfo(
        activity_id=act.activity_id,
        run_id=act.run_id,
        activity_type=ActivityType(name=a.activity_type),
        status=standalone.shown_status(act),  # type: ignore[arg-type]
        run_state=standalone.run_state(act),  # type: ignore[arg-type]
        task_queue=a.task_queue,
        schedule_to_close_timeout=duration(a.schedule_to_close),
        schedule_to_start_timeout=duration(a.schedule_to_start),
        start_to_close_timeout=duration(a.start_to_close),
        heartbeat_timeout=duration(a.heartbeat),
        retry_policy=activity_ops.retry_policy_of(a.retry),
        heartbeat_details=unpack(Payloads, a.heartbeat_details),
        last_heartbeat_time=timestamp(a.last_heartbeat_time) if a.last_heartbeat_time else None,
        last_started_time=timestamp(a.started_time) if a.started_time else None,
        attempt=a.attempt,
        schedule_time=timestamp(act.start_time),
        expiration_time=timestamp(a.first_scheduled_time + a.schedule_to_close) if a.schedule_to_close else None,
        close_time=timestamp(act.close_time) if act.close_time else None,
        last_failure=unpack(Failure, a.last_failure),
        last_worker_identity=a.last_worker_identity,
        last_attempt_complete_time=timestamp(a.last_attempt_complete_time) if a.last_attempt_complete_time else None,
        priority=unpack(Priority, act.priority) or Priority(),
        state_transition_count=act.transitions,
        state_size_bytes=len(record.state),
        search_attributes=unpack(SearchAttributes, act.search_attributes) or SearchAttributes(),
        total_heartbeat_count=act.heartbeats,
        header=unpack(Header, act.header),
        user_metadata=unpack(UserMetadata, act.user_metadata),
        canceled_reason=act.canceled_reason,
    )
    if act.running and not a.started and a.scheduled_time > act.start_time:
        info.next_attempt_schedule_time.CopyFrom(timestamp(a.scheduled_time))
    if act.close_time:
        info.execution_duration.CopyFrom(duration(max(act.close_time - act.start_time, 0.0)))
    if act.start_delay:
        info.start_delay.CopyFrom(duration(act.start_delay))
    info.execution_time.CopyFrom(timestamp(act.start_time + act.start_delay))
    return info


def _list_info(record: ActivityExecutionRecord) -> ActivityExecutionListInfo:
    info = ActivityExecutionListInfo(
        activity_id=record.activity_id,
        run_id=record.run_id,
        activity_type=ActivityType(name=record.activity_type),
        schedule_time=_ts(record.start_time),
        close_time=_ts(record.close_time),
        status=record.status,  # type: ignore[arg-type]
        search_attributes=SearchAttributes.FromString(record.search_attributes) if record.search_attributes else SearchAttributes(),
        task_queue=record.task_queue,
        state_transition_count=record.db_version,
        state_size_bytes=len(record.state),
    )
    act = StandaloneActivity.from_bytes(record.state)
    info.execution_time.CopyFrom(timestamp(act.start_time + act.start_delay))
    if record.close_time is not None:
        info.execution_duration.CopyFrom(duration(max((record.close_time - record.start_time).total_seconds(), 0.0)))
    return info


def _keyword(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=f'"{value}"'.encode())


def _parse(text: str):
    if not text.strip():
        return None
    try:
        return visibility_query.parse(text)
    except visibility_query.QueryError as exc:
        raise InvalidArgument(f"invalid query: {exc}") from None


def _parse_filter(text: str, custom: dict[str, int], count: bool):
    query = _parse(text)
    if query is None:
        return None
    for name in attribute_names(query.where):
        if name not in _ATTRIBUTES and name not in custom:
            raise InvalidArgument(f"invalid query: invalid search attribute: {name}")
    return query.where


def _filter_values(record: ActivityExecutionRecord, custom: dict[str, int]) -> dict[str, list]:
    values: dict[str, list] = {
        "ActivityId": [record.activity_id],
        "RunId": [record.run_id],
        "ActivityType": [record.activity_type],
        "ExecutionStatus": [standalone.STATUS_NAMES.get(record.status, "Unspecified")],
        "TaskQueue": [record.task_queue],
        "StartTime": [record.start_time.astimezone(UTC)],
    }
    if record.close_time is not None:
        values["CloseTime"] = [record.close_time.astimezone(UTC)]
    if record.search_attributes:
        for name, payload in SearchAttributes.FromString(record.search_attributes).indexed_fields.items():
            type_ = custom.get(name)
            if type_ is None:
                continue
            try:
                typed = values_of(name, type_, payload)
            except search_attributes.InvalidSearchAttribute:
                continue
            values[name] = [next(x for x in (v.text, v.integer, v.double, v.time) if x is not None) for v in typed]
    return values
