"""The Celery side of ``bench/distributed.py``: two tasks chained, on the broker Odin uses.

Configured from the environment: ``BENCH_BROKER_URL`` and ``BENCH_KEY_PREFIX``.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench_chain")
_url = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
_prefix = os.environ.get("BENCH_KEY_PREFIX", "bench:")
app.conf.update(
    broker_url=_url,
    result_backend=_url,
    broker_transport_options={"global_keyprefix": _prefix},
    result_backend_transport_options={"global_keyprefix": _prefix},
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
    task_acks_late=True,
    result_expires=600,
)


@app.task(name="bench.echo")
def echo(value: str) -> str:
    return value


@app.task(name="bench.finish")
def finish(value: str) -> str:
    return value
