"""The one base class of the errors the Odin SDK raises, so callers can catch them all at once, and
how an ordinary exception crosses to the server and back.

A failed workflow or activity surfaces from ``handle.get()`` as the original exception's type
(when this process has it) with its message; the failure the server keeps names the type, its
module and the remote stack trace (``failure_of``)."""

from __future__ import annotations

import builtins
import sys
from typing import Any

from temporalio.exceptions import ApplicationError


class OdinSdkError(Exception):
    """Base of every error the Odin SDK itself raises."""


def failure_of(exc: BaseException, *, non_retryable: bool) -> ApplicationError:
    """``exc`` as the failure the server records: its class name as the type (what Temporal's
    ``non_retryable_error_types`` match on), its message, and its module and qualified name as
    details so the caller can raise the same type again. Raise it ``from exc``: the original
    stack trace travels as the cause."""
    cls = type(exc)
    return ApplicationError(
        str(exc), {"module": cls.__module__, "qualname": cls.__qualname__}, type=cls.__name__, non_retryable=non_retryable
    )


def exception_class(type_name: str | None, details: Any) -> type[BaseException] | None:
    """The exception class a failure names, if this process has it: from the module and qualified
    name ``failure_of`` recorded (only modules already imported are looked in), else a built-in
    exception of that name."""
    found: Any = None
    if isinstance(details, dict) and isinstance(details.get("module"), str) and isinstance(details.get("qualname"), str):
        found = sys.modules.get(details["module"])
        for part in details["qualname"].split("."):
            found = getattr(found, part, None)
    if found is None and type_name:
        found = getattr(builtins, type_name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None
