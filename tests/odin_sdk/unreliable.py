"""A Celery app whose tasks fail on purpose (the retry tests), and the Odin app that runs them.

Its broker is an address nobody listens on: running these tasks under Odin must never send
anything to a broker, and would fail if it tried.
"""

from __future__ import annotations

from collections import Counter

from celery import Celery, Task

from odin.sdk import App
from odin.sdk.celery import register_tasks

celery_app = Celery("unreliable", broker="redis://127.0.0.1:1/0")

ATTEMPTS: Counter = Counter()
REQUESTS: list[tuple[str, str, int]] = []  # (task, request id, request retries) of each attempt
HANDLED: list[tuple[str, str]] = []  # (handler, task) as Celery's handlers are called


class Recorded(Task):
    def on_success(self, retval, task_id, args, kwargs):
        HANDLED.append(("success", self.name))

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        HANDLED.append(("retry", self.name))

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        HANDLED.append(("failure", self.name))


@celery_app.task(bind=True, base=Recorded, name="unreliable.fetch", max_retries=3, default_retry_delay=30)
def fetch(self, key: str, failures: int = 2) -> str:
    """Asks to be retried (``self.retry``) ``failures`` times; the countdown, not the task's
    30 s default, decides when."""
    ATTEMPTS["fetch", key] += 1
    REQUESTS.append(("fetch", self.request.id, self.request.retries))
    if self.request.retries < failures:
        raise self.retry(exc=ConnectionError("upstream down"), countdown=0.2)
    return f"{key} after {self.request.retries} retries"


@celery_app.task(base=Recorded, name="unreliable.poll", autoretry_for=(TimeoutError,), max_retries=2,
                 retry_kwargs={"countdown": 0.2})
def poll(key: str, failures: int = 2) -> str:
    ATTEMPTS["poll", key] += 1
    if ATTEMPTS["poll", key] <= failures:
        raise TimeoutError("not ready yet")
    return f"{key} ready"


@celery_app.task(base=Recorded, name="unreliable.broken", autoretry_for=(TimeoutError,))
def broken(key: str) -> str:
    """Raises what it is not told to retry: a failure at once, as with Celery."""
    ATTEMPTS["broken", key] += 1
    raise ValueError(f"{key} is broken")


@celery_app.task(bind=True, name="unreliable.reroute", max_retries=3)
def reroute(self, key: str) -> str:
    """Asks to be retried with other arguments, which Odin cannot do."""
    ATTEMPTS["reroute", key] += 1
    raise self.retry(args=(f"{key}-elsewhere",), countdown=0.1)


@celery_app.task(name="unreliable.add")
def add(x: int, y: int = 0) -> int:
    return x + y


@celery_app.task(name="unreliable.limits", time_limit=7, soft_time_limit=5, max_retries=None,
                 autoretry_for=(OSError,), retry_backoff=3, retry_backoff_max=40)
def limits() -> None:
    """Only declares options, for the mapping tests."""


@celery_app.task(name="unreliable.soft", soft_time_limit=4, max_retries=0)
def soft() -> None:
    """Only declares options, for the mapping tests."""


app = App("unreliable")
register_tasks(app, celery_app)
