"""The one bridge from synchronous callers (Celery tasks, Flask views) to Odin's asyncio core.

A process gets one event loop on a daemon thread; ``run`` submits a coroutine to it and blocks
until it finishes. Everything asynchronous a process owns (database threads, Redis clients, the
engine) lives on that loop, so sync code never creates loops of its own. After ``fork`` the
child starts with no loop and makes its own on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "odin-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from its own loop: await the coroutine instead")
        return run_on(self.loop, coro, timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def run_on(loop: asyncio.AbstractEventLoop, coro: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``coro`` on ``loop`` (owned by another thread) and wait for it. On timeout the
    coroutine is cancelled too, so an abandoned call does not keep running on the loop."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


_lock = threading.Lock()
_loop: LoopThread | None = None


def loop_thread() -> LoopThread:
    """This process's loop thread, started on first use."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = LoopThread()
        return _loop


def run(coro: Awaitable[T], timeout: float | None = None) -> T:
    return loop_thread().run(coro, timeout)


def _forget_after_fork() -> None:
    global _loop, _lock
    _loop = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
