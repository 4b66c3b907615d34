"""Command validation shared by the command handlers (pure)."""

from __future__ import annotations

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
