"""The schedule calls: CreateSchedule, DescribeSchedule, UpdateSchedule, PatchSchedule,
DeleteSchedule, ListSchedules and ListScheduleMatchingTimes (docs/architecture.md#schedules).

Validation and messages follow Temporal's frontend (checked against Temporal Server 1.32); the
schedule itself lives in ``odin.history.scheduler``."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Memo, SearchAttributes
from temporalio.api.schedule.v1 import Schedule, ScheduleListEntry, ScheduleListInfo, ScheduleSpec
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.errors import InvalidArgument
from odin.frontend.base import FrontendBase
from odin.frontend.common import MAX_ID_LENGTH, MAX_LIST_PAGE, check_text, page_size
from odin.frontend.limits import limits_for
from odin.history.schedule_spec import InvalidScheduleSpec, compile_spec
from odin.history.schedules import (
    FUTURE_ACTIONS_FOR_LIST,
    RECENT_ACTIONS_FOR_LIST,
    action_result,
    conflict_token_bytes,
    conflict_token_value,
)
from odin.persistence.store import NamespaceRecord, ScheduleRecord
from odin.visibility import query as visibility_query
from odin.visibility import search_attributes
from odin.visibility.match import attribute_names, matches
from odin.visibility.search_attributes import SYSTEM_ATTRIBUTES, settable_types, values_of

# Temporal runs a schedule as the workflow "temporal-sys-scheduler:<schedule id>"; its id checks
# (and their messages) count that prefix.
_SCHEDULER_PREFIX = "temporal-sys-scheduler:"
# What ListSchedules may filter on besides the namespace's custom search attributes.
_SCHEDULE_ATTRIBUTES = {"ScheduleId": "Keyword", "TemporalSchedulePaused": "Bool"}


class ScheduleCalls(FrontendBase):
    async def _schedule_namespace(self, namespace: str, schedule_id: str) -> NamespaceRecord:
        ns = await self.namespace(namespace)
        if not schedule_id:
            raise InvalidArgument("Can't load workflow execution.  WorkflowId not set.")
        length = len(_SCHEDULER_PREFIX) + len(schedule_id.encode())
        if length > MAX_ID_LENGTH:
            raise InvalidArgument(f"WorkflowId exceeds maximum allowed length ({length}/{MAX_ID_LENGTH})")
        check_text(schedule_id, "ScheduleId")
        return ns

    async def _validate_schedule(self, ns: NamespaceRecord, schedule: Schedule) -> None:
        try:
            compile_spec(schedule.spec)
        except InvalidScheduleSpec as exc:
            raise InvalidArgument(exc.message) from None
        if schedule.action.HasField("start_workflow"):
            start = schedule.action.start_workflow
            if not start.workflow_type.name:
                raise InvalidArgument("WorkflowType is not set on request.")
            if not start.task_queue.name:
                raise InvalidArgument("missing task queue name")
            for text, what in ((start.workflow_id, "WorkflowId"), (start.workflow_type.name, "WorkflowType"), (start.task_queue.name, "TaskQueue")):
                check_text(text, what)
            if start.HasField("search_attributes"):
                start.search_attributes.CopyFrom(await self._valid_attributes(ns, start.search_attributes))
            limits = limits_for(ns)
            limits.check_blob(start.input.ByteSize(), "CreateSchedule input", ns.name)
            limits.check_memo(start.memo.ByteSize(), ns.name)

    async def _valid_attributes(self, ns: NamespaceRecord, attributes: SearchAttributes) -> SearchAttributes:
        types = settable_types(await self.engine.search_attributes.custom(ns.id))
        try:
            return search_attributes.validate(attributes, types)
        except search_attributes.InvalidSearchAttribute as exc:
            raise InvalidArgument(str(exc)) from None

    # -- calls -----------------------------------------------------------------------------

    async def create_schedule(self, req: ws.CreateScheduleRequest) -> ws.CreateScheduleResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        await self._validate_schedule(ns, req.schedule)
        attributes = await self._valid_attributes(ns, req.search_attributes) if req.HasField("search_attributes") else None
        limits_for(ns).check_memo(req.memo.ByteSize(), ns.name)
        token = await self.engine.schedules.create(
            ns.id,
            req.schedule_id,
            req.schedule,
            req.initial_patch if req.HasField("initial_patch") else None,
            req.memo if req.HasField("memo") else None,
            attributes,
            req.request_id,
        )
        return ws.CreateScheduleResponse(conflict_token=conflict_token_bytes(token))

    async def describe_schedule(self, req: ws.DescribeScheduleRequest) -> ws.DescribeScheduleResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        loaded = await self.engine.schedules.load(ns.id, req.schedule_id)
        r = loaded.record
        return ws.DescribeScheduleResponse(
            schedule=loaded.machine.schedule,
            info=loaded.machine.info(),
            memo=Memo.FromString(r.memo) if r.memo else None,
            search_attributes=SearchAttributes.FromString(r.search_attributes) if r.search_attributes else None,
            conflict_token=conflict_token_bytes(r.conflict_token),
        )

    async def update_schedule(self, req: ws.UpdateScheduleRequest) -> ws.UpdateScheduleResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        await self._validate_schedule(ns, req.schedule)
        attributes = await self._valid_attributes(ns, req.search_attributes) if req.HasField("search_attributes") else None
        await self.engine.schedules.update(
            ns.id,
            req.schedule_id,
            req.schedule,
            conflict_token_value(req.conflict_token),
            req.memo if req.HasField("memo") else None,
            attributes,
        )
        return ws.UpdateScheduleResponse()

    async def patch_schedule(self, req: ws.PatchScheduleRequest) -> ws.PatchScheduleResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        await self.engine.schedules.patch(ns.id, req.schedule_id, req.patch)
        return ws.PatchScheduleResponse()

    async def delete_schedule(self, req: ws.DeleteScheduleRequest) -> ws.DeleteScheduleResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        await self.engine.schedules.delete(ns.id, req.schedule_id)
        return ws.DeleteScheduleResponse()

    async def list_schedule_matching_times(
        self, req: ws.ListScheduleMatchingTimesRequest
    ) -> ws.ListScheduleMatchingTimesResponse:
        ns = await self._schedule_namespace(req.namespace, req.schedule_id)
        if not req.HasField("start_time") or not req.HasField("end_time"):
            raise InvalidArgument("missing or invalid query")
        loaded = await self.engine.schedules.load(ns.id, req.schedule_id)
        m = loaded.machine
        if m.spec is None:
            return ws.ListScheduleMatchingTimesResponse()
        start = req.start_time.ToDatetime(tzinfo=UTC)
        end = req.end_time.ToDatetime(tzinfo=UTC)
        times = m.spec.matching_times(start, end, m.seed)
        return ws.ListScheduleMatchingTimesResponse(start_time=[_timestamp(t) for t in times])

    async def list_schedules(self, req: ws.ListSchedulesRequest) -> ws.ListSchedulesResponse:
        ns = await self.namespace(req.namespace)
        custom = await self.engine.search_attributes.custom(ns.id)
        where = _parse_filter(req.query, custom)
        size = page_size(req.maximum_page_size, MAX_LIST_PAGE, MAX_LIST_PAGE)
        after = req.next_page_token.decode(errors="replace")
        entries: list[ScheduleListEntry] = []
        last = after
        while len(entries) < size:
            page = await self.store.list_schedules(ns.id, last, size)
            for record in page:
                last = record.schedule_id
                if where is None or matches(where, _filter_values(record, custom)):
                    entries.append(self._list_entry(record))
                    if len(entries) == size:
                        break
            if len(page) < size:
                last = ""
                break
        return ws.ListSchedulesResponse(schedules=entries, next_page_token=last.encode())

    def _list_entry(self, record: ScheduleRecord) -> ScheduleListEntry:
        m = self.engine.schedules.machine(record)
        spec = ScheduleSpec()
        spec.CopyFrom(m.schedule.spec)
        spec.ClearField("timezone_data")  # large and not useful in a list
        info = ScheduleListInfo(
            spec=spec,
            notes=m.schedule.state.notes,
            paused=m.schedule.state.paused,
            recent_actions=[action_result(a) for a in m.rt.recent[-RECENT_ACTIONS_FOR_LIST:]],
            future_action_times=[_timestamp(datetime.fromtimestamp(t, UTC)) for t in m.future_action_times(FUTURE_ACTIONS_FOR_LIST)],
        )
        if m.schedule.action.HasField("start_workflow"):
            info.workflow_type.CopyFrom(m.schedule.action.start_workflow.workflow_type)
        return ScheduleListEntry(
            schedule_id=record.schedule_id,
            memo=Memo.FromString(record.memo) if record.memo else Memo(),
            search_attributes=SearchAttributes.FromString(record.search_attributes) if record.search_attributes else None,
            info=info,
        )


def _timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


# -- ListSchedules filters ------------------------------------------------------------------


def _parse_filter(text: str, custom: dict[str, int]):
    if not text.strip():
        return None
    try:
        query = visibility_query.parse(text)
    except visibility_query.QueryError as exc:
        raise InvalidArgument(f"invalid query: {exc}") from None
    if query.order_by or query.group_by:
        raise InvalidArgument("invalid query filter for schedules: ORDER BY and GROUP BY are not supported")
    for name in attribute_names(query.where):
        if name in _SCHEDULE_ATTRIBUTES or name in custom:
            continue
        if name in SYSTEM_ATTRIBUTES:
            raise InvalidArgument(f'invalid query filter for schedules: cannot filter on "{name}"')
        raise InvalidArgument(f"invalid query: invalid search attribute: {name}")
    return query.where


def _filter_values(record: ScheduleRecord, custom: dict[str, int]) -> dict[str, list]:
    values: dict[str, list] = {"ScheduleId": [record.schedule_id], "TemporalSchedulePaused": [bool(record.paused)]}
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
