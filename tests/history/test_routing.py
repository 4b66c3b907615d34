"""Deployment routing's per-process copy of a namespace's deployments (odin.history.routing), on a
real SQLite store: a change made in this process is seen by the next task, even when a read that
began before the change finishes after it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from odin.history import deployments as dep
from odin.history.routing import DeploymentRouting, versioned_queue
from odin.persistence.store import DeploymentRecord, SqlExecutionStore, open_database
from tests.support.services import migrated_sqlite_url

NS = "ns-1"
WORKFLOW = 1


class HeldStore(SqlExecutionStore):
    """The real store, whose deployment list reads can be held after they read the rows."""

    hold: asyncio.Event | None = None

    async def list_worker_deployments(self, namespace_id: str):
        rows = await super().list_worker_deployments(namespace_id)
        if self.hold is not None:
            await self.hold.wait()
        return rows


async def save(store: SqlExecutionStore, current: str, db_version: int) -> None:
    d = dep.Deployment(name="rel", create_time=0.0, current=current)
    for build in ("v1", "v2"):
        d.versions[build] = dep.Version(build_id=build, create_time=0.0, task_queues=[["q", WORKFLOW]])
    now = datetime.now(UTC)
    await store.save_worker_deployment(DeploymentRecord(NS, "rel", d.to_json(), db_version, now, now))


async def test_a_read_from_before_a_change_is_not_kept_after_it(tmp_path):
    store = HeldStore(open_database(migrated_sqlite_url(tmp_path / "odin.db")))
    try:
        await save(store, "v1", 0)
        routing = DeploymentRouting(store)
        store.hold = asyncio.Event()
        early = asyncio.create_task(routing.route(NS, "q", "workflow", "wf", {}))
        await asyncio.sleep(0.05)  # the early read has the rows (current v1) and is held
        await save(store, "v2", 1)
        routing.forget(NS)  # as SetWorkerDeploymentCurrentVersion does after its commit
        store.hold.set()
        assert await early == versioned_queue("q", "rel", "v1")  # began before the change
        store.hold = None
        assert await routing.route(NS, "q", "workflow", "wf", {}) == versioned_queue("q", "rel", "v2")
    finally:
        await store.close()
