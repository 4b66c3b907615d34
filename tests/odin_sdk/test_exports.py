"""The Odin SDK's public surface is what ``odin.sdk.__all__`` names, and it changes only on purpose;
every error the SDK raises derives from one base class."""

from __future__ import annotations

from pathlib import Path

import odin.sdk
from odin.sdk.celery import CanvasError


def test_the_public_names_are_pinned():
    assert odin.sdk.__all__ == [
        "ActivityFunction", "App", "Channel", "ChannelClosed", "DeterministicEffectStore", "ErrGroup", "NoWorkerWarning", "OdinSdkError",
        "ReplayMismatch", "Result", "ResultError", "Retry", "ScheduleEntry", "ScheduleError", "SyncReport", "TimeoutError", "VersionGate", "WaitGroup", "WorkerHost",
        "WorkflowFunction", "WorkflowHandle", "activity", "go", "workflow",
    ]
    for name in odin.sdk.__all__:
        assert getattr(odin.sdk, name) is not None, name


def test_sdk_errors_share_one_base():
    for error in (odin.sdk.ChannelClosed, odin.sdk.ReplayMismatch, odin.sdk.ResultError, odin.sdk.TimeoutError, CanvasError,
                  odin.sdk.ScheduleError):
        assert issubclass(error, odin.sdk.OdinSdkError), error
    assert issubclass(CanvasError, ValueError)  # still what it was for callers catching ValueError


def test_internal_modules_are_private():
    """Users import odin.sdk and these modules; the rest of the package is private (underscored)."""
    public = {"__init__", "activity", "workflow", "celery", "testing"}
    modules = {p.stem for p in Path(odin.sdk.__file__).parent.glob("*.py")}
    assert public <= modules
    assert sorted(m for m in modules - public if not m.startswith("_")) == []
