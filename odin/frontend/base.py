"""What every group of frontend calls shares: the parts they work with, namespace resolution and
run addressing. ``FrontendService`` is the four groups together; each group subclasses this."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure

from odin.clock import Clock, monotonic
from odin.errors import InvalidArgument, NotFound
from odin.frontend.common import NAMESPACE_CACHE_TTL, check_id, check_text
from odin.frontend.versions import DeploymentRegistry
from odin.history.engine import HistoryEngine
from odin.history.worker_tasks import WorkerTasks
from odin.matching.workers import InMemoryWorkerRegistry, WorkerRegistry
from odin.persistence.store import ExecutionStore, NamespaceRecord
from odin.security.auth import AuthConfig, Authenticator
from odin.security.gate import Budgets, Gate
from odin.security.ratelimit import InMemoryRateLimiter


@dataclass
class _Cached:
    record: NamespaceRecord
    at: float


class FrontendBase:
    def __init__(
        self,
        store: ExecutionStore,
        engine: HistoryEngine,
        clock: Clock,
        long_poll_seconds: float = 60.0,
        archive_uri: str | None = None,
        gate: Gate | None = None,
    ):
        # Authentication, authorization, rate limits and audit, in front of every call of both doors.
        self.gate = gate or Gate(Authenticator(AuthConfig()), InMemoryRateLimiter(), Budgets(), self.namespace)
        # The cluster-wide archive used when a namespace names none of its own.
        self.archive_uri = archive_uri
        # Namespaces, search-attribute registries and visibility rows are read here directly; runs
        # change only through the engine and odin.history.operations.
        self.store = store
        self.engine = engine
        self.tasks = WorkerTasks(engine)  # workers' polls and completions
        # Workers' own heartbeats (ListWorkers); the runtime puts a Redis one in the distributed shape.
        self.workers: WorkerRegistry = InMemoryWorkerRegistry()
        self.clock = clock
        # Worker deployments and the versions versioned pollers register.
        self.deployments = DeploymentRegistry(store, clock, engine.routing)
        self.long_poll_seconds = long_poll_seconds  # longest a worker poll waits
        self._ns_cache: dict[str, _Cached] = {}

    async def namespace(self, name: str) -> NamespaceRecord:
        """The namespace called ``name``, cached per process for NAMESPACE_CACHE_TTL seconds."""
        if not name:
            raise InvalidArgument("Namespace is not set on request.")
        check_text(name, "Namespace")
        cached = self._ns_cache.get(name)
        if cached is not None and monotonic() - cached.at < NAMESPACE_CACHE_TTL:
            return cached.record
        record = await self.store.get_namespace(name=name)
        if record is None or record.state == NamespaceState.NAMESPACE_STATE_DELETED:
            raise NotFound(f"Namespace {name} is not found.", NamespaceNotFoundFailure(namespace=name))
        self._ns_cache[name] = _Cached(record, monotonic())
        return record

    def forget_namespace(self, name: str) -> None:
        """Drop this process's cached copy (other processes refresh within NAMESPACE_CACHE_TTL)."""
        self._ns_cache.pop(name, None)

    async def _target(
        self, namespace: str, execution: WorkflowExecution, first_execution_run_id: str = ""
    ) -> tuple[NamespaceRecord, str, str]:
        """The namespace, workflow id and run id ("" for the current run) a request addresses."""
        ns = await self.namespace(namespace)
        check_id(execution.workflow_id, "WorkflowId")
        run_id = execution.run_id
        if first_execution_run_id:
            current = await self.engine.current_run_id(ns.id, execution.workflow_id)
            if current.first_execution_run_id != first_execution_run_id:
                raise NotFound("workflow execution not found for the given first execution run id")
            run_id = current.run_id
        elif run_id:
            try:
                uuid.UUID(run_id)
            except ValueError:
                raise InvalidArgument("Invalid RunId.") from None
        return ns, execution.workflow_id, run_id
