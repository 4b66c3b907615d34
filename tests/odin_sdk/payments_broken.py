"""The same change made without a VersionGate: incompatible with runs already under way."""

from __future__ import annotations

from odin.sdk import App, workflow

app = App("payments")


@app.activity(start_to_close_timeout=10)
async def audit(order: str) -> str:
    return f"audited:{order}"


@app.activity(start_to_close_timeout=10)
async def process_payment_v1(order: str) -> str:
    return f"v1:{order}"


@app.workflow
async def payment(order: str) -> str:
    await audit(order)  # a new first step: old histories do not have it
    receipt = await process_payment_v1(order)
    approved: list[bool] = []
    workflow.on_signal("approve", lambda: approved.append(True))
    await workflow.wait_condition(lambda: bool(approved))
    return receipt


@app.workflow
async def clock_reader() -> str:
    import datetime

    return datetime.datetime.now().isoformat()  # not allowed in workflow code
