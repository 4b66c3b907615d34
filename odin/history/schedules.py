"""What a schedule does at a given time (pure; docs/architecture.md#schedules).

A schedule is its ``temporal.api.schedule.v1.Schedule`` (spec, action, policies, state) plus the
runtime bookkeeping in ``ScheduleRuntime`` (stored as JSON beside it): the last time processed,
the buffer of starts waiting for their turn, the starts decided and about to be taken, the running
workflows it started, recent actions and counters. ``ScheduleMachine`` changes both the way
Temporal's scheduler workflow does (service/worker/scheduler): ``advance(now)`` buffers the spec's
times up to ``now`` (missing the ones older than the catchup window), ``next_start()`` applies the
overlap policies to the buffer and hands out the next start to take, ``run_closed`` handles a
started run's close (pause on failure). The engine (``odin.history.scheduler``) takes each start
in one transaction with the schedule's row.

Times are unix seconds (floats); ``now`` always comes in as an argument.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload, Payloads, SearchAttributes, WorkflowExecution
from temporalio.api.enums.v1 import ScheduleOverlapPolicy as Overlap
from temporalio.api.enums.v1 import TaskQueueKind, WorkflowIdReusePolicy
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.failure.v1 import Failure
from temporalio.api.schedule.v1 import Schedule, ScheduleActionResult, ScheduleInfo, SchedulePatch
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.history.schedule_spec import CompiledSpec, NextTime, ScheduleComputeLimit, compile_spec, jitter_seed

DEFAULT_CATCHUP_WINDOW = 365 * 24 * 3600.0
MIN_CATCHUP_WINDOW = 10.0
RECENT_ACTIONS = 10  # kept in DescribeSchedule's info
RECENT_ACTIONS_FOR_LIST = 5
FUTURE_ACTIONS = 10
FUTURE_ACTIONS_FOR_LIST = 5
MAX_BUFFER = 1000  # buffered starts beyond this are dropped (counted in buffer_dropped)
# A backfill is buffered this many starts at a time, into at most half the buffer, so that a
# backfill over years of a one-second spec is bounded work per step (as in Temporal).
BACKFILLS_PER_STEP = 10
# While starts wait for running workflows to close, the schedule looks again this often even if
# no close is reported (a lost cancel or terminate is then sent again).
RECHECK_SECONDS = 30.0
# A schedule that will never act again on its own (no more times, out of actions) and is not
# paused is deleted this long after its last event: creation, update or action (as in Temporal).
RETENTION_SECONDS = 7 * 24 * 3600.0
INITIAL_CONFLICT_TOKEN = 1
_FAILED = {Status.WORKFLOW_EXECUTION_STATUS_FAILED, Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT}


@dataclass
class BufferedStart:
    nominal: float
    actual: float
    overlap: int  # ScheduleOverlapPolicy; UNSPECIFIED resolves to the schedule's policy when processed
    manual: bool  # trigger immediately or backfill: ignores pause, limits and the catchup window
    seq: int  # numbers the schedule's starts: part of the start's request id


@dataclass
class Backfill:
    """A backfill not yet fully buffered: the spec's times in (start, end]."""

    start: float
    end: float
    overlap: int


@dataclass
class Action:
    schedule_time: float
    actual_time: float
    workflow_id: str
    run_id: str
    status: int = Status.WORKFLOW_EXECUTION_STATUS_RUNNING


@dataclass
class ScheduleRuntime:
    created: float
    last_processed: float
    updated: float = 0.0
    action_count: int = 0
    missed_catchup: int = 0
    overlap_skipped: int = 0
    buffer_dropped: int = 0
    seq: int = 0
    buffer: list[BufferedStart] = field(default_factory=list)
    # Starts already through the overlap policy, taken one transaction each.
    pending: list[BufferedStart] = field(default_factory=list)
    running: list[Action] = field(default_factory=list)
    recent: list[Action] = field(default_factory=list)
    backfills: list[Backfill] = field(default_factory=list)
    # The schedule's timer row (``timer_tasks``) and its fire time; a row with another id is stale.
    timer_task_id: str = ""
    timer_at: float = 0.0
    # The last result of a tracked run (Payloads) and the failure since (Failure), base64: the
    # next run gets them as last_completion_result / continued_failure.
    last_completion_result: str | None = None
    continued_failure: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ScheduleRuntime:
        raw = json.loads(text)
        rt = cls(**{k: v for k, v in raw.items() if k not in ("buffer", "pending", "running", "recent", "backfills")})
        rt.buffer = [BufferedStart(**b) for b in raw["buffer"]]
        rt.pending = [BufferedStart(**b) for b in raw["pending"]]
        rt.running = [Action(**a) for a in raw["running"]]
        rt.recent = [Action(**a) for a in raw["recent"]]
        rt.backfills = [Backfill(**b) for b in raw.get("backfills", ())]
        return rt


@dataclass
class Closed:
    """A started workflow that is no longer running, as the engine found it."""

    workflow_id: str
    status: int
    failure_message: str = ""
    result: bytes | None = None  # serialized Payloads of a completed run
    failure: bytes | None = None  # serialized Failure of a failed run


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def conflict_token_bytes(token: int) -> bytes:
    return token.to_bytes(8, "big", signed=True)


def conflict_token_value(data: bytes) -> int:
    """The token a client sent back; 0 (none, or unreadable) matches any version, as in Temporal."""
    return int.from_bytes(data, "big", signed=True) if len(data) == 8 else 0


def with_defaults(schedule: Schedule) -> Schedule:
    """The schedule as stored and described: default policies filled in, the task queue kind set."""
    out = Schedule()
    out.CopyFrom(schedule)
    p = out.policies
    if p.overlap_policy == Overlap.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED:
        p.overlap_policy = Overlap.SCHEDULE_OVERLAP_POLICY_SKIP
    if not p.HasField("catchup_window"):
        p.catchup_window.CopyFrom(Duration(seconds=int(DEFAULT_CATCHUP_WINDOW)))
    if out.action.HasField("start_workflow") and not out.action.start_workflow.task_queue.kind:
        out.action.start_workflow.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    out.state.SetInParent()
    return out


def scheduled_workflow_id(base: str, nominal: float, keep_original: bool) -> str:
    """``<workflow id>-<nominal time, RFC 3339 to the second>``, Temporal's id for a scheduled run."""
    if keep_original:
        return base
    return f"{base}-{_dt(nominal).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _json_payload(value: str, type_name: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain", "type": type_name.encode()}, data=json.dumps(value).encode())


class ScheduleMachine:
    def __init__(
        self, schedule: Schedule, runtime: ScheduleRuntime, conflict_token: int, namespace_id: str, schedule_id: str, now: float
    ):
        self.schedule = schedule
        self.rt = runtime
        self.conflict_token = conflict_token
        self.schedule_id = schedule_id
        self.seed = jitter_seed(namespace_id, schedule_id)
        self.now = now
        self.spec: CompiledSpec | None = compile_spec(schedule.spec) if _has_times(schedule) else None
        # Set by next_start: running workflows must be cancelled / terminated for a buffered start.
        self.need_cancel = False
        self.need_terminate = False

    # -- policies ---------------------------------------------------------------------------

    @property
    def catchup_window(self) -> float:
        p = self.schedule.policies
        if not p.HasField("catchup_window"):
            return DEFAULT_CATCHUP_WINDOW
        return max(p.catchup_window.seconds + p.catchup_window.nanos / 1e9, MIN_CATCHUP_WINDOW)

    def resolve(self, overlap: int) -> int:
        if overlap == Overlap.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED:
            overlap = self.schedule.policies.overlap_policy
        return overlap or Overlap.SCHEDULE_OVERLAP_POLICY_SKIP

    def can_take(self, manual: bool, decrement: bool = False) -> bool:
        """Whether a start may be taken now: manual ones always; others unless paused or out of actions."""
        st = self.schedule.state
        if manual:
            return True
        if st.paused:
            return False
        if not st.limited_actions:
            return True
        if st.remaining_actions > 0:
            if decrement:
                st.remaining_actions -= 1
                self.conflict_token += 1
            return True
        return False

    # -- times ------------------------------------------------------------------------------

    def _next(self, after: float) -> NextTime | None:
        if self.spec is None:
            return None
        try:
            return self.spec.next_time(_dt(after), self.seed)
        except ScheduleComputeLimit:
            return None

    def process_time_range(self, start: float, end: float, overlap: int, manual: bool, limit: int | None = None) -> float | None:
        """Buffer the spec's times in (start, end]; scheduled ones older than the catchup window
        are missed instead, and none are taken while paused or out of actions. With ``limit``,
        stops after buffering that many and returns the last time buffered (None once the range
        is done)."""
        if self.spec is None or not self.can_take(manual):
            return None
        t = start
        buffered = 0
        while True:
            nxt = self._next(t)
            if nxt is None or nxt.actual.timestamp() > end:
                return None
            actual, nominal = nxt.actual.timestamp(), nxt.nominal.timestamp()
            t = actual
            if not manual and self.rt.updated > actual:
                continue  # before the last update: the old spec's business
            if not manual and end - actual > self.catchup_window:
                self.rt.missed_catchup += 1
                continue
            self.add_start(nominal, actual, overlap, manual)
            buffered += 1
            if limit is not None and buffered >= limit:
                return actual

    def process_backfills(self) -> None:
        """Buffer the next starts of the backfills under way, a bounded number per call."""
        budget = BACKFILLS_PER_STEP
        while self.rt.backfills and budget > 0 and len(self.rt.buffer) < MAX_BUFFER // 2:
            b = self.rt.backfills[0]
            before = len(self.rt.buffer) + self.rt.buffer_dropped
            last = self.process_time_range(b.start, b.end, b.overlap, True, budget)
            budget -= len(self.rt.buffer) + self.rt.buffer_dropped - before
            if last is None:
                self.rt.backfills.pop(0)
            else:
                b.start = last

    def add_start(self, nominal: float, actual: float, overlap: int, manual: bool) -> None:
        if len(self.rt.buffer) >= MAX_BUFFER:
            self.rt.buffer_dropped += 1
            return
        self.rt.seq += 1
        self.rt.buffer.append(BufferedStart(nominal, actual, overlap, manual, self.rt.seq))

    def advance(self) -> None:
        """Buffer everything due between the last processed time and now."""
        start = self.rt.last_processed
        end = max(self.now, start)
        self.process_time_range(start, end, Overlap.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, False)
        self.rt.last_processed = end
        self.process_backfills()

    def future_action_times(self, n: int) -> list[float]:
        st = self.schedule.state
        if st.limited_actions:
            n = min(n, st.remaining_actions)
        out: list[float] = []
        t = self.rt.last_processed
        while len(out) < n:
            nxt = self._next(t)
            if nxt is None:
                break
            t = nxt.actual.timestamp()
            if self.rt.updated > t:
                continue
            out.append(t)
        return out

    def next_wakeup(self) -> float | None:
        """When the schedule must be looked at next: now if a start is decided or could be, else its
        next action time (none while paused or out of actions); sooner while starts wait; an idle
        schedule at its retention expiry."""
        if self.rt.pending or (self.rt.backfills and len(self.rt.buffer) < MAX_BUFFER // 2):
            return self.now
        times: list[float] = []
        if self.can_take(False):
            nxt = self._next(self.rt.last_processed)
            if nxt is not None:
                times.append(nxt.actual.timestamp())
        if self.rt.buffer:
            times.append(self.now if not self.rt.running else self.now + RECHECK_SECONDS)
        return min(times) if times else self.retention_expiry()

    def retention_expiry(self) -> float | None:
        """When an idle schedule is to be deleted; None while it may still act: paused, starts or
        backfills waiting, or spec times ahead that it may take."""
        rt = self.rt
        if self.schedule.state.paused or rt.pending or rt.buffer or rt.backfills:
            return None
        if self.can_take(False) and self._next(rt.last_processed) is not None:
            return None
        last_event = max(rt.created, rt.updated, *(a.actual_time for a in rt.recent[-1:]))
        return last_event + RETENTION_SECONDS

    def expired(self) -> bool:
        expiry = self.retention_expiry()
        return expiry is not None and expiry <= self.now

    # -- changes from callers ---------------------------------------------------------------

    def patch(self, patch: SchedulePatch) -> None:
        if patch.HasField("trigger_immediately"):
            trigger = patch.trigger_immediately
            at = self.now
            if trigger.HasField("scheduled_time"):
                at = trigger.scheduled_time.seconds + trigger.scheduled_time.nanos / 1e9 or self.now
            self.add_start(at, at, trigger.overlap_policy, True)
        for backfill in patch.backfill_request:
            start = backfill.start_time.seconds + backfill.start_time.nanos / 1e9 - 0.001  # inclusive start
            end = backfill.end_time.seconds + backfill.end_time.nanos / 1e9
            self.rt.backfills.append(Backfill(start, end, backfill.overlap_policy))
        self.process_backfills()
        if patch.pause:
            self.schedule.state.paused = True
            self.schedule.state.notes = patch.pause
            self.conflict_token += 1
        if patch.unpause:
            self.schedule.state.paused = False
            self.schedule.state.notes = patch.unpause
            self.conflict_token += 1

    def update(self, schedule: Schedule) -> None:
        """Replace spec, action, policies and state (info is kept); times before now are the old
        spec's and are not taken."""
        self.schedule = with_defaults(schedule)
        self.spec = compile_spec(self.schedule.spec) if _has_times(self.schedule) else None
        self.rt.updated = self.now
        self.conflict_token += 1

    # -- runs -------------------------------------------------------------------------------

    def run_closed(self, closed: Closed) -> None:
        """A started workflow closed: stop tracking it, note its status, pause on failure."""
        self.rt.running = [a for a in self.rt.running if a.workflow_id != closed.workflow_id]
        for a in self.rt.recent:
            if a.workflow_id == closed.workflow_id and a.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
                a.status = closed.status
        if closed.result is not None:
            self.rt.last_completion_result = base64.b64encode(closed.result).decode()
            self.rt.continued_failure = None
        elif closed.failure is not None:
            self.rt.continued_failure = base64.b64encode(closed.failure).decode()
        st = self.schedule.state
        if self.schedule.policies.pause_on_failure and closed.status in _FAILED and not st.paused:
            st.paused = True
            if closed.status == Status.WORKFLOW_EXECUTION_STATUS_FAILED:
                st.notes = f"paused due to workflow failure: {closed.workflow_id}: {closed.failure_message}"
            else:
                st.notes = f"paused due to workflow timeout: {closed.workflow_id}"
            self.conflict_token += 1

    def next_start(self) -> BufferedStart | None:
        """The next start to take now, if any. When ``pending`` is empty the buffer goes through
        the overlap policies first (Temporal's ProcessBuffer); the starts it lets through become
        ``pending``. Sets ``need_cancel`` / ``need_terminate``."""
        if not self.schedule.action.HasField("start_workflow"):
            self.rt.buffer = []
            self.rt.pending = []
            return None
        if not self.rt.pending and self.rt.buffer:
            self._process_buffer()
        while self.rt.pending:
            start = self.rt.pending.pop(0)
            if self.can_take(start.manual, decrement=True):
                return start
        return None

    def _process_buffer(self) -> None:
        running = bool(self.rt.running)
        overlapping: list[BufferedStart] = []
        first: BufferedStart | None = None
        new_buffer: list[BufferedStart] = []
        cancel = terminate = False
        for start in self.rt.buffer:
            policy = self.resolve(start.overlap)
            if policy == Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL:
                overlapping.append(start)
                continue
            if not running and first is None:
                first = start
                continue
            if policy == Overlap.SCHEDULE_OVERLAP_POLICY_SKIP:
                self.rt.overlap_skipped += 1
            elif policy == Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE:
                if not new_buffer:
                    new_buffer.append(start)
                else:
                    self.rt.overlap_skipped += 1
            elif policy == Overlap.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL:
                new_buffer.append(start)
            elif policy in (Overlap.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER, Overlap.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER):
                if running:
                    # Waits in the buffer until the running workflows are gone.
                    cancel |= policy == Overlap.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER
                    terminate |= policy == Overlap.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER
                    new_buffer.append(start)
                else:
                    first = start  # replaces the start not taken yet
        if cancel or terminate:
            overlapping = []  # they would be cancelled or terminated right away
        self.rt.buffer = new_buffer
        self.rt.pending = overlapping + ([first] if first is not None else [])
        self.need_terminate = terminate
        self.need_cancel = cancel and not terminate

    def start_request(self, start: BufferedStart, namespace: str, request_id: str) -> StartWorkflowExecutionRequest:
        """The StartWorkflowExecution request of a start (the schedule's action, as Temporal sends it)."""
        info = self.schedule.action.start_workflow
        nominal_second = int(start.nominal)
        fields = dict(info.search_attributes.indexed_fields)
        fields["TemporalScheduledStartTime"] = _json_payload(
            _dt(nominal_second).strftime("%Y-%m-%dT%H:%M:%SZ"), "Datetime"
        )
        fields["TemporalScheduledById"] = _json_payload(self.schedule_id, "Keyword")
        # Allow-all runs are not tracked, and get neither (as in Temporal).
        carry = self.resolve(start.overlap) != Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
        last_result = self.rt.last_completion_result if carry else None
        failure = self.rt.continued_failure if carry else None
        return StartWorkflowExecutionRequest(
            namespace=namespace,
            workflow_id=scheduled_workflow_id(
                info.workflow_id, nominal_second, self.schedule.policies.keep_original_workflow_id
            ),
            workflow_type=info.workflow_type,
            task_queue=info.task_queue,
            input=info.input if info.HasField("input") else None,
            workflow_execution_timeout=info.workflow_execution_timeout if info.HasField("workflow_execution_timeout") else None,
            workflow_run_timeout=info.workflow_run_timeout if info.HasField("workflow_run_timeout") else None,
            workflow_task_timeout=info.workflow_task_timeout if info.HasField("workflow_task_timeout") else None,
            identity=f"temporal-scheduler-{namespace}-{self.schedule_id}",
            request_id=request_id,
            workflow_id_reuse_policy=WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
            if start.manual
            else WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
            retry_policy=info.retry_policy if info.HasField("retry_policy") else None,
            memo=info.memo if info.HasField("memo") else None,
            search_attributes=SearchAttributes(indexed_fields=fields),
            header=info.header if info.HasField("header") else None,
            priority=info.priority if info.HasField("priority") else None,
            last_completion_result=Payloads.FromString(base64.b64decode(last_result)) if last_result else None,
            continued_failure=Failure.FromString(base64.b64decode(failure)) if failure else None,
        )

    def record_action(self, start: BufferedStart, workflow_id: str, run_id: str) -> None:
        action = Action(start.actual, self.now, workflow_id, run_id)
        self.rt.action_count += 1
        self.rt.recent = [*self.rt.recent, action][-RECENT_ACTIONS:]
        # Allow-all runs overlap by design and are not waited for (as in Temporal).
        if self.resolve(start.overlap) != Overlap.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL:
            self.rt.running.append(Action(**asdict(action)))

    # -- what callers see -------------------------------------------------------------------

    def info(self) -> ScheduleInfo:
        rt = self.rt
        info = ScheduleInfo(
            action_count=rt.action_count,
            missed_catchup_window=rt.missed_catchup,
            overlap_skipped=rt.overlap_skipped,
            buffer_dropped=rt.buffer_dropped,
            buffer_size=len(rt.buffer) + len(rt.pending),
            running_workflows=[WorkflowExecution(workflow_id=a.workflow_id, run_id=a.run_id) for a in rt.running],
            recent_actions=[action_result(a) for a in rt.recent],
            future_action_times=[_ts(t) for t in self.future_action_times(FUTURE_ACTIONS)],
            create_time=_ts(rt.created),
        )
        if rt.updated:
            info.update_time.CopyFrom(_ts(rt.updated))
        return info


def action_result(a: Action) -> ScheduleActionResult:
    return ScheduleActionResult(
        schedule_time=_ts(a.schedule_time),
        actual_time=_ts(a.actual_time),
        start_workflow_result=WorkflowExecution(workflow_id=a.workflow_id, run_id=a.run_id),
        start_workflow_status=a.status,  # type: ignore[arg-type]
    )


def _has_times(schedule: Schedule) -> bool:
    s = schedule.spec
    return bool(s.interval or s.calendar or s.structured_calendar or s.cron_string)


def new_runtime(now: float) -> ScheduleRuntime:
    return ScheduleRuntime(created=now, last_processed=now)

