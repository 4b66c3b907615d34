"""Command validation shared by the command handlers (pure)."""

from __future__ import annotations

from temporalio.api.enums.v1 import WorkflowTaskFailedCause

from odin.visibility import search_attributes

MAX_ID_LENGTH = 1000


class BadCommand(Exception):
    """An invalid command: the workflow task fails with ``cause`` and the completion is rolled back."""

    def __init__(self, cause: int, message: str):
        super().__init__(message)
        self.cause = cause
        self.message = message


def check_id(value: str, what: str, cause: int) -> None:
    if not value:
        raise BadCommand(cause, f"{what} is not set on command.")
    if len(value) > MAX_ID_LENGTH:
        raise BadCommand(cause, f"{what} exceeds length limit.")
    check_text(value, what, cause)


def check_text(value: str, what: str, cause: int) -> None:
    if "\x00" in value:  # no client could address it (and PostgreSQL cannot store it)
        raise BadCommand(cause, f"{what} contains a NUL character.")


def check_run_options(a, durations, cause: int, command: str) -> None:
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


def checked_search_attributes(t, attributes):
    """Search attributes of a command, type-checked and typed, or ``BadCommand``."""
    if attributes is None or t.search_attribute_types is None:
        return attributes
    try:
        return search_attributes.validate(attributes, t.search_attribute_types)
    except search_attributes.InvalidSearchAttribute as exc:
        raise BadCommand(WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, str(exc)) from exc
