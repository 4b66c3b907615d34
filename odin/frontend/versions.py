"""The store side of worker deployments: loading a deployment, changing it by compare-and-swap,
and what versioned pollers register (docs/architecture.md#worker-deployments)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from temporalio.api.deployment.v1 import WorkerDeploymentOptions
from temporalio.api.enums.v1 import WorkerVersioningMode
from temporalio.api.errordetails.v1 import NotFoundFailure

from odin.clock import Clock
from odin.errors import ConcurrentUpdate, FailedPrecondition, InvalidArgument, NotFound
from odin.frontend.common import check_id
from odin.history import deployments as dep
from odin.history.routing import QUEUE_TYPES, DeploymentRouting, versioned_queue
from odin.persistence.store import DeploymentRecord, ExecutionStore

T = TypeVar("T")

# Seconds a version counts as polled after its last poll (as a queue's pollers are listed).
POLLER_TTL = 300.0
_CAS_TRIES = 20


def conflict_token(record: DeploymentRecord) -> bytes:
    return str(record.db_version).encode()


def not_found(name: str) -> str:
    return f"no Worker Deployment found with name '{name}'; does your Worker Deployment have pollers?"


class DeploymentRegistry:
    """Worker deployments in the store, with what this process has already registered."""

    def __init__(self, store: ExecutionStore, clock: Clock, routing: DeploymentRouting) -> None:
        self.store = store
        self.clock = clock
        self.routing = routing  # told of every change, so this process routes by it at once
        # (namespace id, deployment, build id, queue, type) already registered by this process
        self._registered: set[tuple[str, str, str, str, int]] = set()

    async def register_poller(self, namespace_id: str, options: WorkerDeploymentOptions, queue: str, kind: str) -> str:
        """A poll with deployment options: a VERSIONED worker creates its deployment and version
        (and records the task queue) as its polls reach the server, as Temporal's do; the queue
        it takes tasks from (its version's). After the first poll of a queue and version, a
        dictionary look-up."""
        if options.worker_versioning_mode != WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED:
            return queue
        name, build_id = options.deployment_name, options.build_id
        if not name or not build_id:
            raise InvalidArgument("versioned workers must set deployment_name and build_id in deployment_options")
        check_id(name, "DeploymentName")
        check_id(build_id, "BuildId")
        if "." in name:
            raise InvalidArgument("deployment name cannot contain '.'")
        key = (namespace_id, name, build_id, queue, QUEUE_TYPES[kind])
        if key not in self._registered:
            now = self.clock.now().timestamp()
            await self.change(
                namespace_id, name, lambda d: dep.register_poller(d, build_id, queue, QUEUE_TYPES[kind], now), create=True
            )
            self._registered.add(key)
        return versioned_queue(queue, name, build_id)

    def forget(self, namespace_id: str, name: str, build_id: str | None = None) -> None:
        """Drop what this process remembers of a deleted deployment or version."""
        for key in [k for k in self._registered if k[:2] == (namespace_id, name) and build_id in (None, k[2])]:
            self._registered.discard(key)

    async def load(self, namespace_id: str, name: str) -> tuple[DeploymentRecord, dep.Deployment]:
        record = await self.store.get_worker_deployment(namespace_id, name)
        if record is None:
            raise NotFound(not_found(name), NotFoundFailure())
        return record, dep.Deployment.from_json(record.data)

    async def change(
        self,
        namespace_id: str,
        name: str,
        change: Callable[[dep.Deployment], T],
        create: bool = False,
        token: bytes = b"",
    ) -> tuple[T, DeploymentRecord, dep.Deployment]:
        """Apply ``change`` to the stored deployment and write it back by compare-and-swap, again
        on a conflict. ``create``: a missing deployment starts empty; ``token``: refuse if the
        deployment changed since the caller's read. A change that raises writes nothing, nor does
        one that leaves the document as it was."""
        for _ in range(_CAS_TRIES):
            now = self.clock.now()
            record = await self.store.get_worker_deployment(namespace_id, name)
            if record is None:
                if not create:
                    raise NotFound(not_found(name), NotFoundFailure())
                record = DeploymentRecord(namespace_id, name, dep.Deployment(name, now.timestamp()).to_json(), 0, now, now)
            if token and token != conflict_token(record):
                raise FailedPrecondition("conflict token does not match the deployment's current state")
            d = dep.Deployment.from_json(record.data)
            result = change(d)
            data = d.to_json()
            if data == record.data and record.db_version:
                return result, record, d
            record.data, record.updated_at = data, now
            try:
                await self.store.save_worker_deployment(record)
            except ConcurrentUpdate:
                continue
            finally:
                self.routing.forget(namespace_id)
            record.db_version += 1
            return result, record, d
        raise ConcurrentUpdate(f"worker deployment {name} kept changing")
