"""Composition root: wires store, engine, queues, timers and the gRPC door into one process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from odin.api.grpc.server import build_grpc_server, mark_serving
from odin.beat.timers import AsyncioTimerScheduler
from odin.clock import Clock, SystemClock
from odin.config import Settings
from odin.frontend import FrontendService
from odin.history.engine import HistoryEngine
from odin.history.notifier import InMemoryNotifier
from odin.matching.memory import InMemoryTaskQueues
from odin.persistence import migrate
from odin.persistence.store import SqlExecutionStore, open_database

log = logging.getLogger(__name__)


class NotMigrated(RuntimeError):
    pass


@dataclass
class Endpoints:
    grpc_host: str
    grpc_port: int


class OdinServer:
    """One Odin process: embedded (``odin dev``: SQLite, in-memory queues, asyncio timers)."""

    def __init__(self, settings: Settings, clock: Clock | None = None, auto_migrate: bool = True):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.auto_migrate = auto_migrate
        self._grpc = None
        self._timers: AsyncioTimerScheduler | None = None
        self.store: SqlExecutionStore | None = None
        self.frontend: FrontendService | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        s = self.settings
        db = open_database(s.database_url)
        if self.auto_migrate:
            await migrate.upgrade(db)
        elif not await migrate.is_up_to_date(db):
            await db.dispose()
            raise NotMigrated("the database schema is not up to date: run `odin db upgrade` first")
        self.store = SqlExecutionStore(db)
        num_shards = await self.store.init_cluster(s.num_shards)
        engine = HistoryEngine(self.store, InMemoryTaskQueues(), InMemoryNotifier(), self.clock, num_shards)
        self.frontend = FrontendService(self.store, engine, self.clock, s.long_poll_seconds)
        self._timers = AsyncioTimerScheduler(self.store, engine.fire_timer, self.clock)
        engine.timer_wakeup = self._timers.wake
        await self.frontend.ensure_namespace(s.default_namespace)
        await engine.requeue_transfer_tasks()
        await self._timers.start()
        self._grpc, port = build_grpc_server(self.frontend, s.grpc_host, s.grpc_port)
        await self._grpc.start()
        await mark_serving(self._grpc)
        self.endpoints = Endpoints(s.grpc_host, port)
        return self.endpoints

    async def stop(self, grace: float = 2.0) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        if self._timers is not None:
            await self._timers.stop()
            self._timers = None
        if self.frontend is not None:
            await self.frontend.engine.transfers.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
