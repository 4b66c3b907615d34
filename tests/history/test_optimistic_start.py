"""A start of a workflow id this process has not seen goes ahead without reading the current-run
pointer first (most ids are new). When the id is taken after all, by a run another process started,
the pointer's insert fails the commit and the start is decided again from the pointer, with the
same outcome as if it had been read first: the policies apply and nothing of the guess remains."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import WorkflowIdReusePolicy
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from odin.errors import AlreadyExists
from odin.history.engine import HistoryEngine
from odin.history.notifier import InMemoryNotifier
from odin.matching.memory import InMemoryTaskQueues
from tests.support.services import ALL_DATABASES

pytestmark = pytest.mark.parametrize("database_url", ALL_DATABASES, indirect=True)


def start_request(workflow_id: str, request_id: str | None = None, **kwargs) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Anything"),
        task_queue=TaskQueue(name="nobody-polls"),
        request_id=request_id or str(uuid.uuid4()),
        **kwargs,
    )


async def test_a_start_guesses_only_for_ids_it_has_not_seen_and_a_wrong_guess_changes_nothing(odin_server, monkeypatch):
    a = odin_server.runtime.engine
    # Another server process on the same database.
    b = HistoryEngine(a.store, InMemoryTaskQueues(), InMemoryNotifier(), a.clock, a.num_shards)
    ns = (await odin_server.runtime.frontend.namespace("default")).id
    reads: list[str] = []
    real = a.store.get_current

    async def counting(namespace_id, workflow_id):
        reads.append(workflow_id)
        return await real(namespace_id, workflow_id)

    monkeypatch.setattr(a.store, "get_current", counting)
    fresh = f"fresh-{uuid.uuid4().hex[:8]}"

    # A new id: started without a read.
    first = await a.start_workflow(ns, "default", start_request(fresh))
    assert first.started and reads == []
    # The same id again from this process: read first, refused by the running run.
    with pytest.raises(AlreadyExists, match=f"already running. WorkflowId: {fresh}, RunId: {first.run_id}"):
        await a.start_workflow(ns, "default", start_request(fresh))
    assert reads == [fresh]

    # An id another process started: the guess fails, the read decides, as it would have.
    theirs = f"theirs-{uuid.uuid4().hex[:8]}"
    request_id = str(uuid.uuid4())
    started = await b.start_workflow(ns, "default", start_request(theirs, request_id))
    reads.clear()
    with pytest.raises(AlreadyExists, match=f"WorkflowId: {theirs}, RunId: {started.run_id}"):
        await a.start_workflow(ns, "default", start_request(theirs))
    assert reads == [theirs]
    # The same request again (a client's retry, reaching another server): the run it started.
    again = await a.start_workflow(ns, "default", start_request(theirs, request_id))
    assert (again.run_id, again.started) == (started.run_id, True)
    current = await real(ns, theirs)
    assert current.run_id == started.run_id
    assert [run_id for wf, run_id in await a.store.list_runs(ns, 1000) if wf == theirs] == [started.run_id]

    # A closed run's id, under the default reuse policy: a new run after a failed guess.
    closed = f"closed-{uuid.uuid4().hex[:8]}"
    old = await b.start_workflow(ns, "default", start_request(closed))
    await b.update(ns, closed, old.run_id, lambda t: t.terminate("done", None, "test"))
    reads.clear()
    new = await a.start_workflow(ns, "default", start_request(closed))
    assert new.started and new.run_id != old.run_id and reads == [closed]
    assert (await real(ns, closed)).run_id == new.run_id
    # Refused by a reuse policy after a failed guess too.
    rejected = f"rejected-{uuid.uuid4().hex[:8]}"
    done = await b.start_workflow(ns, "default", start_request(rejected))
    await b.update(ns, rejected, done.run_id, lambda t: t.terminate("done", None, "test"))
    policy = WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
    with pytest.raises(AlreadyExists, match="reject duplicate workflow Id"):
        await a.start_workflow(ns, "default", start_request(rejected, workflow_id_reuse_policy=policy))
    assert (await real(ns, rejected)).run_id == done.run_id
