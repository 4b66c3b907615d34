"""The workflows and activity the benchmarks run, in a module of their own: the temporalio worker
re-imports a workflow's module in its sandbox, so this one imports nothing but temporalio."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)


@activity.defn
async def echo(value: str) -> str:
    return value


@workflow.defn
class OneActivity:
    """The reference workload: one activity."""

    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(echo, value, start_to_close_timeout=TIMEOUT)


@workflow.defn
class SequentialActivities:
    """``count`` activities, one after the other."""

    @workflow.run
    async def run(self, count: int) -> int:
        for i in range(count):
            await workflow.execute_activity(echo, str(i), start_to_close_timeout=TIMEOUT)
        return count


@workflow.defn
class SignalCounter:
    """Completes once it has seen ``expected`` signals; returns how many it saw."""

    def __init__(self) -> None:
        self.seen = 0

    @workflow.signal
    def ping(self) -> None:
        self.seen += 1

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.seen >= expected)
        return self.seen


@workflow.defn
class Sleeper:
    """Sleeps on one timer; returns when the timer was due and when the workflow saw it fire
    (server time of its workflow tasks, epoch seconds)."""

    @workflow.run
    async def run(self, seconds: float) -> list[float]:
        due = workflow.now().timestamp() + seconds
        await asyncio.sleep(seconds)
        return [due, workflow.now().timestamp()]


@workflow.defn
class Child:
    @workflow.run
    async def run(self, value: str) -> str:
        return value


@workflow.defn
class Parent:
    """Starts ``count`` children at once and awaits them all; returns, per child, the seconds
    from the parent's start until the parent saw that child's result."""

    @workflow.run
    async def run(self, count: int) -> list[float]:
        began = workflow.now()
        info = workflow.info()
        done: list[float] = []

        async def child(i: int) -> None:
            await workflow.execute_child_workflow(Child.run, str(i), id=f"{info.workflow_id}-child-{i}")
            done.append((workflow.now() - began).total_seconds())

        await asyncio.gather(*(child(i) for i in range(count)))
        return done
