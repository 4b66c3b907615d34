"""Odin's Python SDK: durable workflows with Celery's feel.

    from odin.sdk import App, Retry, workflow

    app = App("shop")

    @app.activity(retry=Retry(max_attempts=5), start_to_close_timeout=30)
    def charge(order_id: str) -> str: ...

    @app.workflow
    async def checkout(order_id: str) -> str:
        receipt = await charge(order_id)
        await workflow.sleep(3600)
        return receipt

    checkout.delay("o-1").get(timeout=7200)

Run the workers with ``odin worker -A shop:app``. The workflow API is ``odin.sdk.workflow``; code
running in an activity uses ``odin.sdk.activity``; coordination inside workflows (``go``,
``WaitGroup``, ``ErrGroup``, ``Channel``, ``Result``), captured side effects
(``DeterministicEffectStore``) and code versioning (``VersionGate``) are here. Every error the SDK
raises itself derives from ``OdinSdkError``. Periodic starts: ``app.schedule(...)`` and Celery's
``app.conf.beat_schedule``, synced to server-side schedules by ``odin beat -A shop:app`` (or
``odin worker -B``).
"""

from odin.sdk import activity, workflow
from odin.sdk._app import App, NoWorkerWarning
from odin.sdk._beat import ScheduleEntry, ScheduleError, SyncReport
from odin.sdk._defs import ActivityFunction, WorkflowFunction
from odin.sdk._effects import DeterministicEffectStore, VersionGate
from odin.sdk._errors import OdinSdkError
from odin.sdk._handles import TimeoutError, WorkflowHandle
from odin.sdk._options import Retry
from odin.sdk._primitives import Channel, ChannelClosed, ErrGroup, Result, ResultError, WaitGroup, go
from odin.sdk._worker import ReplayMismatch, WorkerHost

__all__ = [
    "ActivityFunction",
    "App",
    "Channel",
    "ChannelClosed",
    "DeterministicEffectStore",
    "ErrGroup",
    "NoWorkerWarning",
    "OdinSdkError",
    "ReplayMismatch",
    "Result",
    "ResultError",
    "Retry",
    "ScheduleEntry",
    "ScheduleError",
    "SyncReport",
    "TimeoutError",
    "VersionGate",
    "WaitGroup",
    "WorkerHost",
    "WorkflowFunction",
    "WorkflowHandle",
    "activity",
    "go",
    "workflow",
]
