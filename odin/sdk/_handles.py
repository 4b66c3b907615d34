"""``WorkflowHandle``: a started workflow, seen from outside it (Celery's ``AsyncResult``).

Every method has a blocking form for ordinary code (``handle.get(timeout=30)``) and an ``_async``
form for asyncio code (``await handle.get_async()``).

``get`` is Celery's: a failed run raises the original exception's type with its message (when
this process has that type), the remote stack trace in ``traceback``; ``state`` is Celery's
state name. ``result``/``status_async`` are temporalio's forms: ``WorkflowFailureError`` with the
failure as its cause chain, and the execution status enum.
"""

from __future__ import annotations

import asyncio
import builtins
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

import temporalio.client
import temporalio.exceptions
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from typing_extensions import TypeVar

from odin import bridge
from odin.sdk._errors import OdinSdkError, exception_class

if TYPE_CHECKING:
    from odin.sdk._app import App

# A workflow's result type. Defaults to Any for a handle nobody typed (``app.get_handle(id)``).
R = TypeVar("R", default=Any)


class TimeoutError(OdinSdkError):  # noqa: A001 - the name Celery users know from AsyncResult.get
    """The workflow did not finish within the time given to ``result``/``get``."""


# Celery's task states (celery.states), as ``WorkflowHandle.state`` gives them.
PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED = "PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})

_CLOSED_STATES = {
    WorkflowExecutionStatus.COMPLETED: SUCCESS,
    WorkflowExecutionStatus.FAILED: FAILURE,
    WorkflowExecutionStatus.TIMED_OUT: FAILURE,
    WorkflowExecutionStatus.CANCELED: REVOKED,
    WorkflowExecutionStatus.TERMINATED: REVOKED,
    # A run that handed over to a new one (seen through a handle pinned to it) ended well.
    WorkflowExecutionStatus.CONTINUED_AS_NEW: SUCCESS,
}


def state_of(description: temporalio.client.WorkflowExecutionDescription) -> str:
    """A run's Celery state: PENDING until a worker first picks it up (no workflow task has
    started: only the start and the first task are in its history), RETRY while one of its
    activities waits for a retry, STARTED while it runs, then SUCCESS, FAILURE or REVOKED."""
    status = description.status
    if status in _CLOSED_STATES:
        return _CLOSED_STATES[status]
    raw = description.raw_description
    if description.history_length <= 2:
        return PENDING
    if any(a.attempt > 1 and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED for a in raw.pending_activities):
        return RETRY
    return STARTED


def _root_failure(error: BaseException) -> temporalio.exceptions.ApplicationError | None:
    """The user's exception in a failure's cause chain: the innermost application error that
    names its module (``failure_of``'s), else the innermost one."""
    found = named = None
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, temporalio.exceptions.ApplicationError):
            found = cause
            if cause.details and isinstance(cause.details[0], dict) and "module" in cause.details[0]:
                named = cause
        cause = cause.__cause__
    return named or found


def _stack_of(error: BaseException) -> str | None:
    """The remote stack trace of a failure: the innermost one in its cause chain, where the
    user's exception was raised, under its type and message."""
    found = None
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, temporalio.exceptions.FailureError) and cause.failure is not None and cause.failure.stack_trace:
            kind = cause.type if isinstance(cause, temporalio.exceptions.ApplicationError) else type(cause).__name__
            found = f"{kind}: {cause.message}\n{cause.failure.stack_trace}"
        cause = cause.__cause__
    return found


def original_error(error: WorkflowFailureError) -> BaseException:
    """What Celery's ``get`` raises for a failed run: the user's exception type (when this
    process has it and it takes a message) with its message, the remote stack trace as its
    ``traceback`` attribute and the temporalio error as its cause; else ``error`` itself."""
    root = _root_failure(error)
    if root is None:
        return error
    details = root.details[0] if root.details else None
    cls = exception_class(root.type, details)
    if cls is None:
        return error
    try:
        raised = cls(root.message)
    except Exception:  # an exception class whose constructor wants more than a message
        return error
    raised.traceback = _stack_of(error)  # type: ignore[attr-defined]  # Celery's remote traceback
    raised.__cause__ = error
    return raised


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

    @property
    def task_id(self) -> str:
        """Celery's name for the id."""
        return self.id

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

    @overload
    async def get_async(self, timeout: float | None = None, propagate: Literal[True] = True, interval: float = 0.5) -> R: ...
    @overload
    async def get_async(self, timeout: float | None = None, *, propagate: bool, interval: float = 0.5) -> R | BaseException: ...
    async def get_async(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5) -> R | BaseException:
        """Celery's ``get``: the result; a failure raised as the original exception
        (``original_error``), or with ``propagate=False`` returned instead. ``interval`` is
        Celery's polling period, unused: the server tells when the run closes."""
        del interval
        try:
            return await self.result_async(timeout)
        except WorkflowFailureError as failure:
            error = original_error(failure)
            if not propagate:
                return error
            if error is failure:
                raise
            raise error from failure

    async def state_async(self) -> str:
        return state_of(await self.describe_async())

    async def traceback_async(self) -> str | None:
        """The remote stack trace of a failed run, else None (Celery's ``traceback``)."""
        if await self.status_async() != WorkflowExecutionStatus.FAILED:
            return None
        try:
            await self.result_async()  # closed: the failure is read from the history at once
        except WorkflowFailureError as failure:
            return _stack_of(failure)
        return None

    async def forget_async(self) -> None:
        """Celery's ``forget``: delete the run and its history from the server."""
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

        client = await self.app.client_async()
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=self.id, run_id=self.run_id or ""),
            )
        )

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

    @overload
    def get(self, timeout: float | None = None, propagate: Literal[True] = True, interval: float = 0.5) -> R: ...
    @overload
    def get(self, timeout: float | None = None, *, propagate: bool, interval: float = 0.5) -> R | BaseException: ...
    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5) -> R | BaseException:
        """Celery's ``AsyncResult.get`` (see ``get_async``)."""
        return bridge.run(self.get_async(timeout, propagate=propagate, interval=interval))

    wait = get  # Celery's older name

    @property
    def state(self) -> str:
        """Celery's state: PENDING, STARTED, RETRY, SUCCESS, FAILURE or REVOKED."""
        return bridge.run(self.state_async())

    @property
    def traceback(self) -> str | None:
        return bridge.run(self.traceback_async())

    def forget(self) -> None:
        bridge.run(self.forget_async())

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
    def status(self) -> str:
        """Celery's ``status``: the same as ``state`` (``status_async()`` gives the execution
        status enum)."""
        return self.state

    def ready(self) -> bool:
        """True once the workflow has closed, however it closed."""
        return self.state in READY_STATES

    def successful(self) -> bool:
        return self.state == SUCCESS

    def failed(self) -> bool:
        """True once it failed or timed out (Celery's FAILURE; a revoked run is not failed)."""
        return self.state == FAILURE

