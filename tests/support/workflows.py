"""Workflows and activities more than one test folder runs on a temporalio worker. The module
imports nothing but temporalio, so the SDK's workflow sandbox can import it alone."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def echo(value: str) -> str:
    return value


@workflow.defn
class OneActivity:
    """One activity, whose result is the workflow's (the benchmarks' reference workload too)."""

    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(echo, value, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn
class Nap:
    """One timer of ``seconds``."""

    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"
