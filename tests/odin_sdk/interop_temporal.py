"""Plain temporalio definitions for the interop tests (their own module, for the sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="temporal_greet")
async def temporal_greet(name: str) -> str:
    return f"hello {name} from a temporalio worker"


@workflow.defn(name="TemporalParent")
class TemporalParent:
    @workflow.run
    async def run(self, odin_queue: str, order: str) -> str:
        result = await workflow.execute_child_workflow(
            "odin_child", args=[order], task_queue=odin_queue, execution_timeout=timedelta(seconds=60)
        )
        return f"parent got {result}"
