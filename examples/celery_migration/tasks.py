"""The Celery app before the migration: a shop's order tasks and the canvas that runs a checkout.
Nothing in this module knows about Odin; the migration leaves it as it is.

    celery -A examples.celery_migration.tasks worker
    checkout({"id": "o-1", "lines": [...]}).apply_async().get()
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

from celery import Celery, chord, group
from celery.schedules import crontab

app = Celery("orders")
# Broker and result backend come from CELERY_BROKER_URL / CELERY_RESULT_BACKEND, or from the
# settings module a deployment names in CELERY_CONFIG_MODULE.
app.config_from_envvar("CELERY_CONFIG_MODULE", silent=True)


class GatewayTimeout(Exception):
    """The payment gateway did not answer in time (worth trying again)."""


class WarehouseBusy(Exception):
    """The warehouse system asked us to come back later."""


def note(step: str, order_id: str) -> None:
    """Append ``{"step", "order"}`` to the journal file named by ORDERS_JOURNAL, when set: a trail
    of which steps ran, read by whoever wants to know (the tests, an operator)."""
    path = os.environ.get("ORDERS_JOURNAL")
    if path:
        with open(path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps({"step": step, "order": order_id}) + "\n")


@app.task
def price(order: dict, currency: str = "EUR") -> dict:
    note("price", order["id"])
    total = sum(line["qty"] * line["unit_cents"] for line in order["lines"])
    return {"id": order["id"], "total_cents": total, "currency": currency}


@app.task(autoretry_for=(GatewayTimeout,), retry_backoff=True, retry_backoff_max=60, max_retries=5)
def charge(priced: dict) -> str:
    note("charge", priced["id"])
    return f"charged {priced['total_cents']} {priced['currency']}"


@app.task(bind=True, max_retries=3, default_retry_delay=10)
def reserve(self, priced: dict) -> str:
    note("reserve", priced["id"])
    try:
        return _reserve_stock(priced["id"])
    except WarehouseBusy as exc:
        raise self.retry(exc=exc)


def _reserve_stock(order_id: str) -> str:
    return f"reserved {order_id}"


@app.task(acks_late=True, time_limit=5, default_retry_delay=1)
def pack(confirmations: list, order_id: str, seconds: float = 0.0) -> str:
    """The packing station: slow (``seconds``), so a worker may well stop while it runs."""
    note("pack started", order_id)
    time.sleep(seconds)
    note("pack done", order_id)
    return f"parcel {order_id} ({'; '.join(confirmations)})"


@app.task
def notify(order_id: str, template: str) -> str:
    note("notify", order_id)
    return f"{template} sent for {order_id}"


@app.task
def summarize(results: list, order_id: str) -> dict:
    note("summarize", order_id)
    parcel, notified = results
    return {"order": order_id, "parcel": parcel, "notified": notified}


def checkout(order: dict, currency: str = "EUR", packing_seconds: float = 0.0):
    """price, then charge and reserve side by side, then pack while the confirmation goes out a
    second later, then a summary of both."""
    order_id = order["id"]
    return (
        price.s(order, currency=currency)
        | group(charge.s(), reserve.s())
        | chord(
            [pack.s(order_id, seconds=packing_seconds), notify.si(order_id, "order-confirmed").set(countdown=1)],
            summarize.s(order_id=order_id),
        )
    )


@app.task
def release_stale_reservations(older_than_minutes: int) -> str:
    """Give back the stock of carts abandoned for ``older_than_minutes``."""
    note("release stale reservations", "*")
    return f"released reservations older than {older_than_minutes} min"


@app.task
def sales_report(period: str = "day") -> str:
    note("sales report", "*")
    return f"sales report for the {period}"


# Periodic tasks, run by `celery -A examples.celery_migration.tasks beat` (and by Odin's schedules
# after the migration: `odin beat -A examples.celery_migration.durable:app`).
app.conf.timezone = "Europe/Paris"
app.conf.beat_schedule = {
    "release-stale-reservations": {
        "task": "examples.celery_migration.tasks.release_stale_reservations",
        "schedule": timedelta(minutes=10),
        "args": (30,),
    },
    "weekday-sales-report": {
        "task": "examples.celery_migration.tasks.sales_report",
        "schedule": crontab(minute=0, hour=7, day_of_week="mon-fri"),
        "kwargs": {"period": "day"},
        "options": {"expires": 3600},
    },
}
