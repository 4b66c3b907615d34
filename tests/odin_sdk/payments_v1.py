"""Version 1 of a payment workflow (deployed first)."""

from __future__ import annotations

from odin.sdk import App, workflow

app = App("payments")


@app.activity(start_to_close_timeout=10)
async def process_payment_v1(order: str) -> str:
    return f"v1:{order}"


@app.activity(start_to_close_timeout=10)
async def process_payment_v2(order: str) -> str:
    return f"v2:{order}"


@app.workflow
async def payment(order: str) -> str:
    receipt = await process_payment_v1(order)
    approved: list[bool] = []
    workflow.on_signal("approve", lambda: approved.append(True))
    await workflow.wait_condition(lambda: bool(approved))  # runs wait here across the deploy
    return receipt
