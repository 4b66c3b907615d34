"""A one-activity workflow for the door tests (its own module: the SDK sandbox imports it alone)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def stamp(text: str) -> str:
    return f"[{text}]"


@workflow.defn
class Stamped:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(stamp, text, start_to_close_timeout=timedelta(seconds=10))
