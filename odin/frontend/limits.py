"""Size limits on what clients and workers send, as Temporal enforces them.

A payload blob (a call's input, a signal's arguments, an activity's result...) is refused above
2 MiB and logged above 512 KiB; a memo is refused above 2 MiB. The payloads a workflow task
completion's commands carry (activity and child inputs, the run's result or failure, marker
details, signals to other runs, continue-as-new input, search attributes, memos, update messages)
are held to the same limits, memos also logged above 2 KiB; one over its error limit fails the
task and terminates the run, as Temporal does (``odin.history.validation.check_size``). A namespace
may set its own limits in its ``data`` (``odin.blob_size_limit_error``, ``odin.blob_size_limit_warn``,
``odin.memo_size_limit_error``, ``odin.memo_size_limit_warn``, in bytes). A run may have at most 2,000 pending activities,
children, signals and cancellation requests to other workflows (``odin.pending_activities_limit``,
``odin.pending_children_limit``, ``odin.pending_signals_limit``, ``odin.pending_cancels_limit``);
a workflow task whose commands would pass one fails with Temporal's cause. A workflow task started
once the history has 4,096 events or 4 MiB suggests continue-as-new, with the reason
(``odin.history_count_suggest_continue_as_new``, ``odin.history_size_suggest_continue_as_new``). The error limits are also published in
DescribeNamespace (``namespace_info.limits``), where the SDKs read them to refuse oversized
payloads before sending. Whole gRPC messages are capped at 4 MiB by the server itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from temporalio.api.failure.v1 import Failure, ServerFailureInfo
from temporalio.api.namespace.v1 import NamespaceInfo

from odin.errors import InvalidArgument
from odin.history.validation import ContinueAsNewThresholds, PendingLimits, SizeLimits

if TYPE_CHECKING:
    from odin.persistence.store import NamespaceRecord

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BLOB_SIZE_LIMIT_WARN = 512 * 1024
BLOB_SIZE_LIMIT_ERROR = 2 * MIB
MEMO_SIZE_LIMIT_ERROR = 2 * MIB
MEMO_SIZE_LIMIT_WARN = 2 * 1024
# Temporal's limit on a whole workflow task completion (advertised; a completion this large is
# already refused by the 4 MiB message cap).
WORKFLOW_TASK_COMPLETION_SIZE_LIMIT_ERROR = 40 * MIB

BLOB_TOO_LARGE = "Blob data size exceeds limit."
MEMO_TOO_LARGE = "Memo size exceeds limit."
# What an activity's outcome becomes when its payload is over the limit (non-retryable).
RESULT_TOO_LARGE = "Complete result exceeds size limit."
FAILURE_TOO_LARGE = "Failure exceeds size limit."
HEARTBEAT_TOO_LARGE = "Heartbeat exceeds size limit."


@dataclass(frozen=True)
class Limits:
    blob_warn: int = BLOB_SIZE_LIMIT_WARN
    blob_error: int = BLOB_SIZE_LIMIT_ERROR
    memo_error: int = MEMO_SIZE_LIMIT_ERROR
    memo_warn: int = MEMO_SIZE_LIMIT_WARN
    pending: PendingLimits = PendingLimits()
    continue_as_new: ContinueAsNewThresholds = ContinueAsNewThresholds()

    @property
    def sizes(self) -> SizeLimits:
        """The limits a workflow task completion's commands are held to."""
        return SizeLimits(self.blob_warn, self.blob_error, self.memo_warn, self.memo_error)

    def blob_ok(self, size: int, what: str, namespace: str) -> bool:
        """Whether a blob of ``size`` bytes is within the error limit (a warning is logged above
        the warning limit)."""
        if size > self.blob_error:
            log.warning("%s of %d bytes in namespace %s is over the %d-byte limit", what, size, namespace, self.blob_error)
            return False
        if size > self.blob_warn:
            log.warning("%s of %d bytes in namespace %s is over the %d-byte warning limit", what, size, namespace, self.blob_warn)
        return True

    def check_blob(self, size: int, what: str, namespace: str) -> None:
        if not self.blob_ok(size, what, namespace):
            raise InvalidArgument(BLOB_TOO_LARGE)

    def check_memo(self, size: int, namespace: str) -> None:
        if size > self.memo_error:
            raise InvalidArgument(MEMO_TOO_LARGE)

    def published(self) -> NamespaceInfo.Limits:
        limits = NamespaceInfo.Limits(blob_size_limit_error=self.blob_error, memo_size_limit_error=self.memo_error)
        if "workflow_task_completion_size_limit_error" in NamespaceInfo.Limits.DESCRIPTOR.fields_by_name:
            # Newer API versions only (temporalio 1.31's protos do not have it).
            limits.workflow_task_completion_size_limit_error = WORKFLOW_TASK_COMPLETION_SIZE_LIMIT_ERROR
        return limits


def limits_for(ns: NamespaceRecord) -> Limits:
    """The namespace's limits: its own ``data`` keys where set (positive byte counts), else the defaults."""
    data = ns.data.get("data", {})

    def value(key: str, default: int) -> int:
        try:
            n = int(data.get(key, default))
        except (TypeError, ValueError):
            return default
        return n if n > 0 else default

    defaults = PendingLimits()
    can = ContinueAsNewThresholds()
    return Limits(
        blob_warn=value("odin.blob_size_limit_warn", BLOB_SIZE_LIMIT_WARN),
        blob_error=value("odin.blob_size_limit_error", BLOB_SIZE_LIMIT_ERROR),
        memo_error=value("odin.memo_size_limit_error", MEMO_SIZE_LIMIT_ERROR),
        memo_warn=value("odin.memo_size_limit_warn", MEMO_SIZE_LIMIT_WARN),
        pending=PendingLimits(
            activities=value("odin.pending_activities_limit", defaults.activities),
            children=value("odin.pending_children_limit", defaults.children),
            signals=value("odin.pending_signals_limit", defaults.signals),
            cancels=value("odin.pending_cancels_limit", defaults.cancels),
        ),
        continue_as_new=ContinueAsNewThresholds(
            count=value("odin.history_count_suggest_continue_as_new", can.count),
            size=value("odin.history_size_suggest_continue_as_new", can.size),
        ),
    )


def oversized_failure(message: str) -> Failure:
    """The failure an oversized activity outcome is recorded as (the SDK cannot retry it away)."""
    return Failure(message=message, server_failure_info=ServerFailureInfo(non_retryable=True))
