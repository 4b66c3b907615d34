"""Routing of workflow, activity and query tasks between worker deployment versions
(docs/architecture.md#worker-deployments).

A versioned worker polls its version's own queue (``versioned_queue``); an unversioned worker the
task queue itself. Where a task goes: a pinned run's tasks to its version; every other task of a
queue that belongs to a deployment to the deployment's current version, or to its ramping version
for the ramp's share of workflow ids; a queue of no deployment stays as it is.

The deployments of a namespace are read from the store at most once per ``ROUTING_TTL`` seconds
per process (and again at once after a change made in this process), so a namespace without
deployments costs a dictionary look-up per task.
"""

from __future__ import annotations

from time import monotonic

from odin.history import deployments as dep
from odin.matching import ACTIVITY, WORKFLOW
from odin.persistence.store import ExecutionStore

# Seconds this process trusts its copy of a namespace's deployments (a change made by another
# process reaches this one's routing within that time).
ROUTING_TTL = 1.0
QUEUE_TYPES = {WORKFLOW: 1, ACTIVITY: 2}  # temporal.api.enums.v1.TaskQueueType, by task kind
QUEUE_KINDS = {number: kind for kind, number in QUEUE_TYPES.items()}


def versioned_queue(queue: str, deployment: str, build_id: str) -> str:
    """The queue a version's workers poll for ``queue``'s tasks (NUL never occurs in a queue
    name, so it cannot meet a queue of its own name)."""
    return f"{queue}\0{deployment}\0{build_id}"


class DeploymentRouting:
    """Which deployment each task queue belongs to, and where its tasks go."""

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        # namespace id -> (read at, (queue, type) -> deployment)
        self._cache: dict[str, tuple[float, dict[tuple[str, int], dep.Deployment]]] = {}
        # Bumped by each forget(): a read that began before a change is not kept after it.
        self._generation = 0

    def forget(self, namespace_id: str) -> None:
        """The namespace's deployments changed: read them again on the next task."""
        self._generation += 1
        self._cache.pop(namespace_id, None)

    async def _queues(self, namespace_id: str) -> dict[tuple[str, int], dep.Deployment]:
        cached = self._cache.get(namespace_id)
        now = monotonic()
        if cached is not None and now - cached[0] < ROUTING_TTL:
            return cached[1]
        generation = self._generation
        found: dict[tuple[str, int], dep.Deployment] = {}
        for record in await self.store.list_worker_deployments(namespace_id):
            d = dep.Deployment.from_json(record.data)
            for v in d.versions.values():
                for name, queue_type in v.task_queues:
                    found[(name, queue_type)] = d
        if generation == self._generation:
            self._cache[namespace_id] = (now, found)
        return found

    async def versions_of(self, namespace_id: str, queue: str, kind: str) -> list[tuple[str, str]]:
        """(deployment, build id) of each version whose workers poll ``queue``."""
        d = (await self._queues(namespace_id)).get((queue, QUEUE_TYPES[kind]))
        if d is None:
            return []
        return [(d.name, v.build_id) for v in d.versions.values() if [queue, QUEUE_TYPES[kind]] in v.task_queues]

    async def route(self, namespace_id: str, queue: str, kind: str, workflow_id: str, data: dict) -> str:
        """The queue a task of ``queue`` goes to; ``data`` is its transfer data (``pin``: the run's
        pinned version)."""
        queues = await self._queues(namespace_id)
        if not queues:
            return queue
        d = queues.get((queue, QUEUE_TYPES[kind]))
        pin = data.get("pin")
        if pin is not None:
            name, build_id = pin
            if d is not None and d.name == name and build_id in d.versions:
                return versioned_queue(queue, name, build_id)
        if d is None:
            return queue
        build_id = dep.target_build(d, workflow_id)
        return queue if build_id == dep.UNVERSIONED else versioned_queue(queue, d.name, build_id)

    async def sticky_still_right(self, namespace_id: str, queue: str, workflow_id: str, data: dict) -> bool:
        """Whether a sticky task of an unpinned run may stay with its worker: the run's last
        version is still where its queue's new work goes."""
        last = data.get("build")
        if last is None or "pin" in data:
            return True
        d = (await self._queues(namespace_id)).get((queue, QUEUE_TYPES[WORKFLOW]))
        return d is None or d.name != last[0] or dep.target_build(d, workflow_id) == last[1]
