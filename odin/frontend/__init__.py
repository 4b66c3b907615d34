"""FrontendService: the one place requests are validated, namespaces resolved and callers let in.

Both doors (gRPC and REST) call it with WorkflowService request protos and get response protos
back; errors are ``odin.errors`` exceptions. Its calls are grouped by subject in the modules of
this package.
"""

from __future__ import annotations

from odin.clock import Clock
from odin.frontend.common import DEFAULT_RETENTION, HISTORY_LONG_POLL, MAX_ID_LENGTH, check_id
from odin.frontend.namespaces import NamespaceCalls, _Cached
from odin.frontend.visibility import VisibilityCalls, keyword_payload, visibility_info
from odin.frontend.workers import WorkerCalls
from odin.frontend.workflows import WorkflowCalls, execution_info, pending_activity
from odin.history.engine import HistoryEngine
from odin.history.worker_tasks import WorkerTasks
from odin.persistence.store import ExecutionStore
from odin.security.auth import AuthConfig, Authenticator
from odin.security.gate import Budgets, Gate
from odin.security.ratelimit import InMemoryRateLimiter

__all__ = [
    "DEFAULT_RETENTION",
    "HISTORY_LONG_POLL",
    "MAX_ID_LENGTH",
    "FrontendService",
    "check_id",
    "execution_info",
    "keyword_payload",
    "pending_activity",
    "visibility_info",
]


class FrontendService(NamespaceCalls, WorkflowCalls, VisibilityCalls, WorkerCalls):
    def __init__(
        self,
        store: ExecutionStore,
        engine: HistoryEngine,
        clock: Clock,
        long_poll_seconds: float = 60.0,
        archive_uri: str | None = None,
        gate: Gate | None = None,
    ):
        self.gate = gate or Gate(Authenticator(AuthConfig()), InMemoryRateLimiter(), Budgets(), self.namespace)
        self.archive_uri = archive_uri
        self.store = store
        self.engine = engine
        self.tasks = WorkerTasks(engine)
        self.clock = clock
        self.long_poll_seconds = long_poll_seconds
        self._ns_cache: dict[str, _Cached] = {}
