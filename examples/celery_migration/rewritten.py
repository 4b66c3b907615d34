"""The checkout rewritten for Odin: the task bodies become activities and the canvas becomes an
ordinary async function. It returns what the Celery canvas returns.

    odin worker -A examples.celery_migration.rewritten:app
    checkout.delay(order).get(timeout=60)

This module imports only Odin and the standard library: the workflow sandbox re-imports it.
"""

from __future__ import annotations

import asyncio
import time

from odin.sdk import App, Retry, workflow

app = App("orders-v2")


@app.activity
def price(order: dict, currency: str = "EUR") -> dict:
    total = sum(line["qty"] * line["unit_cents"] for line in order["lines"])
    return {"id": order["id"], "total_cents": total, "currency": currency}


@app.activity(retry=Retry(max_attempts=6, initial_interval=1, max_interval=60))
def charge(priced: dict) -> str:
    return f"charged {priced['total_cents']} {priced['currency']}"


@app.activity(retry=Retry(max_attempts=4, initial_interval=10))
def reserve(priced: dict) -> str:
    return f"reserved {priced['id']}"


@app.activity(start_to_close_timeout=5, retry=Retry(max_attempts=4, initial_interval=1))
def pack(confirmations: list, order_id: str, seconds: float = 0.0) -> str:
    time.sleep(seconds)
    return f"parcel {order_id} ({'; '.join(confirmations)})"


@app.activity
def notify(order_id: str, template: str) -> str:
    return f"{template} sent for {order_id}"


@app.workflow
async def checkout(order: dict, currency: str = "EUR", packing_seconds: float = 0.0) -> dict:
    order_id = order["id"]
    priced = await price(order, currency=currency)
    confirmations = await asyncio.gather(charge(priced), reserve(priced))

    async def confirm_a_second_later() -> str:
        await workflow.sleep(1)  # a durable timer, like the canvas's countdown
        return await notify(order_id, "order-confirmed")

    parcel, notified = await asyncio.gather(
        pack(list(confirmations), order_id, seconds=packing_seconds), confirm_a_second_later()
    )
    return {"order": order_id, "parcel": parcel, "notified": notified}
