"""Workflows and activities run by the distributed tests (a module of their own, so the SDK's
workflow sandbox imports nothing but these)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def add_one(n: int) -> int:
    return n + 1


@workflow.defn
class Durable:
    """An activity, a timer, a signal, another activity and another timer."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self, n: int) -> int:
        retry = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=2))
        a = await workflow.execute_activity(add_one, n, start_to_close_timeout=timedelta(seconds=5), retry_policy=retry)
        await workflow.sleep(2)
        await workflow.wait_condition(lambda: self.go)
        b = await workflow.execute_activity(add_one, a, start_to_close_timeout=timedelta(seconds=5), retry_policy=retry)
        await workflow.sleep(1)
        return b


@workflow.defn
class Nap:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "rested"


@workflow.defn
class Counter:
    """Counts signals and updates; answers queries; ends when told to."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False

    @workflow.signal
    def bump(self) -> None:
        self.count += 1

    @workflow.update
    def add(self, n: int) -> int:
        self.count += n
        return self.count

    @workflow.query
    def value(self) -> int:
        return self.count

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.count


STARTS: list[tuple[str, float]] = []  # (name, monotonic time) of each ``record`` attempt, in this process


@activity.defn
async def record(name: str) -> str:
    import time

    STARTS.append((name, time.monotonic()))
    return name


@workflow.defn
class Prioritized:
    """Schedules one ``record`` per (name, priority key) on ``queue``, all at once."""

    @workflow.run
    async def run(self, queue: str, items: list[tuple[str, int]]) -> list[str]:
        import asyncio

        from temporalio.common import Priority

        calls = [
            workflow.execute_activity(
                record, name, task_queue=queue, start_to_close_timeout=timedelta(seconds=30),
                priority=Priority(priority_key=key),
            )
            for name, key in items
        ]
        return list(await asyncio.gather(*calls))


RUNS: list[tuple[str, float, float]] = []  # (key, start, end) of each ``hold`` attempt, in this process


@activity.defn
async def hold(key: str, seconds: float) -> str:
    import asyncio
    import time

    start = time.monotonic()
    await asyncio.sleep(seconds)
    RUNS.append((key, start, time.monotonic()))
    return key


@workflow.defn
class Limited:
    """Runs ``hold`` for each key at once; a workflow interceptor of the test puts each call's
    concurrency key in the ``odin-concurrency`` header, as Odin's SDK does."""

    @workflow.run
    async def run(self, queue: str, keys: list[str], seconds: float) -> list[str]:
        import asyncio

        calls = [
            workflow.execute_activity(hold, args=[key, seconds], task_queue=queue, start_to_close_timeout=timedelta(seconds=30))
            for key in keys
        ]
        return list(await asyncio.gather(*calls))


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class GreetThenNap:
    """An activity, then a one-second timer (fired by a Celery ETA job): the traced workflow."""

    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))
        await workflow.sleep(1)
        return greeting
