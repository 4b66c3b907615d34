"""Go-style concurrency for workflows: ``go``, ``WaitGroup``, ``ErrGroup``, ``Channel`` and the
``Result`` pipeline.

They are built on asyncio alone. Inside a workflow, asyncio runs on the SDK's deterministic event
loop, so these are replay-safe there; outside one (the worker host, tests) they are ordinary
asyncio tools.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, cast

from odin.sdk._errors import OdinSdkError

T = TypeVar("T")
U = TypeVar("U")


def go(work: Awaitable[T] | Callable[[], Awaitable[T]], *args: Any) -> asyncio.Task[T]:
    """Start ``work`` concurrently (a coroutine, or an async function and its arguments)."""
    coro = work(*args) if callable(work) else work
    return asyncio.ensure_future(coro)


class WaitGroup:
    """Wait for a number of concurrent jobs: ``add(n)`` before starting them, ``done()`` as each
    ends, ``await wait()`` until the count is back to zero."""

    def __init__(self) -> None:
        self._count = 0
        self._zero = asyncio.Event()
        self._zero.set()

    def add(self, n: int = 1) -> None:
        if self._count + n < 0:
            raise ValueError("WaitGroup counter went negative")
        self._count += n
        if self._count == 0:
            self._zero.set()
        else:
            self._zero.clear()

    def done(self) -> None:
        self.add(-1)

    @property
    def count(self) -> int:
        return self._count

    async def wait(self) -> None:
        await self._zero.wait()

    def go(self, work: Awaitable[T] | Callable[[], Awaitable[T]], *args: Any) -> asyncio.Task[T]:
        """``add(1)``, start ``work``, ``done()`` when it ends however it ends."""
        self.add(1)
        task = go(work, *args)
        task.add_done_callback(lambda _: self.done())
        return task


class ErrGroup:
    """Cancellable fan-out: ``go`` starts jobs; ``await wait()`` returns their results in start
    order, or raises the first error after cancelling the jobs still running."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []
        self._first_error: BaseException | None = None

    def go(self, work: Awaitable[T] | Callable[[], Awaitable[T]], *args: Any) -> asyncio.Task[T]:
        task = go(work, *args)
        task.add_done_callback(self._finished)
        self._tasks.append(task)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._first_error is not None:
            return
        error = task.exception()
        if error is not None:
            self._first_error = error
            self.cancel()

    def cancel(self) -> None:
        """Cancel every job still running."""
        for task in self._tasks:
            if not task.done():
                task.cancel()

    async def wait(self) -> list[Any]:
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        except asyncio.CancelledError:
            self.cancel()
            raise
        if self._first_error is not None:
            raise self._first_error
        return [task.result() for task in self._tasks]


class ChannelClosed(OdinSdkError):
    """Sending on a closed channel."""


class Channel(Generic[T]):
    """A buffered channel: ``send`` waits while ``buffer_size`` items are waiting (0: until a
    receiver takes it); ``receive`` waits for an item; ``close()`` ends it once drained.
    ``async for item in channel`` receives until it is closed and empty."""

    def __init__(self, buffer_size: int = 0):
        if buffer_size < 0:
            raise ValueError("buffer_size cannot be negative")
        self.buffer_size = buffer_size
        self._items: deque[T] = deque()
        self._closed = False
        self._changed = asyncio.Condition()
        self._taken = 0  # items received so far, for unbuffered sends to wait on

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, item: T) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or len(self._items) < max(self.buffer_size, 1))
            if self._closed:
                raise ChannelClosed("send on a closed channel")
            self._items.append(item)
            ticket = self._taken + len(self._items)
            self._changed.notify_all()
            if self.buffer_size == 0:  # unbuffered: hand over, i.e. wait until it was received
                await self._changed.wait_for(lambda: self._taken >= ticket or self._closed)

    async def receive(self) -> T:
        """The next item; ``ChannelClosed`` once the channel is closed and empty."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._items or self._closed)
            if not self._items:
                raise ChannelClosed("receive on a closed, empty channel")
            item = self._items.popleft()
            self._taken += 1
            self._changed.notify_all()
            return item

    def close(self) -> None:
        self._closed = True
        go(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            try:
                yield await self.receive()
            except ChannelClosed:
                return


class ResultError(OdinSdkError):
    """A ``Result`` pipeline refused a value (``ensure``)."""


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    value = fn(*args)
    return await value if inspect.isawaitable(value) else value


class Result(Generic[T]):
    """A pipeline over an awaitable's outcome, awaited at the end:

        value = await (Result.of(execute_activity(charge, order))
                       .then(record)            # on success: transform the value
                       .recover(refund)         # on error: turn the exception into a value
                       .ensure(lambda v: v.ok)  # check the value; a failed check is an error
                       .finally_(log))          # always: see the outcome, pass it on

    Steps may be sync or async functions. ``finally_`` receives the Result itself (``ok``,
    ``value``, ``error``)."""

    # A step is (kind, function), or ("ensure", (predicate, message)).
    def __init__(self, source: Awaitable[Any] | Callable[[], Awaitable[Any]], steps: tuple[tuple[str, Any], ...] = ()):
        self._source = source
        self._steps = steps
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None

    @classmethod
    def of(cls, source: Awaitable[T] | Callable[[], Awaitable[T]]) -> Result[T]:
        return cls(source)

    def _with(self, step: tuple[str, Any]) -> Result[Any]:
        return Result(self._source, self._steps + (step,))

    def then(self, fn: Callable[[T], U | Awaitable[U]]) -> Result[U]:
        return self._with(("then", fn))

    def recover(self, fn: Callable[[BaseException], T | Awaitable[T]]) -> Result[T]:
        return self._with(("recover", fn))

    def ensure(self, predicate: Callable[[T], bool | Awaitable[bool]], message: str = "value rejected") -> Result[T]:
        return self._with(("ensure", (predicate, message)))

    def finally_(self, fn: Callable[[Result[T]], Any]) -> Result[T]:
        return self._with(("finally", fn))

    async def _run(self) -> T:
        try:
            source = self._source() if callable(self._source) else self._source
            self.value, self.ok = await source, True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error, self.ok = exc, False
        for kind, fn in self._steps:
            try:
                if kind == "then" and self.ok:
                    self.value = await _call(fn, self.value)
                elif kind == "recover" and not self.ok:
                    self.value, self.error, self.ok = await _call(fn, self.error), None, True
                elif kind == "ensure" and self.ok:
                    predicate, message = fn
                    if not await _call(predicate, self.value):
                        self.error, self.ok = ResultError(message), False
                elif kind == "finally":
                    await _call(fn, self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error, self.ok = exc, False
        if not self.ok:
            assert self.error is not None  # every step that fails records its error
            raise self.error
        # The steps' types chain from the source's to T (then/recover/ensure say how).
        return cast(T, self.value)

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()
