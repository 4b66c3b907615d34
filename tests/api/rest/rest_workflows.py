"""Workflows the REST tests run on a temporalio worker (a module of their own, so the SDK's
workflow sandbox imports nothing but these)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class Greet:
    """Greets through an activity; input and result are plain JSON."""

    @workflow.run
    async def run(self, name: str, extra: dict) -> dict:
        loud = await workflow.execute_activity(shout, f"hello, {name}", start_to_close_timeout=timedelta(seconds=10))
        return {"greeting": loud, "extra": extra}


@workflow.defn
class Counter:
    """Counts signals and updates, answers queries, ends when told to; a timer stays pending."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False

    @workflow.signal
    def bump(self, by: int) -> None:
        self.count += by

    @workflow.update
    def add(self, n: int) -> int:
        if n < 0:
            raise ApplicationError("cannot add a negative number")
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
        try:
            await workflow.wait_condition(lambda: self.done, timeout=timedelta(hours=1))
        except TimeoutError:
            pass
        return self.count


@workflow.defn
class Fails:
    @workflow.run
    async def run(self, message: str) -> None:
        raise ApplicationError(message, {"order": 7}, type="OrderRejected", non_retryable=True)


@workflow.defn
class WaitForever:
    """Runs until canceled (then ends canceled) or terminated."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class Echo:
    """Returns its arguments: what a schedule's action passed."""

    @workflow.run
    async def run(self, label: str, extra: dict) -> list:
        return [label, extra]


@workflow.defn
class WaitsForAnActivity:
    """Its activity goes to a queue no worker polls, so it stays pending."""

    @workflow.run
    async def run(self, queue: str) -> None:
        await workflow.execute_activity(
            "nobody_runs_this", activity_id="a1", task_queue=queue, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class Broken:
    """Its code raises a plain exception: the workflow task fails, and is retried, until fixed."""

    @workflow.run
    async def run(self, message: str) -> None:
        raise RuntimeError(message)


@activity.defn
async def charge_card(message: str) -> None:
    raise ApplicationError(message, type="PaymentDeclined")


@workflow.defn
class Charge:
    """Its activity fails every attempt, retried every 300 ms."""

    @workflow.run
    async def run(self, message: str) -> None:
        await workflow.execute_activity(
            charge_card, message, start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=300), backoff_coefficient=1.0),
        )


@workflow.defn
class Steps:
    """Runs an activity, sleeps, then waits for a signal: bars of the graphical timeline."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(shout, "one", start_to_close_timeout=timedelta(seconds=10))
        await workflow.sleep(0.2)
        await workflow.wait_condition(lambda: self.go)
        return "done"
