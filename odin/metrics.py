"""Prometheus metrics (docs/architecture.md#observability), in the process's default registry.

The REST app serves them at ``/metrics``; ``odin server`` and Celery workers serve them on
``ODIN_METRICS_PORT`` when it is set. Under gunicorn with several workers, set
``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` adds up every worker process.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import Counter, Gauge, Histogram
from temporalio.api.enums.v1 import WorkflowExecutionStatus

log = logging.getLogger(__name__)

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)

workflow_duration_seconds = Histogram(
    "workflow_duration_seconds",
    "From a run's start to its close, by how it closed.",
    ["namespace", "workflow_type", "status"],
    buckets=_DURATION_BUCKETS,
)
workflow_replay_count = Counter(
    "workflow_replay_count",
    "Workflow tasks handed to a worker with the whole history, which it replays from the start.",
    ["namespace", "workflow_type"],
)
task_queue_latency_seconds = Histogram(
    "task_queue_latency_seconds",
    "From a task being scheduled to a worker taking it.",
    ["queue_name", "task_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
history_shard_ownership = Gauge(
    "history_shard_ownership",
    "1 for each history shard whose lease this process holds.",
    ["shard_id", "host"],
)


def status_name(status: int) -> str:
    return WorkflowExecutionStatus.Name(status).removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()


def record_shards(owner: str, held: set[int], previous: set[int]) -> None:
    for shard in previous - held:
        try:
            history_shard_ownership.remove(str(shard), owner)
        except KeyError:
            pass
    for shard in held:
        history_shard_ownership.labels(str(shard), owner).set(1)


def serve_from_env() -> int | None:
    """Serve ``/metrics`` on ``ODIN_METRICS_PORT`` if set (processes without the REST app)."""
    port = os.environ.get("ODIN_METRICS_PORT")
    if not port:
        return None
    from prometheus_client import start_http_server

    try:
        start_http_server(int(port), addr=os.environ.get("ODIN_METRICS_HOST", "0.0.0.0"))
    except OSError as exc:
        # Another process of this host serves it already (one shared environment file): this
        # process carries on without its own metrics endpoint rather than not at all.
        log.warning("metrics: not serving on port %s (%s)", port, exc)
        return None
    return int(port)
