"""Composition root: the store, engine and adapters of one process, chosen by its settings.

- Without Redis (``odin dev``, or one ``odin server``): in-memory task queues, wake-ups and query
  routing; this process owns every shard and runs the jobs of time on its own loop.
- With Redis (the distributed shape): Redis-stream task queues, pub/sub wake-ups and query
  routing shared by every process; timers are handed to Celery. A Celery worker process
  (``system_worker=True``) also holds shard leases and runs the sweeps the beat sends it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import redis.exceptions
import sqlalchemy.exc

from odin import metrics, redisconn, tracing
from odin.aio import cancel_and_wait
from odin.beat.jobs import SystemJobs
from odin.beat.local import LocalSystemWorkers
from odin.beat.timers import AsyncioTimerScheduler, CeleryTimerScheduler, TimerScheduler
from odin.clock import Clock, ReferenceClock, SystemClock
from odin.config import Settings, default_identity
from odin.frontend import FrontendService
from odin.history.engine import HistoryEngine
from odin.history.notifier import InMemoryNotifier, RedisNotifier
from odin.history.queries import InMemoryQueryRouter, RedisQueryRouter
from odin.history.shards import RedisShardLeases, ShardOwnership, StaticShards
from odin.matching.memory import InMemoryTaskQueues
from odin.matching.workers import RedisWorkerRegistry
from odin.persistence import migrate
from odin.persistence.store import SqlExecutionStore, open_database
from odin.security.auth import Authenticator
from odin.security.gate import Budgets, Gate
from odin.security.ratelimit import InMemoryRateLimiter, RedisRateLimiter

log = logging.getLogger(__name__)


class Unreachable(RuntimeError):
    """A store the process needs (the database, Redis) did not answer at start-up."""


# How long start-up waits for Redis to answer before giving up.
STARTUP_REDIS_TIMEOUT = 10.0


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class NotMigrated(RuntimeError):
    pass


def database_unreachable(url: str, exc: sqlalchemy.exc.OperationalError) -> Unreachable:
    """One line for a database that did not answer: where (without the password) and why."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
    return Unreachable(f"cannot reach the database at {_safe_url(url)} (ODIN_DATABASE_URL / DATABASE_URL): {reason}")


class NoShards:
    """A process that runs no background work (an ``odin server`` in the distributed shape)."""

    def owned(self) -> dict[int, int]:
        return {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Runtime:
    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        *,
        auto_migrate: bool = False,
        system_worker: bool = False,
        run_system_jobs: bool = True,
    ):
        if not settings.database_url:
            raise ValueError("no database configured: set ODIN_DATABASE_URL (or DATABASE_URL)")
        self.settings = settings
        # Without a clock given, a database with a server of its own (PostgreSQL) gives every
        # process the same time (ReferenceClock, at start); SQLite is one process's wall clock.
        self._clock_given = clock is not None
        self.clock: Clock = clock or SystemClock()
        self.auto_migrate = auto_migrate
        self.system_worker = system_worker
        # Without Redis, whether this process runs the jobs of time itself (the one server does;
        # a web process does not).
        self.run_system_jobs = run_system_jobs
        self.identity = default_identity()
        self.redis = None
        self.store: SqlExecutionStore | None = None
        self.engine: HistoryEngine | None = None
        self.frontend: FrontendService | None = None
        self.jobs: SystemJobs | None = None
        self.shards: ShardOwnership | None = None
        self.timers: TimerScheduler | None = None
        self._local: LocalSystemWorkers | None = None
        self._closers: list = []

    @property
    def distributed(self) -> bool:
        return bool(self.settings.redis_url)

    async def start(self) -> Runtime:
        s = self.settings
        # Before the database opens: its engine is instrumented as it is made.
        tracing.configure("worker" if self.system_worker else "server")
        db = open_database(s.database_url)
        try:
            if self.auto_migrate:
                await migrate.upgrade(db)
            elif not await migrate.is_up_to_date(db):
                await db.dispose()
                raise NotMigrated("the database schema is not up to date: run `odin db upgrade` first")
        except sqlalchemy.exc.OperationalError as exc:
            await db.dispose()
            raise database_unreachable(s.database_url, exc) from None
        self.store = store = SqlExecutionStore(db)
        self._closers.append(store.close)
        num_shards = await store.init_cluster(s.num_shards)
        metrics.shard_count.get().set(num_shards)
        if not self._clock_given and not store.is_sqlite:
            clock = ReferenceClock(self._database_time)
            await clock.start()
            self._closers.insert(0, clock.stop)
            self.clock = clock

        if self.distributed:
            from odin.beat.celery_app import create_celery
            from odin.matching.redis_streams import RedisTaskQueues

            self.redis = redisconn.connect(s)
            self._closers.append(self.redis.aclose)
            try:
                await asyncio.wait_for(self.redis.ping(), STARTUP_REDIS_TIMEOUT)
            except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
                await self.stop()
                raise Unreachable(
                    f"cannot reach Redis at {_safe_url(s.redis_url)} (ODIN_REDIS_URL / REDIS_URL): {exc or 'no answer'}"
                ) from None
            queues = RedisTaskQueues(
                self.redis, prefix=s.redis_prefix, partitions=s.queue_partitions, reclaim_idle=s.queue_reclaim_seconds,
                clock=self.clock,
            )
            self._closers.insert(0, queues.close)
            notifier = RedisNotifier(self.redis, s.redis_prefix)
            self._closers.insert(0, notifier.close)
            queries = RedisQueryRouter(self.redis, s.redis_prefix)
            self.timers = CeleryTimerScheduler(
                create_celery(s), self.redis, self.clock, prefix=s.redis_prefix, horizon=s.timer_horizon_seconds
            )
            if self.system_worker:
                self.shards = RedisShardLeases(
                    self.redis, store, num_shards, prefix=s.redis_prefix, owner=f"{self.identity}:{id(self):x}",
                    ttl=s.shard_lease_seconds, clock=self.clock,
                )
            else:
                self.shards = NoShards()
        else:
            queues, notifier, queries = InMemoryTaskQueues(), InMemoryNotifier(), InMemoryQueryRouter()
            self.shards = StaticShards(store, num_shards, self.identity) if self.run_system_jobs else NoShards()
            self.timers = AsyncioTimerScheduler(store, lambda: self.jobs.fire_due_timers(), self.clock)

        self.engine = engine = HistoryEngine(store, queues, notifier, self.clock, num_shards, queries)
        engine.on_timers_committed = self.timers.scheduled
        limiter = RedisRateLimiter(self.redis, s.redis_prefix) if self.distributed else InMemoryRateLimiter()
        self.frontend = FrontendService(store, engine, self.clock, s.long_poll_seconds, s.archive_uri)
        if self.distributed:
            self.frontend.workers = RedisWorkerRegistry(self.redis, s.redis_prefix)
        self.frontend.gate = Gate(
            Authenticator(s.auth), limiter, Budgets(s.namespace_rps, s.namespace_worker_rps), self.frontend.namespace
        )
        self.jobs = SystemJobs(
            engine, self.shards, self.timers, self.clock, timer_horizon=s.timer_horizon_seconds, archive_uri=s.archive_uri
        )
        await self.frontend.ensure_namespace(s.default_namespace)
        await self.shards.start()
        if s.metrics_sample_seconds > 0:
            sampler = metrics.Sampler(self._outbox_stats, queues, s.metrics_sample_seconds)
            task = asyncio.get_running_loop().create_task(sampler.run(), name="odin-metrics-sampler")
            self._closers.insert(0, lambda: cancel_and_wait(task))
        if not self.distributed and self.run_system_jobs:
            # Whatever was queued in memory before a restart is rebuilt from SQL.
            await engine.requeue_transfer_tasks()
            self._local = LocalSystemWorkers(
                self.jobs,
                self.timers,
                transfers_every=s.sweep_transfers_seconds * 5,
                retention_every=s.retention_sweep_seconds,
            )
            await self._local.start()
        elif self.distributed:
            await self.timers.start()
        return self

    async def _database_time(self) -> datetime:
        assert self.store is not None
        value = await self.store.database_time()
        assert value is not None
        return value

    async def _outbox_stats(self) -> dict[str, tuple[int, float]]:
        """The outbox gauges of the shards this process holds (none: nothing to report)."""
        assert self.store is not None and self.shards is not None
        owned = list(self.shards.owned())
        if not owned:
            return {}
        everything = len(owned) == self.engine.num_shards if self.engine is not None else False
        return await self.store.outbox_stats(self.clock.now(), None if everything else owned)

    async def stop(self) -> None:
        if self._local is not None:
            await self._local.stop()
            self._local = None
        elif self.timers is not None and self.distributed:
            await self.timers.stop()
        if self.jobs is not None:
            await self.jobs.close()
        if self.shards is not None:
            await self.shards.stop()
        if self.engine is not None:
            await self.engine.transfers.close()
        for close in self._closers:
            try:
                await close()
            except Exception:
                log.warning("error while closing", exc_info=True)
        self._closers = []
        tracing.flush()
