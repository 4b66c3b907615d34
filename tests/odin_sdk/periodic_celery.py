"""A Celery app with a beat schedule in Celery's format, and the Odin app that takes it over
(``register_tasks`` registers the tasks and takes the beat schedule, time zone and UTC setting).

Its broker is an address nobody listens on: Odin never sends anything to it."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from odin.sdk import App
from odin.sdk.celery import register_tasks

celery_app = Celery("periodic_celery", broker="redis://127.0.0.1:1/0")
celery_app.conf.timezone = "America/New_York"
celery_app.conf.beat_schedule = {
    "sweep-every-30-seconds": {"task": "periodic_celery.sweep", "schedule": 30.0, "args": ("carts",)},
    "nightly-sweep": {
        "task": "periodic_celery.sweep",
        "schedule": crontab(minute=15, hour=2),
        "args": ("sessions",),
        "kwargs": {"older_than": 86400},
    },
    "weekly-report": {"task": "periodic_celery.sweep", "schedule": timedelta(days=7), "args": ("reports",),
                      "options": {"queue": "reports", "priority": 3}},
}

SWEPT: list[tuple[str, int]] = []


@celery_app.task(name="periodic_celery.sweep")
def sweep(what: str, older_than: int = 3600) -> str:
    SWEPT.append((what, older_than))
    return f"swept {what} older than {older_than} s"


app = App("sweeper")
register_tasks(app, celery_app)
