"""Deterministic side effects and versioned changes for workflow code: ``DeterministicEffectStore``
and ``VersionGate``.

``DeterministicEffectStore.get_or_capture(key, fn)`` runs ``fn`` once, outside the workflow's
deterministic sandbox (so it may read the clock, draw random numbers, read a file), as a local
activity: its value is recorded in the history as a marker, and every replay of the run — after
a worker restart, on another worker — gets that recorded value back without calling ``fn``.

``VersionGate.is_enabled(change, version)`` records whether a run took a changed code path: runs
that started before the change replay the old branch, new runs take the new one.
"""

from __future__ import annotations

import base64
import inspect
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, overload

import temporalio.activity
import temporalio.common
import temporalio.workflow as _tw

T = TypeVar("T")

CAPTURE_ACTIVITY = "odin.capture"
# Functions waiting to be captured, by "<run id>/<key>". Shared between the workflow sandbox and the
# worker (the SDK's modules pass through the sandbox), so the local activity can find them.
_PENDING: dict[str, Callable[[], Any]] = {}


def _encode(value: Any) -> Any:
    """Values JSON cannot carry, tagged so they come back as themselves."""
    if isinstance(value, datetime):
        return {"__odin__": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"__odin__": "date", "v": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"__odin__": "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {"__odin__": "decimal", "v": str(value)}
    if isinstance(value, bytes):
        return {"__odin__": "bytes", "v": base64.b64encode(value).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__odin__", "v"}:
        kind, raw = value["__odin__"], value["v"]
        decoders: dict[str, Callable[[str], Any]] = {
            "datetime": datetime.fromisoformat,
            "date": date.fromisoformat,
            "uuid": uuid.UUID,
            "decimal": Decimal,
            "bytes": base64.b64decode,
        }
        return decoders[kind](raw)
    return value


@temporalio.activity.defn(name=CAPTURE_ACTIVITY)
async def capture(token: str) -> Any:
    """The local activity behind ``get_or_capture``: call the waiting function, return its value."""
    fn = _PENDING.get(token)
    if fn is None:
        raise RuntimeError(f"nothing to capture for {token}: the workflow task that asked for it is gone")
    # ``fn`` was defined in workflow code, so the modules it sees are the sandbox's guarded ones;
    # here, outside the workflow, it may read the clock or draw random numbers.
    with _tw.unsafe.sandbox_unrestricted():
        value = fn()
        if inspect.isawaitable(value):
            value = await value
    return _encode(value)


class DeterministicEffectStore:
    """Values captured once per run and key, then replayed from history."""

    def __init__(self, timeout: float = 60.0, attempts: int = 3):
        self._values: dict[str, Any] = {}
        self._timeout = timedelta(seconds=timeout)
        self._retry = temporalio.common.RetryPolicy(maximum_attempts=attempts)

    # ``fn`` may be async: its awaited value is what is captured.
    @overload
    async def get_or_capture(self, key: str, fn: Callable[[], Awaitable[T]]) -> T: ...
    @overload
    async def get_or_capture(self, key: str, fn: Callable[[], T]) -> T: ...
    async def get_or_capture(self, key: str, fn: Callable[[], Any]) -> Any:
        if key in self._values:
            return self._values[key]
        token = f"{_tw.info().run_id}/{key}"
        _PENDING[token] = fn
        try:
            recorded = await _tw.execute_local_activity(
                CAPTURE_ACTIVITY, token, start_to_close_timeout=self._timeout, retry_policy=self._retry
            )
        finally:
            _PENDING.pop(token, None)
        value = self._values[key] = _decode(recorded)
        return value


class VersionGate:
    """Versioned changes to workflow code, recorded per run:

        gate = VersionGate()
        if gate.is_enabled("new-payment-flow", version=2):
            await process_payment_v2()
        else:
            await process_payment_v1()   # runs that started before the change keep this branch
    """

    @staticmethod
    def _id(change_id: str, version: int) -> str:
        return f"{change_id}@v{version}"

    def is_enabled(self, change_id: str, version: int = 1) -> bool:
        return _tw.patched(self._id(change_id, version))

    def deprecate(self, change_id: str, version: int = 1) -> None:
        """Once no run from before the change is left: the new branch is the only one."""
        _tw.deprecate_patch(self._id(change_id, version))
