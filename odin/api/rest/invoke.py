"""``invoke``: the one way a REST route or a web UI page calls the frontend.

Each call names the WorkflowService (or OperatorService) operation it stands for and the namespace
it acts on, so request-level policy has one home: authentication of the request's credentials
(``flask.request.headers``, e.g. ``Authorization: Bearer ...``), authorization of ``operation`` in
``namespace``, and per-namespace rate limits belong at the top of ``invoke`` and apply to the API
and the UI alike.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar

from flask import current_app, g
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

from odin.errors import DeadlineExceeded, OdinError, unavailable
from odin.frontend import FrontendService

log = logging.getLogger(__name__)

T = TypeVar("T")

OPERATIONS = frozenset(
    [m.name for m in workflow_service.DESCRIPTOR.services_by_name["WorkflowService"].methods]
    + [m.name for m in operator_service.DESCRIPTOR.services_by_name["OperatorService"].methods]
)
# Room for the frontend's own long-poll budget, plus the trip to the loop and back.
DEFAULT_TIMEOUT = 30.0


def invoke(
    operation: str,
    namespace: str | None,
    call: Callable[[FrontendService], Awaitable[T]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> T:
    """Run ``call(frontend)`` on the runtime's loop for ``operation`` in ``namespace`` (None for
    cluster-wide operations) and return its result. Errors are ``odin.errors`` exceptions; lost
    database or Redis connections become ``Unavailable``."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    g.operation = operation
    # Authentication, authorization and rate limits belong here: they see ``operation``,
    # ``namespace`` and ``flask.request.headers`` and raise ``OdinError``s (401, 403, 429 with a
    # ``retry_after``), which ``errors`` renders like every other error.
    handle = current_app.extensions["odin"]
    try:
        return handle.run(lambda runtime: call(runtime.frontend), timeout)
    except OdinError:
        raise
    except TimeoutError:
        raise DeadlineExceeded(f"{operation} did not finish within {timeout:g} s.") from None
    except Exception as exc:
        transient = unavailable(exc)
        if transient is None:
            raise
        log.warning("%s: %s (%r)", operation, transient.message, exc)
        raise transient from exc
