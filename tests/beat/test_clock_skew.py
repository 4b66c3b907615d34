"""Timers and timeouts fire by the cluster's clock, not by one process's wall clock.

A Celery worker runs an ``odin.fire_timer`` ETA job by its own wall clock, and every process
used to take workflow time from its wall clock: a system worker whose clock was 30 s ahead fired
timers and activity timeouts up to 30 s early (the fault soak's clock jumps found an early timer
and activity executions beyond the retries asked for). Now the ETA job checks the task is due, and
a process on PostgreSQL keeps the database server's time (``odin.clock.ReferenceClock``).

The skewed process is real: a system worker run under libfaketime (Debian's ``faketime``
package) with its wall clock 30 s ahead; without libfaketime that test is skipped (failed under
``ODIN_TEST_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from odin.clock import ManualClock, ReferenceClock
from odin.config import Settings
from odin.history.tasks import TimerKind
from odin.server import OdinServer
from tests.soak.test_soak import load_soak
from tests.support.services import REDIS_URL, skip_or_fail, throwaway_postgres_database
from tests.support.workflows import Nap

RELEASE: dict[str, asyncio.Event] = {}


@activity.defn
async def hold(key: str) -> str:
    await RELEASE[key].wait()
    return "held"


@workflow.defn
class Held:
    @workflow.run
    async def run(self, key: str) -> str:
        return await workflow.execute_activity(
            hold, key, start_to_close_timeout=timedelta(seconds=20), retry_policy=RetryPolicy(maximum_attempts=1)
        )


async def timer_tasks(server: OdinServer, workflow_id: str, kind: str, within: float = 10.0):
    """The workflow's timer tasks of ``kind``, waiting until there is one."""
    store = server.runtime.store
    deadline = asyncio.get_running_loop().time() + within
    while True:
        due = await store.due_timer_tasks(datetime.now(UTC) + timedelta(days=1), 10_000)
        found = [t for t in due if t.workflow_id == workflow_id and t.kind == kind]
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def event_types(client: Client, workflow_id: str) -> list[int]:
    return [e.event_type async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]


async def test_an_eta_job_that_comes_early_fires_its_timer_only_when_due(database_url, task_queue):
    """The ETA job of a timer run before the timer is due (its Celery worker's clock is ahead)
    leaves the timer alone, then fires it when the cluster's clock reaches it."""
    clock = ManualClock(datetime.now(UTC))
    server = OdinServer(Settings(database_url=database_url, grpc_port=0), clock=clock)
    await server.start()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Nap]):
            handle = await client.start_workflow(Nap.run, 1.0, id=f"nap-{uuid.uuid4()}", task_queue=task_queue)
            [timer] = await timer_tasks(server, handle.id, TimerKind.USER_TIMER)
            # Only the ETA job may fire it: the in-process timer loop stops.
            await server.runtime._local.stop()  # type: ignore[union-attr]
            assert await server.runtime.jobs.fire_timer(timer.task_id)  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
            assert await server.runtime.store.get_timer_task(timer.task_id) is not None  # type: ignore[union-attr]
            assert EventType.EVENT_TYPE_TIMER_FIRED not in await event_types(client, handle.id)
            clock.advance(1.0)  # the timer is due now: the job put off comes back and fires it
            assert await asyncio.wait_for(handle.result(), 10) == "woke"
            assert await server.runtime.store.get_timer_task(timer.task_id) is None  # type: ignore[union-attr]
    finally:
        await server.stop(grace=0.5)


@pytest.mark.parametrize("database_url", ["postgres", "mysql"], indirect=True)
async def test_a_process_on_a_database_server_keeps_the_database_time(database_url):
    server = OdinServer(Settings(database_url=database_url, grpc_port=0))
    await server.start()
    try:
        clock = server.runtime.clock
        assert isinstance(clock, ReferenceClock)
        database = await server.runtime.store.database_time()  # type: ignore[union-attr]
        assert abs((clock.now() - database).total_seconds()) < 0.5
        # The server's UTC (this machine's clock is the same one), to the microsecond.
        assert abs((database - datetime.now(UTC)).total_seconds()) < 5
        readings = [await server.runtime.store.database_time() for _ in range(3)]  # type: ignore[union-attr]
        assert any(r.microsecond for r in readings)
        # It runs on: the next reading is later, by the time that passed.
        first = clock.now()
        await asyncio.sleep(0.2)
        assert 0.15 < (clock.now() - first).total_seconds() < 1.0
    finally:
        await server.stop(grace=0.5)


async def test_reference_clock_follows_the_reference_not_the_wall_clock():
    """A reference 90 s behind this host's wall clock: the clock reads the reference, runs on by
    monotonic time between readings, and follows a step of the reference at the next sync."""
    offset = [timedelta(seconds=-90)]

    async def read() -> datetime:
        return datetime.now(UTC) + offset[0]

    clock = ReferenceClock(read, resync=3600)
    await clock.start()
    try:
        assert abs((clock.now() - (datetime.now(UTC) + offset[0])).total_seconds()) < 0.1
        assert abs(clock.wall_skew - 90) < 0.1
        offset[0] = timedelta(seconds=10)
        assert abs((clock.now() - datetime.now(UTC)).total_seconds() + 90) < 0.1  # no sync yet
        await clock.sync()
        assert abs((clock.now() - datetime.now(UTC)).total_seconds() - 10) < 0.1
    finally:
        await clock.stop()


async def test_reference_clock_started_on_a_slow_read_tries_again_soon():
    """A first reading that took long (a busy start) is kept, but may be off by up to half its
    round trip: the next sync comes after a second, not after ``resync``."""
    delay = [0.6]

    async def read() -> datetime:
        await asyncio.sleep(delay[0])  # the answer left the reference at the end of the round trip
        return datetime.now(UTC) + timedelta(seconds=5)

    clock = ReferenceClock(read, resync=3600, samples=1, max_rtt=0.2)
    await clock.start()
    try:
        assert (clock.now() - datetime.now(UTC)).total_seconds() - 5 > 0.2  # off by about 0.3 s
        delay[0] = 0.0
        await asyncio.sleep(1.3)
        assert abs((clock.now() - datetime.now(UTC)).total_seconds() - 5) < 0.05
    finally:
        await clock.stop()


async def test_reference_clock_keeps_its_reading_when_a_sync_fails_or_is_slow():
    state = {"fail": False, "delay": 0.0}

    async def read() -> datetime:
        if state["fail"]:
            raise ConnectionError("the database is restarting")
        value = datetime.now(UTC) + timedelta(seconds=5)
        await asyncio.sleep(state["delay"])
        return value

    clock = ReferenceClock(read, resync=0.05, samples=1, max_rtt=0.2)
    await clock.start()
    try:
        state["fail"] = True
        await asyncio.sleep(0.2)  # failed syncs in the background: the clock keeps counting
        assert abs((clock.now() - datetime.now(UTC)).total_seconds() - 5) < 0.1
        state.update(fail=False, delay=0.4)  # a slow answer would put the clock 0.2 s behind: ignored
        await clock.sync()
        assert abs((clock.now() - datetime.now(UTC)).total_seconds() - 5) < 0.1
    finally:
        await clock.stop()


# Run under libfaketime, 30 s ahead: a system worker's runtime sweeps the timers of every shard,
# runs the ETA job of one timer, and reports what it fired and what time it kept.
SKEWED_WORKER = textwrap.dedent("""
    import asyncio, json, sys
    from datetime import UTC, datetime

    from odin.config import Settings
    from odin.runtime import Runtime

    async def main():
        runtime = await Runtime(Settings.from_env(), system_worker=True).start()
        try:
            for _ in range(100):
                if len(runtime.shards.owned()) == runtime.engine.num_shards:
                    break
                await asyncio.sleep(0.1)
            fired = await runtime.jobs.sweep_timers()
            await runtime.jobs.fire_timer(sys.argv[1])
            database = (await runtime.store.database_time()).timestamp()
            print(json.dumps({
                "wall": datetime.now(UTC).timestamp(), "clock": runtime.clock.now().timestamp(), "database": database,
                "owned": len(runtime.shards.owned()), "fired": fired,
            }))
        finally:
            await runtime.stop()

    asyncio.run(main())
""")


async def test_a_system_worker_whose_clock_is_ahead_fires_nothing_early(redis_prefix, task_queue, tmp_path):
    soak = load_soak()
    library = soak.faketime_library()
    if library is None:
        skip_or_fail(soak.CLOCK_JUMPS_MISSING)
    # A database of its own: no other test's timers are due in it.
    with throwaway_postgres_database() as postgres_url:
        await skewed_system_worker(soak, library, postgres_url, redis_prefix, task_queue, tmp_path)


async def skewed_system_worker(soak, library, postgres_url, redis_prefix, task_queue, tmp_path) -> None:
    server = OdinServer(Settings(database_url=postgres_url, grpc_port=0))
    await server.start()
    key = uuid.uuid4().hex
    RELEASE[key] = asyncio.Event()
    try:
        client = await Client.connect(f"127.0.0.1:{server.endpoints.grpc_port}")
        async with Worker(client, task_queue=task_queue, workflows=[Nap, Held], activities=[hold]):
            # A 20 s timer, and an activity running with a 20 s start-to-close timeout.
            nap = await client.start_workflow(Nap.run, 20.0, id=f"nap-{key}", task_queue=task_queue)
            held = await client.start_workflow(Held.run, key, id=f"held-{key}", task_queue=task_queue)
            [timer] = await timer_tasks(server, nap.id, TimerKind.USER_TIMER)
            [timeout] = await timer_tasks(server, held.id, TimerKind.ACTIVITY_TIMEOUT)
            assert (timer.fire_at - datetime.now(UTC)).total_seconds() > 15

            clocks = soak.FakeClocks(tmp_path, library)
            clocks.set("a", 30)
            env = {
                **os.environ, **clocks.env("a", "skewed"),
                "ODIN_DATABASE_URL": postgres_url, "ODIN_REDIS_URL": REDIS_URL, "ODIN_REDIS_PREFIX": redis_prefix,
            }
            env.pop("ODIN_SOAK_CLOCK_LOG")
            done = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", SKEWED_WORKER, timer.task_id],
                env=env, capture_output=True, text=True, timeout=120,
            )
            assert done.returncode == 0, done.stderr
            seen = json.loads(done.stdout.strip().splitlines()[-1])
            assert 25 < seen["wall"] - seen["database"] < 35, seen  # libfaketime put its wall clock ahead
            assert abs(seen["clock"] - seen["database"]) < 1, seen  # it kept the database's time
            assert seen["owned"] == server.runtime.engine.num_shards, seen  # type: ignore[union-attr]
            assert seen["fired"] == 0, seen  # the timer sweep found nothing due

            store = server.runtime.store
            assert await store.get_timer_task(timer.task_id) is not None  # type: ignore[union-attr]
            assert await store.get_timer_task(timeout.task_id) is not None  # type: ignore[union-attr]
            assert EventType.EVENT_TYPE_TIMER_FIRED not in await event_types(client, nap.id)
            RELEASE[key].set()
            assert await asyncio.wait_for(held.result(), 10) == "held"  # not timed out, not retried
            assert EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT not in await event_types(client, held.id)
            await nap.terminate()
    finally:
        RELEASE.pop(key).set()
        await server.stop(grace=0.5)
