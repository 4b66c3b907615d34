"""A Celery app whose tasks use Celery's flow-control options (``rate_limit``, ``priority``,
``expires``, ``task_routes``), and the Odin app that runs them. Each attempt's start is written
to ``THROTTLED_JOURNAL`` (a JSON line: task, key, process id, time), so tests can measure rates
and orders across worker processes."""

from __future__ import annotations

import json
import os
import time

from celery import Celery

from odin.sdk import App
from odin.sdk.celery import register_tasks

celery_app = Celery("throttled", broker="redis://127.0.0.1:1/0")
celery_app.conf.task_routes = {
    "throttled.rank": {"queue": "ranked"},  # the dict form
    "throttled.stale": {"queue": "ranked"},
    "throttled.batch.*": {"queue": "batch"},  # a glob
}


def _journal(task: str, key: str) -> None:
    path = os.environ.get("THROTTLED_JOURNAL")
    if path:
        with open(path, "a") as journal:
            journal.write(json.dumps({"task": task, "key": key, "pid": os.getpid(), "at": time.time()}) + "\n")


@celery_app.task(name="throttled.ping", rate_limit="300/m")
def ping(key: str) -> str:
    _journal("ping", key)
    return key


@celery_app.task(name="throttled.rank")
def rank(key: str, seconds: float = 0.0) -> str:
    _journal("rank", key)
    time.sleep(seconds)
    return key


@celery_app.task(name="throttled.batch.nightly")
def nightly(key: str) -> str:
    return key


@celery_app.task(name="throttled.stale", expires=0.5)
def stale(key: str) -> str:
    _journal("stale", key)
    return key



RUNNING: dict[str, int] = {}  # concurrency key -> attempts running now (in this process)
PEAK: dict[str, int] = {}  # concurrency key -> most attempts seen running at once


@celery_app.task(name="throttled.export", concurrency_key=lambda customer, n: f"customer:{customer}", max_concurrency=2)
def export(customer: str, n: int) -> str:
    key = f"customer:{customer}"
    RUNNING[key] = RUNNING.get(key, 0) + 1
    PEAK[key] = max(PEAK.get(key, 0), RUNNING[key])
    try:
        time.sleep(0.3)
    finally:
        RUNNING[key] -= 1
    return f"{customer}-{n}"


app = App("throttled")
register_tasks(app, celery_app)
