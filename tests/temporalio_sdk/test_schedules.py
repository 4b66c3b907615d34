"""Schedules end to end through the temporalio SDK (and the ``temporal`` CLI) on SQLite and
PostgreSQL: the seven schedule calls, overlap policies, catchup after downtime, pause on failure,
a real-clock one-second interval, and two processes racing over the same schedule."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import workflow
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from odin.clock import ManualClock, SkippingClock
from odin.config import Settings
from odin.server import OdinServer
from tests.support.services import ALL_DATABASES, temporal_cli

# Also on MariaDB: schedules (their own table, listed in id order) on every database.
pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)

HOUR = timedelta(hours=1)


@workflow.defn
class Quick:
    @workflow.run
    async def run(self, arg: str) -> str:
        return arg


@workflow.defn
class Blocking:
    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: self.done)
        return arg


@workflow.defn
class Counting:
    @workflow.run
    async def run(self, arg: str) -> int:
        last = workflow.get_last_completion_result(type_hint=int) if workflow.has_last_completion_result() else 0
        return (last or 0) + 1


@workflow.defn
class Failing:
    @workflow.run
    async def run(self, arg: str) -> str:
        raise ApplicationError("boom", non_retryable=True)


@contextlib.asynccontextmanager
async def odin(database_url: str, clock=None) -> AsyncIterator[tuple[OdinServer, Client]]:
    server = OdinServer(Settings(database_url=database_url, grpc_port=0), clock=clock)
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}", namespace="default")
        yield server, client
    finally:
        await server.stop(grace=0.5)


def start_action(workflow_run, task_queue: str) -> ScheduleActionStartWorkflow:
    # Workflow ids unique to the test: the PostgreSQL database is shared by the session's tests.
    return ScheduleActionStartWorkflow(workflow_run, "x", id=f"wf-{task_queue}", task_queue=task_queue)


def hourly(workflow_run, task_queue: str, **policy) -> Schedule:
    return Schedule(
        action=start_action(workflow_run, task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=HOUR)]),
        policy=SchedulePolicy(**policy),
    )


async def skip(server: OdinServer, clock: SkippingClock | ManualClock, seconds: float) -> None:
    """Move the server's clock and let its timer loop look at once."""
    clock.advance(seconds)
    server.runtime.timers.wake()  # type: ignore[union-attr]


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.1)


async def scheduled_runs(client: Client, schedule_id: str) -> list:
    return [w async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}'")]


def sid() -> str:
    return f"sched-{uuid.uuid4().hex[:8]}"


# -- the calls --------------------------------------------------------------------------------


async def test_create_describe_list_update_patch_delete(database_url, task_queue):
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Quick]):
            handle = await client.create_schedule(schedule_id, hourly(Quick.run, task_queue), memo={"owner": "ops"})
            try:
                d = await handle.describe()
                assert d.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
                assert d.schedule.policy.catchup_window == timedelta(days=365)
                assert len(d.info.next_action_times) == 10
                assert d.info.created_at is not None and d.info.num_actions == 0
                assert await d.memo_value("owner") == "ops"
                with pytest.raises(ScheduleAlreadyRunningError):
                    await client.create_schedule(schedule_id, hourly(Quick.run, task_queue))

                # The spec's times, as ListScheduleMatchingTimes gives them.
                start = Timestamp(seconds=int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()))
                end = Timestamp(seconds=start.seconds + 3 * 3600)
                times = await client.workflow_service.list_schedule_matching_times(
                    ws.ListScheduleMatchingTimesRequest(namespace="default", schedule_id=schedule_id, start_time=start, end_time=end)
                )
                assert [t.seconds - start.seconds for t in times.start_time] == [3600, 7200, 10800]

                # Time skipping, an hour at a time: two actions, named <id>-<nominal time>.
                for n in (1, 2):
                    await skip(server, clock, 3600)

                    async def done(n=n):
                        d = await handle.describe()
                        return d if d.info.num_actions == n and not d.info.running_actions else None

                    d = await eventually(done)
                ids = [a.action.workflow_id for a in d.info.recent_actions]  # type: ignore[attr-defined]
                for wid, action in zip(ids, d.info.recent_actions):
                    nominal = action.scheduled_at.astimezone(UTC).replace(microsecond=0)
                    assert wid == f"wf-{task_queue}-{nominal.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                runs = await scheduled_runs(client, schedule_id)
                assert sorted(r.id for r in runs) == sorted(ids)
                assert {r.search_attributes["TemporalScheduledById"][0] for r in runs} == {schedule_id}  # type: ignore[index]

                # Update through the SDK (describe, change, update with the conflict token).
                def pause_and_slow(update_input: ScheduleUpdateInput) -> ScheduleUpdate:
                    s = update_input.description.schedule
                    s.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=2))])
                    s.state = ScheduleState(paused=True, note="by update")
                    return ScheduleUpdate(schedule=s)

                await handle.update(pause_and_slow)
                d = await handle.describe()
                assert d.schedule.state.paused and d.schedule.state.note == "by update"
                assert d.schedule.spec.intervals[0].every == timedelta(hours=2)
                assert d.info.last_updated_at is not None

                # Patch: unpause, trigger (runs even though it is manual), pause with a note.
                await handle.unpause(note="back")
                await handle.trigger()
                await eventually(lambda: _actions(handle, 3))
                await handle.pause(note="stop")
                d = await handle.describe()
                assert (d.schedule.state.paused, d.schedule.state.note) == (True, "stop")

                # Backfill: the hourly spec's times in a past range, ignoring pause and the catchup window.
                # On the 2-hour grid of the spec (epoch-aligned), whatever the hour the test runs at:
                # base, base + 2 h and base + 4 h are the three backfilled times.
                base = datetime.fromtimestamp(int(clock.now().timestamp()) // 7200 * 7200, UTC) - timedelta(days=3)
                await handle.backfill(ScheduleBackfill(start_at=base, end_at=base + 2 * timedelta(hours=2), overlap=ScheduleOverlapPolicy.ALLOW_ALL))
                await eventually(lambda: _actions(handle, 6))

                listed = [s async for s in await client.list_schedules(query=f"ScheduleId = '{schedule_id}'")]
                assert [s.id for s in listed] == [schedule_id]
                assert listed[0].schedule.state.paused
                paused = [s.id async for s in await client.list_schedules(query="TemporalSchedulePaused = true")]
                assert schedule_id in paused
                assert schedule_id not in [s.id async for s in await client.list_schedules(query="TemporalSchedulePaused = false")]
            finally:
                await handle.delete()
        with pytest.raises(RPCError) as err:
            await handle.describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def _actions(handle, n: int) -> bool:
    return (await handle.describe()).info.num_actions >= n


async def test_errors_match_temporal(stub):
    from temporalio.api.common.v1 import WorkflowType
    from temporalio.api.schedule.v1 import message_pb2 as sp
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo

    def schedule(**spec) -> sp.Schedule:
        from google.protobuf.duration_pb2 import Duration

        return sp.Schedule(
            spec=sp.ScheduleSpec(**spec) if spec else sp.ScheduleSpec(interval=[sp.IntervalSpec(interval=Duration(seconds=3600))]),
            action=sp.ScheduleAction(
                start_workflow=NewWorkflowExecutionInfo(workflow_id="wf", workflow_type=WorkflowType(name="T"), task_queue=TaskQueue(name="q"))
            ),
        )

    async def error(call, req) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(req)
        return exc.value.code(), exc.value.details()

    name = sid()
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule=schedule())) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Can't load workflow execution.  WorkflowId not set.")
    first = await stub.CreateSchedule(ws.CreateScheduleRequest(namespace="default", schedule_id=name, schedule=schedule(), request_id="r1"))
    assert first.conflict_token == b"\0\0\0\0\0\0\0\x01"
    # The same request again is answered again; another one finds the id taken.
    assert (await stub.CreateSchedule(ws.CreateScheduleRequest(namespace="default", schedule_id=name, schedule=schedule(), request_id="r1"))) == first
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule_id=name, schedule=schedule(), request_id="r2")) == (
        grpc.StatusCode.ALREADY_EXISTS, f'schedule "{name}" is already registered')
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule_id=sid(), schedule=schedule(cron_string=["bad cron"]))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Invalid schedule spec: CronString does not have 5-7 fields")
    bad_type = schedule()
    bad_type.action.start_workflow.workflow_type.name = ""
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule_id=sid(), schedule=bad_type)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WorkflowType is not set on request.")
    bad_queue = schedule()
    bad_queue.action.start_workflow.task_queue.name = ""
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule_id=sid(), schedule=bad_queue)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "missing task queue name")
    assert await error(stub.CreateSchedule, ws.CreateScheduleRequest(namespace="default", schedule_id="x" * 1001, schedule=schedule())) == (
        grpc.StatusCode.INVALID_ARGUMENT, "WorkflowId exceeds maximum allowed length (1024/1000)")
    missing = "temporal-sys-scheduler:missing"
    for call, req in (
        (stub.DescribeSchedule, ws.DescribeScheduleRequest(namespace="default", schedule_id="missing")),
        (stub.UpdateSchedule, ws.UpdateScheduleRequest(namespace="default", schedule_id="missing", schedule=schedule())),
        (stub.PatchSchedule, ws.PatchScheduleRequest(namespace="default", schedule_id="missing")),
        (stub.DeleteSchedule, ws.DeleteScheduleRequest(namespace="default", schedule_id="missing")),
    ):
        assert await error(call, req) == (grpc.StatusCode.NOT_FOUND, f"workflow not found for ID: {missing}")
    assert await error(stub.ListScheduleMatchingTimes, ws.ListScheduleMatchingTimesRequest(namespace="default", schedule_id=name)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "missing or invalid query")
    assert await error(stub.ListSchedules, ws.ListSchedulesRequest(namespace="default", query="WorkflowType = 'T'")) == (
        grpc.StatusCode.INVALID_ARGUMENT, 'invalid query filter for schedules: cannot filter on "WorkflowType"')
    # A stale conflict token: answered OK and dropped, as Temporal's scheduler does.
    changed = schedule()
    changed.state.notes = "changed"
    await stub.UpdateSchedule(ws.UpdateScheduleRequest(namespace="default", schedule_id=name, schedule=changed, conflict_token=b"\0\0\0\0\0\0\0\x09"))
    d = await stub.DescribeSchedule(ws.DescribeScheduleRequest(namespace="default", schedule_id=name))
    assert d.schedule.state.notes == "" and d.conflict_token == first.conflict_token
    await stub.UpdateSchedule(ws.UpdateScheduleRequest(namespace="default", schedule_id=name, schedule=changed, conflict_token=d.conflict_token))
    d = await stub.DescribeSchedule(ws.DescribeScheduleRequest(namespace="default", schedule_id=name))
    assert d.schedule.state.notes == "changed" and d.conflict_token == b"\0\0\0\0\0\0\0\x02"
    await stub.DeleteSchedule(ws.DeleteScheduleRequest(namespace="default", schedule_id=name))


# -- overlap policies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        ScheduleOverlapPolicy.SKIP,
        ScheduleOverlapPolicy.BUFFER_ONE,
        ScheduleOverlapPolicy.BUFFER_ALL,
        ScheduleOverlapPolicy.CANCEL_OTHER,
        ScheduleOverlapPolicy.TERMINATE_OTHER,
        ScheduleOverlapPolicy.ALLOW_ALL,
    ],
)
async def test_overlap_policy(database_url, task_queue, policy):
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Blocking]):
            handle = await client.create_schedule(schedule_id, hourly(Blocking.run, task_queue, overlap=policy))
            try:
                await skip(server, clock, 3600)
                await eventually(lambda: _actions(handle, 1))
                await skip(server, clock, 3600)
                await skip(server, clock, 3600)

                async def settled():
                    d = await handle.describe()
                    info = d.info
                    if policy == ScheduleOverlapPolicy.SKIP:
                        return info.num_actions == 1 and info.num_actions_skipped_overlap == 2
                    if policy == ScheduleOverlapPolicy.BUFFER_ONE:
                        return info.num_actions == 1 and info.num_actions_skipped_overlap == 1
                    if policy == ScheduleOverlapPolicy.BUFFER_ALL:
                        return info.num_actions == 1 and info.num_actions_skipped_overlap == 0
                    if policy == ScheduleOverlapPolicy.ALLOW_ALL:
                        return info.num_actions == 3 and len([r async for r in _running(client, schedule_id)]) == 3
                    # cancel / terminate other: the first run ends, the latest start replaces the rest
                    return info.num_actions == 2 and len(info.running_actions) == 1

                await eventually(settled)
                if policy in (ScheduleOverlapPolicy.BUFFER_ONE, ScheduleOverlapPolicy.BUFFER_ALL):
                    # Each finished run lets the next buffered start go.
                    expected = 2 if policy == ScheduleOverlapPolicy.BUFFER_ONE else 3
                    for n in range(2, expected + 1):
                        d = await handle.describe()
                        running = d.info.running_actions[0].workflow_id
                        await client.get_workflow_handle(running).signal(Blocking.finish)
                        await eventually(lambda n=n: _actions(handle, n))
                if policy in (ScheduleOverlapPolicy.CANCEL_OTHER, ScheduleOverlapPolicy.TERMINATE_OTHER):
                    runs = sorted(await scheduled_runs(client, schedule_id), key=lambda r: r.id)
                    first_status = runs[0].status.name if runs[0].status else ""
                    assert first_status == ("CANCELED" if policy == ScheduleOverlapPolicy.CANCEL_OTHER else "TERMINATED")
                    assert len(runs) == 2
            finally:
                await handle.delete()
                async for r in _running(client, schedule_id):
                    await client.get_workflow_handle(r.id).terminate()


async def _running(client: Client, schedule_id: str):
    async for w in client.list_workflows(f"TemporalScheduledById = '{schedule_id}' AND ExecutionStatus = 'Running'"):
        yield w


# -- pause on failure, catchup, real clock ------------------------------------------------------


async def test_pause_on_failure(database_url, task_queue):
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Failing]):
            handle = await client.create_schedule(schedule_id, hourly(Failing.run, task_queue, pause_on_failure=True))
            try:
                await skip(server, clock, 3600)

                async def paused():
                    d = await handle.describe()
                    return d if d.schedule.state.paused else None

                d = await eventually(paused)
                wid = d.info.recent_actions[0].action.workflow_id  # type: ignore[attr-defined]
                assert d.schedule.state.note == f"paused due to workflow failure: {wid}: boom"
                await skip(server, clock, 3600)
                await asyncio.sleep(0.5)
                assert (await handle.describe()).info.num_actions == 1
            finally:
                await handle.delete()


async def test_each_run_gets_the_previous_result(database_url, task_queue):
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Counting]):
            handle = await client.create_schedule(schedule_id, hourly(Counting.run, task_queue))
            try:
                for n in (1, 2, 3):
                    await skip(server, clock, 3600)

                    async def done(n=n):
                        d = await handle.describe()
                        return d if d.info.num_actions == n and not d.info.running_actions else None

                    d = await eventually(done)
                last = d.info.recent_actions[-1].action.workflow_id  # type: ignore[attr-defined]
                assert await client.get_workflow_handle(last).result() == 3
            finally:
                await handle.delete()


async def test_an_idle_schedule_is_deleted_after_the_retention_period(database_url, task_queue):
    """Out of actions and not paused: gone 7 days after its last action, as in Temporal."""
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Quick]):
            s = hourly(Quick.run, task_queue)
            s.state = ScheduleState(limited_actions=True, remaining_actions=1)
            handle = await client.create_schedule(schedule_id, s)
            await skip(server, clock, 3600)
            await eventually(lambda: _actions(handle, 1))
            await skip(server, clock, 6 * 86400)
            await asyncio.sleep(0.5)
            assert (await handle.describe()).info.num_actions == 1  # 6 days idle: still there
            await skip(server, clock, 86400)

            async def gone():
                try:
                    await handle.describe()
                except RPCError as err:
                    return err.status == RPCStatusCode.NOT_FOUND
                return False

            await eventually(gone)
            assert schedule_id not in [x.id async for x in await client.list_schedules()]


async def test_a_long_backfill_is_taken_in_bounded_steps(database_url, task_queue):
    """A backfill of 46 times is buffered ten at a time over several steps; each is taken once."""
    clock = SkippingClock()
    async with odin(database_url, clock) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Quick], max_concurrent_workflow_tasks=50):
            s = Schedule(action=start_action(Quick.run, task_queue), spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))]))
            s.state = ScheduleState(paused=True)
            handle = await client.create_schedule(schedule_id, s)
            try:
                base = datetime.fromtimestamp(int(clock.now().timestamp()) // 60 * 60, UTC) - timedelta(days=2)
                await handle.backfill(ScheduleBackfill(start_at=base, end_at=base + timedelta(minutes=45), overlap=ScheduleOverlapPolicy.ALLOW_ALL))
                await eventually(lambda: _actions(handle, 46), timeout=60)
                runs = await scheduled_runs(client, schedule_id)
                assert len(runs) == 46 and len({r.id for r in runs}) == 46
            finally:
                await handle.delete()


@pytest.mark.parametrize("down_hours, taken, missed", [(5, 2, 3), (1, 1, 0)])
async def test_catchup_after_downtime(database_url, task_queue, down_hours, taken, missed):
    """Down longer than the catchup window (90 min): only the times inside it are taken."""
    clock = ManualClock(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    schedule_id = sid()
    async with odin(database_url, clock) as (server, client):
        await client.create_schedule(
            schedule_id,
            hourly(Quick.run, task_queue, overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=timedelta(minutes=90)),
        )
    clock.advance(down_hours * 3600 + 60)
    async with odin(database_url, clock) as (server, client):
        handle = client.get_schedule_handle(schedule_id)
        try:
            async def caught_up():
                d = await handle.describe()
                return d if d.info.num_actions == taken else None

            d = await eventually(caught_up)
            assert d.info.num_actions_missed_catchup_window == missed
            await asyncio.sleep(0.5)
            assert (await handle.describe()).info.num_actions == taken
        finally:
            await handle.delete()


async def test_one_second_interval_on_the_real_clock(database_url, task_queue):
    async with odin(database_url) as (server, client):
        schedule_id = sid()
        async with Worker(client, task_queue=task_queue, workflows=[Quick]):
            handle = await client.create_schedule(
                schedule_id,
                Schedule(action=start_action(Quick.run, task_queue), spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))])),
            )
            try:
                await asyncio.sleep(4.2)
                await handle.pause()
                d = await handle.describe()
                assert 3 <= d.info.num_actions <= 5
                times = sorted(a.scheduled_at for a in d.info.recent_actions)
                assert all((b - a) == timedelta(seconds=1) for a, b in zip(times, times[1:]))
                assert all(t.microsecond == 0 for t in times)
                assert len(await scheduled_runs(client, schedule_id)) == d.info.num_actions
            finally:
                await handle.delete()


# -- two processes racing -----------------------------------------------------------------------


async def test_two_processes_racing_start_each_action_once(database_url, task_queue):
    """Two servers on one database fire the same schedule's timer and step it at the same
    moments (the Celery ETA path, unfenced): every action starts exactly once."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    schedule_id = sid()
    async with odin(database_url, clock) as (a, client), odin(database_url, clock) as (b, _):
        handle = await client.create_schedule(schedule_id, hourly(Quick.run, task_queue, overlap=ScheduleOverlapPolicy.ALLOW_ALL))
        try:
            ns = await a.store.get_namespace(name="default")  # type: ignore[union-attr]
            rounds = 5
            for _ in range(rounds):
                clock.advance(3600)
                record = await a.store.get_schedule(ns.id, schedule_id)  # type: ignore[union-attr]
                timer_id = json.loads(record.info)["timer_task_id"]
                await asyncio.gather(
                    *(server.runtime.jobs.fire_timer(timer_id) for server in (a, b) for _ in range(2)),  # type: ignore[union-attr]
                    *(server.runtime.engine.schedules.step(ns.id, schedule_id) for server in (a, b)),  # type: ignore[union-attr]
                )
            d = await handle.describe()
            runs = await scheduled_runs(client, schedule_id)
            assert d.info.num_actions == rounds
            assert len(runs) == rounds and len({r.id for r in runs}) == rounds
        finally:
            await handle.delete()
            for r in await scheduled_runs(client, schedule_id):
                with contextlib.suppress(RPCError):
                    await client.get_workflow_handle(r.id).terminate()


# -- the temporal CLI ---------------------------------------------------------------------------


async def test_temporal_cli_schedule_commands(odin_server):
    cli = temporal_cli()
    address = f"127.0.0.1:{odin_server.endpoints.grpc_port}"
    schedule_id = sid()

    def run(*args: str) -> str:
        done = subprocess.run([cli, "--address", address, "schedule", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def run_async(*args: str):
        return asyncio.to_thread(run, *args)

    await run_async("create", "--schedule-id", schedule_id, "--interval", "1h", "--workflow-id", "cli-wf", "--task-queue", "q", "--type", "T")
    assert schedule_id in await run_async("list")
    described = json.loads(await run_async("describe", "--schedule-id", schedule_id, "-o", "json"))
    assert described["schedule"]["action"]["startWorkflow"]["workflowId"] == "cli-wf"
    await run_async("toggle", "--schedule-id", schedule_id, "--pause", "--reason", "cli pause")
    described = json.loads(await run_async("describe", "--schedule-id", schedule_id, "-o", "json"))
    assert described["schedule"]["state"]["paused"] is True and described["schedule"]["state"]["notes"] == "cli pause"
    await run_async("trigger", "--schedule-id", schedule_id)

    async def triggered():
        d = json.loads(await run_async("describe", "--schedule-id", schedule_id, "-o", "json"))
        return d["info"].get("actionCount") in ("1", 1)

    await eventually(triggered)
    await run_async("delete", "--schedule-id", schedule_id)
    assert schedule_id not in await run_async("list")
