"""What activity code may call while it runs."""

from __future__ import annotations

from typing import Any

import temporalio.activity as _ta
from temporalio.activity import Info, info, is_cancelled  # noqa: F401

__all__ = ["Info", "heartbeat", "heartbeat_details", "info", "is_cancelled"]


def heartbeat(*details: Any) -> None:
    """Tell the server the activity is alive, with progress ``details`` a retry can resume from
    (``heartbeat_details()`` on the next attempt). A cancelled activity learns it here."""
    _ta.heartbeat(*details)


def heartbeat_details() -> tuple[Any, ...]:
    """The details of the last heartbeat of the previous attempt (empty on a first attempt)."""
    return tuple(_ta.info().heartbeat_details)
