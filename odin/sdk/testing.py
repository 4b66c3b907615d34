"""Testing workflows: an in-process Odin with time skipping, and replay of exported histories.

    async with TestEnvironment() as env:
        env.bind(app)                                   # the app now talks to this Odin
        async with app.worker():
            handle = await reminder.start_async("ann")  # sleeps for a week...
            assert await handle.result_async() == "reminded ann"   # ...in milliseconds

With time skipping on, whenever nothing is running (no workflow task or activity in flight or
queued, nothing waiting to be dispatched) the server's clock jumps to the next timer. Timeouts of
work in flight are never skipped. ``await env.sleep(seconds)`` moves time by hand.

``replay(app, history)`` replays a history exported as JSON (``GET .../history`` of the REST API,
``odin workflow history``, or Temporal's own JSON) through the app's current code and raises
``NondeterminismError``-style failures before a deploy would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import temporalio.client
from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.history.v1 import History
from temporalio.worker import Replayer

from odin.clock import SkippingClock
from odin.config import Settings, sqlite_url_for_path
from odin.history.state import MutableState
from odin.sdk._app import App
from odin.sdk._payloads import DATA_CONVERTER
from odin.sdk._worker import sandbox_runner

if TYPE_CHECKING:
    from odin.server import OdinServer

log = logging.getLogger(__name__)

# How often the environment looks for a quiet moment, and how long it must stay quiet.
POLL = 0.02

T = TypeVar("T")


def _started(part: T | None) -> T:
    """A part of the server that exists once the environment has started."""
    if part is None:
        raise RuntimeError("the test environment is not started: use `async with TestEnvironment()` or start()")
    return part


class TestEnvironment:
    __test__ = False  # not a pytest test class

    def __init__(self, *, time_skipping: bool = True, namespace: str = "default", database_url: str | None = None):
        self.time_skipping = time_skipping
        self.namespace = namespace
        self.clock = SkippingClock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if database_url:
            self._database_url = database_url
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="odin-test-")
            self._database_url = sqlite_url_for_path(str(Path(self._tmp.name) / "odin.db"))
        self.server: OdinServer | None = None
        self._skipper: asyncio.Task[None] | None = None
        self.skipped_seconds = 0.0

    async def start(self) -> TestEnvironment:
        from odin.server import OdinServer

        settings = Settings(database_url=self._database_url, grpc_port=0, default_namespace=self.namespace)
        server = self.server = OdinServer(settings, clock=self.clock)
        await server.start()
        if self.time_skipping:
            self._skipper = asyncio.ensure_future(self._skip_when_idle())
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{_started(_started(self.server).endpoints).grpc_port}"

    def bind(self, *apps: App) -> None:
        """Point apps at this environment."""
        for app in apps:
            app.address, app.namespace = self.address, self.namespace

    async def client(self) -> temporalio.client.Client:
        return await temporalio.client.Client.connect(self.address, namespace=self.namespace, data_converter=DATA_CONVERTER)

    def now(self) -> datetime:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        """Move the server's time forward; timers due meanwhile fire."""
        self.clock.advance(seconds)
        self.skipped_seconds += seconds
        self._wake_timers()
        await asyncio.sleep(POLL)

    async def shutdown(self) -> None:
        if self._skipper is not None:
            self._skipper.cancel()
            await asyncio.gather(self._skipper, return_exceptions=True)
        if self.server is not None:
            await self.server.stop(grace=0.5)
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> TestEnvironment:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()

    # -- time skipping -------------------------------------------------------------------------

    def _wake_timers(self) -> None:
        from odin.beat.timers import AsyncioTimerScheduler

        timers = _started(self.server).runtime.timers
        # Without Redis the server fires its timers itself, with a scheduler that can be woken.
        if not isinstance(timers, AsyncioTimerScheduler):
            raise RuntimeError(f"the test environment's server needs its own timer scheduler, not {timers!r}")
        timers.wake()

    async def _skip_when_idle(self) -> None:
        server = _started(self.server)
        engine = _started(server.runtime.engine)
        while True:
            await asyncio.sleep(POLL)
            try:
                before = engine.commits
                if not await self._idle():
                    continue
                await asyncio.sleep(POLL)  # still quiet a moment later: nothing is about to happen
                if engine.commits != before or not await self._idle():
                    continue
                next_timer = await _started(server.store).next_timer_time()
                if next_timer is None:
                    continue
                gap = (next_timer - self.clock.now()).total_seconds()
                if gap > 0:
                    self.clock.advance(gap + 0.001)
                    self.skipped_seconds += gap
                    self._wake_timers()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep skipping through passing database hiccups
                log.exception("time skipping check failed")

    async def _idle(self) -> bool:
        """Nothing is running or queued: every open run only waits for time (or a signal)."""
        store = _started(_started(self.server).store)
        if await store.list_transfer_tasks(1):
            return False
        now = self.clock.now().timestamp()
        for ns in await store.list_namespaces():
            if ns.state == NamespaceState.NAMESPACE_STATE_DELETED:
                continue
            for workflow_id, run_id in await store.list_runs(ns.id, 1000, running_only=True):
                record = await store.get_execution(ns.id, workflow_id, run_id)
                if record is None:
                    continue
                s = MutableState.from_bytes(record.state)
                if s.wft is not None:
                    return False
                # An activity waiting for its retry back-off is waiting for time; any other is work.
                if any(a.started or a.scheduled_time <= now for a in s.activities.values()):
                    return False
        return True


# -- replaying exported histories -----------------------------------------------------------


def load_history(source: str | Path | dict[str, Any]) -> tuple[str, History]:
    """A history as exported (REST API / ``odin workflow history`` / Temporal JSON) -> (workflow
    id, proto). ``source`` is a file path, a JSON text or the parsed document."""
    from odin.api.rest.codec import from_json

    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        source = Path(source).read_text()
    doc = json.loads(source) if isinstance(source, str) else source
    workflow_id = doc.get("workflowId", "replayed")
    events = doc.get("history", doc)
    history = from_json(events, History, what="history")
    if not history.events:
        raise ValueError("the history has no events")
    return workflow_id, history


async def replay(app: App, source: str | Path | dict[str, Any]) -> None:
    """Replay an exported history through ``app``'s workflows; raises on non-determinism."""
    workflow_id, history = load_history(source)
    replayer = Replayer(
        workflows=[w.cls for w in app.workflows.values()], workflow_runner=sandbox_runner(), data_converter=DATA_CONVERTER
    )
    await replayer.replay_workflow(temporalio.client.WorkflowHistory(workflow_id, list(history.events)))
