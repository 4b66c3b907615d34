"""Version 2 of the payment workflow: the new flow behind a VersionGate, so runs started under
version 1 keep their branch when they replay."""

from __future__ import annotations

from odin.sdk import App, VersionGate, workflow

app = App("payments")


@app.activity(start_to_close_timeout=10)
async def process_payment_v1(order: str) -> str:
    return f"v1:{order}"


@app.activity(start_to_close_timeout=10)
async def process_payment_v2(order: str) -> str:
    return f"v2:{order}"


@app.workflow
async def payment(order: str) -> str:
    gate = VersionGate()
    if gate.is_enabled("new-payment-flow", version=2):
        receipt = await process_payment_v2(order)
    else:
        receipt = await process_payment_v1(order)
    approved: list[bool] = []
    workflow.on_signal("approve", lambda: approved.append(True))
    await workflow.wait_condition(lambda: bool(approved))
    return receipt
