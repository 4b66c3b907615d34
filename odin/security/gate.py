"""The gate every call passes, whichever door it came through: authenticate the bearer token,
authorize the operation against ``auth.OPERATIONS``, take a token from the namespace's rate
budget, and leave an audit line for calls that change something."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure

from odin import logs, metrics
from odin.errors import OdinError, ResourceExhausted, infrastructure_error
from odin.operations import Operation
from odin.security import auth
from odin.security.ratelimit import RateLimiter

if TYPE_CHECKING:
    from odin.persistence.store import NamespaceRecord

audit_log = logging.getLogger("odin.audit")
T = TypeVar("T")

# The principal of the call being served (for calls whose answer depends on it, like ListNamespaces).
current_principal: contextvars.ContextVar[auth.Principal] = contextvars.ContextVar(
    "odin_principal", default=auth.UNRESTRICTED
)

WORKER_BUDGET = "worker"
CLIENT_BUDGET = "client"


@dataclass
class Budgets:
    """Requests per second per namespace (0 = unlimited); bursts of one second's worth."""

    client_rps: float = 0.0
    worker_rps: float = 0.0

    def for_namespace(self, ns: NamespaceRecord | None, budget: str) -> float:
        """A namespace may set its own (``data`` keys ``odin.rps`` / ``odin.worker_rps``)."""
        default = self.worker_rps if budget == WORKER_BUDGET else self.client_rps
        if ns is None:
            return default
        key = "odin.worker_rps" if budget == WORKER_BUDGET else "odin.rps"
        value = ns.data.get("data", {}).get(key)
        try:
            return float(value) if value is not None else default
        except ValueError:
            return default


class Gate:
    def __init__(
        self,
        authenticator: auth.Authenticator,
        limiter: RateLimiter,
        budgets: Budgets,
        namespaces: Callable[[str], Awaitable[NamespaceRecord]],
    ):
        self.authenticator = authenticator
        self.limiter = limiter
        self.budgets = budgets
        self._namespace = namespaces

    async def serve(
        self,
        operation: Operation,
        authorization: str | None,
        namespace: str | None,
        call: Callable[[], Awaitable[T]],
        *,
        identity: str | None = None,
        target: str = "",
        door: str = "grpc",
    ) -> T:
        """Run ``call`` for whoever ``authorization`` names, if they may, within budget; count it
        in ``service_requests`` / ``service_errors`` / ``service_latency`` under ``door``."""
        ns = namespace or ""
        metrics.service_requests.get(door, operation, ns).inc()
        started = time.perf_counter()
        logged = logs.bind(namespace=ns)
        try:
            if auth.Level.PUBLIC in auth.OPERATIONS.get(operation, frozenset()):
                principal = self.authenticator.authenticate(None) if not self.authenticator.enabled else auth.ANONYMOUS
            else:
                principal = self.authenticator.authenticate(authorization)
            auth.authorize(principal, operation, namespace, identity if self.authenticator.enabled else None)
            await self._admit(operation, namespace)
            token = current_principal.set(principal)
            try:
                result = await call()
            except OdinError as err:
                self._audit(principal, operation, namespace, target, err.code)
                raise
            except BaseException:
                self._audit(principal, operation, namespace, target, "INTERNAL")
                raise
            finally:
                current_principal.reset(token)
            self._audit(principal, operation, namespace, target, "OK")
            return result
        except OdinError as err:
            metrics.service_errors.get(door, operation, ns, err.code).inc()
            raise
        except Exception as exc:
            transient = infrastructure_error(exc)  # a lost database or Redis: UNAVAILABLE at the door
            metrics.service_errors.get(door, operation, ns, transient.code if transient else "INTERNAL").inc()
            raise
        finally:
            logs.unbind(logged)
            metrics.service_latency.get(door, operation, ns).observe(time.perf_counter() - started)

    async def _admit(self, operation: Operation, namespace: str | None) -> None:
        if not namespace:
            return
        needed = auth.OPERATIONS.get(operation, frozenset())
        budget = WORKER_BUDGET if auth.Level.WORK in needed and auth.Level.WRITE not in needed else CLIENT_BUDGET
        try:
            ns = await self._namespace(namespace)
        except OdinError:
            return  # an unknown namespace is the call's own error to report
        rate = self.budgets.for_namespace(ns, budget)
        if rate <= 0:
            return
        wait = await self.limiter.take(f"{ns.id}:{budget}", rate, max(rate, 1.0))
        if wait > 0:
            raise ResourceExhausted(
                f"Namespace {namespace} is over its {budget} rate limit of {rate:g} requests per second; "
                f"retry in {wait:.2f} s.",
                ResourceExhaustedFailure(
                    cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT,
                    scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
                retry_after=wait,
            )

    @staticmethod
    def _audit(principal: auth.Principal, operation: Operation, namespace: str | None, target: str, outcome: str) -> None:
        if operation not in auth.MUTATING or not audit_log.isEnabledFor(logging.INFO):
            return
        fields = {
            "ts": round(time.time(), 3),
            "subject": principal.subject,
            "operation": str(operation),
            "namespace": namespace or "",
            "target": target,
            "outcome": outcome,
        }
        # A JSON object as the message; under ODIN_LOG_FORMAT=json its fields join the line's own.
        audit_log.info(
            json.dumps(fields, separators=(",", ":")),
            extra={"odin_fields": {"audit": True, **fields}, "odin_summary": f"audit {operation} {outcome}"},
        )
