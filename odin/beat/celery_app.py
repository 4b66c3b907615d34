"""Odin's system workers as a Celery app: ``celery -A odin worker`` and ``celery -A odin beat``.

The app is configured from the environment alone (``ODIN_REDIS_URL``/``REDIS_URL`` for the broker,
``ODIN_DATABASE_URL``/``DATABASE_URL`` for the worker's store). Jobs:

- ``odin.fire_timer`` — sent with an ETA by whichever process committed a timer due soon;
- ``odin.sweep_timers``, ``odin.sweep_transfers`` — sent by beat every second or two to every
  worker (a broadcast queue); each worker sweeps the shards it holds leases on;
- ``odin.retention_sweep`` — sent by beat; fans out one ``odin.archive_workflow`` per expired run;
- ``odin.run_batches`` — sent by beat every second to one worker; it works on the batch operations
  nobody holds a lease on for up to ``BATCH_BUDGET`` seconds, then lets them go for the next one.

Workers use the threads pool: the jobs are I/O bound, and one process per worker keeps one event
loop, one set of shard leases and one database pool.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery, signals
from kombu import Exchange, Queue
from kombu.common import Broadcast

from odin import bridge, logs, metrics
from odin.config import Settings, redis_tls_options

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "odin"
SWEEPS = "odin.sweeps"
JOBS = (
    "odin.fire_timer",
    "odin.sweep_timers",
    "odin.sweep_transfers",
    "odin.retention_sweep",
    "odin.archive_workflow",
    "odin.run_batches",
)
# Seconds one run_batches job works before leaving the rest to the next (a worker stays responsive
# to its other jobs, and a batch moves to another worker if this one goes).
BATCH_BUDGET = 30.0


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    if not settings.redis_url:
        raise RuntimeError("Odin's system workers need Redis: set ODIN_REDIS_URL (or REDIS_URL)")
    app = Celery("odin", set_as_current=False)
    tls = redis_tls_options(settings.redis_url)
    app.conf.update(
        broker_url=settings.redis_url,
        broker_use_ssl=tls or None,
        broker_transport_options={"global_keyprefix": f"{settings.redis_prefix}celery:"},
        broker_connection_retry_on_startup=True,
        task_default_queue=DEFAULT_QUEUE,
        task_queues=(Queue(DEFAULT_QUEUE), Broadcast(SWEEPS)),
        # A publisher declares a Broadcast queue's fanout exchange only if told to (without it the
        # Redis transport treats the exchange as direct and the message reaches no worker).
        task_routes={
            name: {"queue": SWEEPS, "declare": [Exchange(SWEEPS, type="fanout")]}
            for name in ("odin.sweep_timers", "odin.sweep_transfers")
        },
        task_ignore_result=True,
        # Celery's own task events, for Flower and celery-exporter (Odin counts its jobs itself too).
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_pool="threads",
        worker_concurrency=8,
        beat_schedule={
            # No expiry on the sweeps: Celery would judge it by the worker's wall clock, and a
            # worker whose clock runs ahead of beat's would drop every sweep. Sweeps piled up
            # behind a paused worker cost a few queries each (one runs at a time per process).
            "odin-sweep-timers": {"task": "odin.sweep_timers", "schedule": settings.sweep_timers_seconds},
            "odin-sweep-transfers": {"task": "odin.sweep_transfers", "schedule": settings.sweep_transfers_seconds},
            "odin-retention-sweep": {"task": "odin.retention_sweep", "schedule": settings.retention_sweep_seconds},
            # No expiry either; rounds that pile up find their jobs claimed and end at once.
            "odin-run-batches": {"task": "odin.run_batches", "schedule": 1.0},
        },
    )
    app.odin_settings = settings
    _register_jobs(app)
    _connect_lifecycle(app)
    return app


def _register_jobs(app: Celery) -> None:
    @app.task(name="odin.fire_timer")
    def fire_timer(task_id: str) -> bool:
        return worker_runtime(app).run(lambda jobs: jobs.fire_timer(task_id))

    @app.task(name="odin.sweep_timers")
    def sweep_timers() -> int:
        return worker_runtime(app).run(lambda jobs: jobs.sweep_timers())

    @app.task(name="odin.sweep_transfers")
    def sweep_transfers() -> int:
        return worker_runtime(app).run(lambda jobs: jobs.sweep_transfers())

    @app.task(name="odin.retention_sweep")
    def retention_sweep() -> int:
        worker_runtime(app).run(lambda jobs: jobs.purge_deleted_namespaces())
        runs = worker_runtime(app).run(lambda jobs: jobs.expired_runs())
        for namespace_id, workflow_id, run_id in runs:
            archive_workflow.delay(namespace_id, workflow_id, run_id)
        return len(runs)

    @app.task(name="odin.run_batches")
    def run_batches() -> int:
        return worker_runtime(app).run(lambda jobs: jobs.run_batches(BATCH_BUDGET))

    @app.task(name="odin.archive_workflow")
    def archive_workflow(namespace_id: str, workflow_id: str, run_id: str) -> bool:
        return worker_runtime(app).run(lambda jobs: jobs.archive_workflow(namespace_id, workflow_id, run_id))


def _connect_lifecycle(app: Celery) -> None:
    def ready(sender=None, **_):
        if getattr(sender, "app", None) is app:
            # Take shard leases as soon as the worker is up, not at its first job.
            worker_runtime(app)
            metrics.serve_from_env()

    def shutdown(sender=None, **_):
        runtime = _runtimes.pop(id(app), None)
        if runtime is not None:
            runtime.close()

    def beat_ready(sender=None, **_):
        if getattr(sender, "app", None) is app:
            metrics.serve_from_env()

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
    signals.beat_init.connect(beat_ready, weak=False)
    _count_jobs(app)
    # Routine sweeps log at DEBUG; ODIN_LOG_FORMAT=json turns Celery's lines into JSON objects.
    logs.quiet_routine_celery_tasks()
    for setup in (signals.after_setup_logger, signals.after_setup_task_logger):
        setup.connect(logs.celery_handlers_use_odin_format, weak=False, dispatch_uid=f"odin-log-format-{setup.name}")


def _count_jobs(app: Celery) -> None:
    """Odin's jobs in ``celery_jobs`` (by outcome) and ``celery_job_latency_seconds``."""
    started: dict[str, float] = {}

    def mine(sender) -> bool:
        return getattr(sender, "app", None) is app and getattr(sender, "name", "") in JOBS

    def prerun(sender=None, task_id=None, **_):
        if mine(sender) and task_id:
            started[task_id] = time.perf_counter()

    def postrun(sender=None, task_id=None, state=None, **_):
        if not mine(sender):
            return
        begun = started.pop(task_id, None)
        if begun is not None:
            metrics.celery_job_latency.get(sender.name).observe(time.perf_counter() - begun)
        outcome = {"SUCCESS": "succeeded", "RETRY": "retried"}.get(state or "", "failed")
        metrics.celery_jobs.get(sender.name, outcome).inc()

    signals.task_prerun.connect(prerun, weak=False)
    signals.task_postrun.connect(postrun, weak=False)


class WorkerRuntime:
    """A Celery worker process's Odin runtime (shard leases included), on the bridge loop."""

    def __init__(self, settings: Settings):
        from odin.runtime import Runtime

        self.loop = bridge.loop_thread()
        self.runtime = self.loop.run(Runtime(settings, system_worker=True).start())

    def run(self, job):
        return self.loop.run(job(self.runtime.jobs))

    def close(self) -> None:
        try:
            self.loop.run(self.runtime.stop(), timeout=30)
        except Exception:
            log.warning("the worker runtime did not stop cleanly", exc_info=True)


_runtimes: dict[int, WorkerRuntime] = {}
_lock = threading.Lock()


def worker_runtime(app: Celery) -> WorkerRuntime:
    with _lock:
        runtime = _runtimes.get(id(app))
        if runtime is None:
            runtime = _runtimes[id(app)] = WorkerRuntime(app.odin_settings)
        return runtime


_default: Celery | None = None


def default_app() -> Celery:
    """The app ``celery -A odin`` finds (``odin.celery``), configured from the environment."""
    global _default
    if _default is None:
        try:
            _default = create_celery()
        except (ValueError, RuntimeError) as exc:  # a bad or missing setting: one line, not a traceback
            raise SystemExit(f"odin: bad configuration: {exc}") from None
    return _default
