"""The Odin side of the interop tests."""

from __future__ import annotations

from odin.sdk import App, workflow

app = App("interop")


@app.workflow
async def calls_temporal_activity(temporal_queue: str, name: str) -> str:
    return await workflow.execute_activity("temporal_greet", name, queue=temporal_queue, start_to_close_timeout=10)


@app.workflow
async def odin_child(order: str) -> str:
    await workflow.sleep(0.1)
    return f"odin child handled {order}"
