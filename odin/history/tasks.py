"""The kinds of outbox tasks a transition writes (pure).

Transfer tasks are carried out right after the commit (queued for workers, or run against other
workflows); timer tasks fire at their time. Their values are what the ``kind`` column of
``transfer_tasks`` / ``timer_tasks`` holds, so they must never change.
"""

from __future__ import annotations

from enum import StrEnum


class TransferKind(StrEnum):
    WORKFLOW_TASK = "workflow_task"  # queue a workflow task for the run's (or its sticky) queue
    ACTIVITY_TASK = "activity_task"  # queue an activity attempt
    START_CHILD = "start_child"  # start the child a StartChildWorkflowExecution command asked for
    CHILD_CLOSED = "child_closed"  # report a closed child chain to its parent
    PARENT_CLOSE_POLICY = "parent_close_policy"  # terminate/cancel the children of a closed parent
    SIGNAL_EXTERNAL = "signal_external"  # deliver a SignalExternalWorkflowExecution command
    CANCEL_EXTERNAL = "cancel_external"  # deliver a RequestCancelExternalWorkflowExecution command
    SCHEDULE_RUN_CLOSED = "schedule_run_closed"  # tell the schedule that started a run that it closed
    STANDALONE_ACTIVITY_TASK = "standalone_activity_task"  # queue an attempt of a standalone activity


# Transfer tasks the history service carries out itself (the others go to task queues).
SYSTEM_TRANSFERS = frozenset(
    {
        TransferKind.START_CHILD,
        TransferKind.CHILD_CLOSED,
        TransferKind.PARENT_CLOSE_POLICY,
        TransferKind.SIGNAL_EXTERNAL,
        TransferKind.CANCEL_EXTERNAL,
        TransferKind.SCHEDULE_RUN_CLOSED,
    }
)


class TimerKind(StrEnum):
    USER_TIMER = "user_timer"  # a StartTimer command's timer
    ACTIVITY_TIMEOUT = "activity_timeout"  # schedule-to-start/-close, start-to-close or heartbeat
    ACTIVITY_RETRY = "activity_retry"  # the next attempt of an activity is due
    WFT_TIMEOUT = "wft_timeout"  # a workflow task's schedule-to-start (sticky) or start-to-close
    RUN_TIMEOUT = "run_timeout"  # the run's (or the chain's execution) timeout
    FIRST_WFT = "first_wft"  # the first workflow task after a start delay or backoff
    SCHEDULE = "schedule"  # a schedule's next action (the row names the schedule, not a run)
    # A standalone activity's timeouts and next attempt (the row's workflow id is the activity id).
    STANDALONE_ACTIVITY_TIMEOUT = "standalone_activity_timeout"
    STANDALONE_ACTIVITY_RETRY = "standalone_activity_retry"
