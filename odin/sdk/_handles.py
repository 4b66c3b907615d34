"""``WorkflowHandle``: a started workflow, seen from outside it (Celery's ``AsyncResult``).

Every method has a blocking form for ordinary code (``handle.get(timeout=30)``) and an ``_async``
form for asyncio code (``await handle.result_async()``).
"""

from __future__ import annotations

import asyncio
import builtins
from typing import TYPE_CHECKING, Any, Generic

import temporalio.client
from temporalio.client import WorkflowExecutionStatus
from typing_extensions import TypeVar

from odin import bridge
from odin.sdk._errors import OdinSdkError

if TYPE_CHECKING:
    from odin.sdk._app import App

# A workflow's result type. Defaults to Any for a handle nobody typed (``app.get_handle(id)``).
R = TypeVar("R", default=Any)


class TimeoutError(OdinSdkError):  # noqa: A001 - the name Celery users know from AsyncResult.get
    """The workflow did not finish within the time given to ``result``/``get``."""


class WorkflowHandle(Generic[R]):
    """A workflow by id. A handle from ``start``/``delay`` follows its chain: signals, queries,
    updates and status reach the chain's current run after a continue-as-new (or cron/retry),
    cancel and terminate only while that chain is the id's current one, and ``result`` follows
    it to its end. A handle made with an explicit ``run_id`` stays on that run."""

    def __init__(
        self,
        app: App,
        workflow_id: str,
        run_id: str | None = None,
        first_execution_run_id: str | None = None,
        *,
        follow_runs: bool = False,
    ):
        self.app = app
        self.id = workflow_id
        self.run_id = run_id  # the run started (or asked for)
        self._first_execution_run_id = first_execution_run_id
        self._follow_runs = follow_runs

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.id} run {self.run_id}>"

    async def _handle(self) -> temporalio.client.WorkflowHandle[Any, R]:
        client = await self.app.client_async()
        return temporalio.client.WorkflowHandle(
            client,
            self.id,
            run_id=None if self._follow_runs else self.run_id,
            result_run_id=self.run_id,
            first_execution_run_id=self._first_execution_run_id,
        )

    # -- async forms ---------------------------------------------------------------------------

    async def result_async(self, timeout: float | None = None) -> R:
        """The workflow's result (following continue-as-new); its failure raised as
        ``temporalio.client.WorkflowFailureError``; ``TimeoutError`` if not done in ``timeout`` s."""
        handle = await self._handle()
        try:
            return await asyncio.wait_for(handle.result(), timeout)
        except builtins.TimeoutError:
            raise TimeoutError(f"workflow {self.id} did not finish within {timeout} s") from None

    async def signal_async(self, name: str, *args: Any) -> None:
        await (await self._handle()).signal(name, args=list(args))

    async def query_async(self, name: str, *args: Any) -> Any:
        return await (await self._handle()).query(name, args=list(args))

    async def update_async(self, name: str, *args: Any, wait: bool = True) -> Any:
        """Send an update; with ``wait`` (default) return its result, else once it is accepted."""
        handle = await self._handle()
        if wait:
            return await handle.execute_update(name, args=list(args))
        await handle.start_update(name, args=list(args), wait_for_stage=temporalio.client.WorkflowUpdateStage.ACCEPTED)
        return None

    async def cancel_async(self) -> None:
        await (await self._handle()).cancel()

    async def terminate_async(self, reason: str = "") -> None:
        await (await self._handle()).terminate(reason=reason or None)

    async def describe_async(self) -> temporalio.client.WorkflowExecutionDescription:
        return await (await self._handle()).describe()

    async def status_async(self) -> WorkflowExecutionStatus | None:
        # None only if the server reported no status (the proto's unspecified value).
        return (await self.describe_async()).status

    async def history_async(self) -> temporalio.client.WorkflowHistory:
        """The run's event history (to inspect, export or replay)."""
        return await (await self._handle()).fetch_history()

    # -- blocking forms ------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> R:
        return bridge.run(self.result_async(timeout))

    get = result  # Celery's AsyncResult.get

    def signal(self, name: str, *args: Any) -> None:
        bridge.run(self.signal_async(name, *args))

    def query(self, name: str, *args: Any) -> Any:
        return bridge.run(self.query_async(name, *args))

    def update(self, name: str, *args: Any, wait: bool = True) -> Any:
        return bridge.run(self.update_async(name, *args, wait=wait))

    def cancel(self) -> None:
        bridge.run(self.cancel_async())

    revoke = cancel  # what Celery calls it

    def terminate(self, reason: str = "") -> None:
        bridge.run(self.terminate_async(reason))

    def describe(self) -> temporalio.client.WorkflowExecutionDescription:
        return bridge.run(self.describe_async())

    def history(self) -> temporalio.client.WorkflowHistory:
        return bridge.run(self.history_async())

    @property
    def status(self) -> WorkflowExecutionStatus | None:
        return bridge.run(self.status_async())

    def ready(self) -> bool:
        """True once the workflow has closed, however it closed."""
        return self.status != WorkflowExecutionStatus.RUNNING

    def successful(self) -> bool:
        return self.status == WorkflowExecutionStatus.COMPLETED

    def failed(self) -> bool:
        return self.status in (
            WorkflowExecutionStatus.FAILED,
            WorkflowExecutionStatus.TIMED_OUT,
            WorkflowExecutionStatus.TERMINATED,
            WorkflowExecutionStatus.CANCELED,
        )

