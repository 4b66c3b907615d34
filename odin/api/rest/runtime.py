"""Where the REST app finds Odin's runtime, and the event loop that runtime lives on.

Under gunicorn each worker process owns a runtime, started on first use (after the fork) on the
process's bridge loop. Under ``odin dev`` the app shares the runtime of the gRPC door: it is
attached to that runtime and its loop, so one process never opens the same SQLite file twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from odin import bridge
from odin.config import Settings
from odin.errors import Unavailable
from odin.runtime import NotMigrated, Runtime

T = TypeVar("T")


class RuntimeHandle:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._runtime: Runtime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owned = True
        self._lock = threading.Lock()

    @classmethod
    def attached(cls, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> RuntimeHandle:
        """A handle on a runtime someone else started (and will stop) on ``loop``."""
        handle = cls(runtime.settings)
        handle._runtime, handle._loop, handle._owned = runtime, loop, False
        return handle

    def get(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                # A web process serves requests; the jobs of time belong to the system workers
                # (or to the single-process server when there is no Redis).
                try:
                    self._runtime = bridge.run(Runtime(self.settings, run_system_jobs=False).start())
                except NotMigrated as exc:
                    raise Unavailable(str(exc)) from None
                self._loop = bridge.loop_thread().loop
            return self._runtime

    def run(self, make_coro: Callable[[Runtime], Awaitable[T]], timeout: float | None = 60.0) -> T:
        """Run ``make_coro(runtime)`` on the runtime's loop and wait for its result."""
        runtime = self.get()
        assert self._loop is not None
        return bridge.run_on(self._loop, make_coro(runtime), timeout)

    def close(self) -> None:
        """Stop the runtime if this handle started it."""
        with self._lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None and self._owned:
            bridge.run_on(self._loop, runtime.stop(), 30)
