"""Command validation shared by the command handlers (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    ContinueAsNewWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.common.v1 import Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import WorkflowTaskFailedCause as Cause

from odin.visibility import search_attributes

if TYPE_CHECKING:
    from odin.history.machine import Transition

MAX_ID_LENGTH = 1000


class BadCommand(Exception):
    """An invalid command: the workflow task fails with ``cause`` and the completion is rolled back.
    With ``terminate`` the server then also terminates the run (a payload over a size limit)."""

    def __init__(self, cause: Cause.ValueType, message: str, terminate: bool = False):
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.terminate = terminate


def check_id(value: str, what: str, cause: Cause.ValueType) -> None:
    if not value:
        raise BadCommand(cause, f"{what} is not set on command.")
    if len(value.encode()) > MAX_ID_LENGTH:  # bytes of UTF-8, as Temporal counts
        raise BadCommand(cause, f"{what} exceeds length limit.")
    check_text(value, what, cause)


def check_text(value: str, what: str, cause: Cause.ValueType) -> None:
    if "\x00" in value:  # no client could address it (and PostgreSQL cannot store it)
        raise BadCommand(cause, f"{what} contains a NUL character.")


def check_run_options(
    a: StartChildWorkflowExecutionCommandAttributes | ContinueAsNewWorkflowExecutionCommandAttributes,
    durations: Iterable[Duration],
    cause: Cause.ValueType,
    command: str,
) -> None:
    """Options of a command that starts a run (child, continue-as-new): timeouts not negative, a
    valid retry policy and cron schedule."""
    from odin.history import cron, retry
    from odin.history.events import seconds

    if any(seconds(d) < 0 for d in durations):
        raise BadCommand(cause, f"A timeout on {command} is negative.")
    if a.HasField("retry_policy"):
        try:
            retry.normalize(a.retry_policy)
        except retry.InvalidRetryPolicy as exc:
            raise BadCommand(cause, str(exc)) from exc
    if a.cron_schedule:
        try:
            cron.validate(a.cron_schedule)
        except cron.InvalidCronSchedule as exc:
            raise BadCommand(cause, str(exc)) from exc


@overload
def checked_search_attributes(t: Transition, attributes: SearchAttributes) -> SearchAttributes: ...


@overload
def checked_search_attributes(t: Transition, attributes: None) -> None: ...


@overload
def checked_search_attributes(t: Transition, attributes: SearchAttributes | None) -> SearchAttributes | None: ...


def checked_search_attributes(t: Transition, attributes: SearchAttributes | None) -> SearchAttributes | None:
    """Search attributes of a command, type-checked and typed, or ``BadCommand``. Their size is
    checked apart (``check_search_attribute_sizes``): past it Temporal terminates the run."""
    if attributes is None or t.search_attribute_types is None:
        return attributes
    try:
        return search_attributes.validate(attributes, t.search_attribute_types, check_size=False)
    except search_attributes.InvalidSearchAttribute as exc:
        raise BadCommand(Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, str(exc)) from exc


def check_search_attribute_sizes(attributes: SearchAttributes | None, cause: Cause.ValueType) -> None:
    """Temporal's size limits on the search attributes a command leaves set (2 KiB a value, 40 KiB
    in all): past one the task fails with ``cause`` and the run is terminated."""
    if attributes is None:
        return
    for name, payload in attributes.indexed_fields.items():
        if len(payload.data) > search_attributes.MAX_VALUE_BYTES:
            raise BadCommand(
                cause,
                f"{cause_name(cause)}: search attribute {name} value size {len(payload.data)} exceeds size limit"
                f" {search_attributes.MAX_VALUE_BYTES}",
                terminate=True,
            )
    total = attributes.ByteSize()
    if total > search_attributes.MAX_TOTAL_BYTES:
        raise BadCommand(
            cause,
            f"{cause_name(cause)}: total size of search attributes {total} exceeds size limit {search_attributes.MAX_TOTAL_BYTES}",
            terminate=True,
        )


@dataclass(frozen=True)
class SizeLimits:
    """Byte limits on the payloads and memos a completion's commands carry (Temporal's defaults:
    ``limit.blobSize.warn/error``, ``limit.memoSize.warn/error``)."""

    blob_warn: int = 512 * 1024
    blob_error: int = 2 * 1024 * 1024
    memo_warn: int = 2 * 1024
    memo_error: int = 2 * 1024 * 1024


def cause_name(cause: Cause.ValueType) -> str:
    """A cause as Temporal's Go code prints it: ``..._BAD_RECORD_MARKER_ATTRIBUTES`` -> ``BadRecordMarkerAttributes``."""
    name = Cause.Name(cause)
    return "".join(w.capitalize() for w in name.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").split("_"))


def check_size(t: Transition, size: int, what: str, message: str, cause: Cause.ValueType, memo: bool = False) -> None:
    """Hold one command's payload (or memo, with ``memo``) to the run's size limits, as Temporal does:
    above the warning limit it is noted in ``t.size_warnings`` (the caller logs them); above the
    error limit the task fails with ``cause`` and the run is terminated, both with Temporal's
    message "<Cause>: <message>"."""
    limits = t.size_limits or SizeLimits()
    warn, error = (limits.memo_warn, limits.memo_error) if memo else (limits.blob_warn, limits.blob_error)
    if size <= warn:
        return
    t.size_warnings.append((what, size, warn, error))
    if size > error:
        raise BadCommand(cause, f"{cause_name(cause)}: {message}", terminate=True)


def payload_map_size(fields: Mapping[str, Payload]) -> int:
    """Temporal's size of a map of single payloads (search attributes, memo fields): keys plus data bytes."""
    return sum(len(k.encode()) + len(v.data) for k, v in fields.items())


def payloads_map_size(fields: Mapping[str, Payloads]) -> int:
    """Temporal's size of a map of ``Payloads`` (marker details): keys plus encoded sizes."""
    return sum(len(k.encode()) + v.ByteSize() for k, v in fields.items())


@dataclass(frozen=True)
class ContinueAsNewThresholds:
    """History length and size at which a started workflow task suggests continue-as-new
    (Temporal's ``limit.historyCount/historySize.suggestContinueAsNew`` defaults)."""

    count: int = 4 * 1024
    size: int = 4 * 1024 * 1024


DEFAULT_CONTINUE_AS_NEW = ContinueAsNewThresholds()


@dataclass(frozen=True)
class PendingLimits:
    """How many of each outstanding thing a run may have at once (Temporal's defaults)."""

    activities: int = 2000
    children: int = 2000
    signals: int = 2000  # signals to other workflows not yet delivered
    cancels: int = 2000  # cancellation requests to other workflows not yet delivered


_PENDING = {
    "activities": (Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED, "PendingActivitiesLimitExceeded", "pending activities"),
    "children": (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
        "PendingChildWorkflowsLimitExceeded",
        "pending child workflow executions",
    ),
    "signals": (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
        "PendingSignalsLimitExceeded",
        "pending signals to external workflows",
    ),
    "cancels": (
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
        "PendingRequestCancelLimitExceeded",
        "pending requests to cancel external workflows",
    ),
}


def check_pending(limits: PendingLimits | None, kind: str, count: int) -> None:
    """Refuse a command that would take the run past its limit of pending ``kind``."""
    limit = getattr(limits or PendingLimits(), kind)
    if count >= limit:
        cause, name, what = _PENDING[kind]
        raise BadCommand(cause, f"{name}: the number of {what}, {count}, has reached the per-workflow limit of {limit}")
