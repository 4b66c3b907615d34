"""``invoke``: the one way a REST route or a web UI page calls the frontend.

Each call names the WorkflowService (or OperatorService) operation it stands for and the namespace
it acts on, and goes through the frontend's gate like a gRPC call does: the request's
``Authorization: Bearer ...`` header is authenticated, ``operation`` authorized in ``namespace``,
the namespace's rate budget charged and mutating calls audited, for the API and the UI alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from flask import current_app, g
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

# Submodules by their full name: ``from odin.api.rest import ...`` would import the package,
# whose __init__ imports this module.
import odin.api.rest.session as session
from odin.errors import DeadlineExceeded, OdinError, infrastructure_error
from odin.frontend import FrontendService
from odin.operations import Operation

log = logging.getLogger(__name__)

T = TypeVar("T")

OPERATIONS = frozenset(
    [m.name for m in workflow_service.DESCRIPTOR.services_by_name["WorkflowService"].methods]
    + [m.name for m in operator_service.DESCRIPTOR.services_by_name["OperatorService"].methods]
)
# Room for the frontend's own long-poll budget, plus the trip to the loop and back.
DEFAULT_TIMEOUT = 30.0


def invoke(
    operation: Operation,
    namespace: str | None,
    call: Callable[[FrontendService], Awaitable[T]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    target: str = "",
) -> T:
    """Run ``call(frontend)`` on the runtime's loop for ``operation`` in ``namespace`` (None for
    cluster-wide operations) if the caller may, and return its result. ``target`` names the
    workflow acted on, for the audit log. Errors are ``odin.errors`` exceptions (401, 403 and 429
    from the gate); lost database or Redis connections become ``Unavailable``."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    g.operation = operation
    authorization = session.authorization()  # read here: the call runs on another thread

    def run(runtime) -> Awaitable[T]:
        frontend = runtime.frontend
        return frontend.gate.serve(operation, authorization, namespace, lambda: call(frontend), target=target, door="rest")

    handle = current_app.extensions["odin"]
    try:
        return handle.run(run, timeout)
    except OdinError:
        raise
    except TimeoutError:
        raise DeadlineExceeded(f"{operation} did not finish within {timeout:g} s.") from None
    except Exception as exc:
        transient = infrastructure_error(exc)
        if transient is None:
            raise
        log.warning("%s: %s (%r)", operation, transient.message, exc)
        raise transient from exc
