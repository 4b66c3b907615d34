"""Celery tasks run by an Odin worker against an in-process Odin: ``self.retry()`` and
``autoretry_for`` retried by Odin, failures Celery would not retry failing at once, Celery's
handlers called, and a step's ``queue`` choosing the activity's task queue."""

from __future__ import annotations

import uuid

import pytest
import unreliable
from celery import group
from temporalio.client import WorkflowFailureError

from odin.sdk import App
from odin.sdk.celery import register_tasks, run_async
from tests.support.odin_apps import point


@pytest.fixture
def server(odin):
    """The ``odin`` server of conftest with ``unreliable.app`` pointed at it."""
    point(unreliable.app, odin)
    return odin


@pytest.fixture
async def worker(server):
    async with unreliable.app.worker(concurrency=4) as host:
        yield host


def _key() -> str:
    return f"k-{uuid.uuid4().hex[:6]}"


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


async def test_self_retry_is_retried_by_odin_with_celerys_countdown(worker):
    key = _key()
    handle = await run_async(unreliable.fetch.s(key), unreliable.app)
    # Two retries 0.2 s apart (the countdown given to self.retry), not the task's 30 s default.
    assert await handle.result_async(timeout=10) == f"{key} after 2 retries"
    assert unreliable.ATTEMPTS["fetch", key] == 3
    attempts = [(task_id, retries) for task, task_id, retries in unreliable.REQUESTS if task_id.startswith(handle.id)]
    assert [retries for _, retries in attempts] == [0, 1, 2]
    assert len({task_id for task_id, _ in attempts}) == 1  # one task id across retries, as in Celery


async def test_autoretry_for_is_retried_and_other_errors_fail_at_once(worker):
    key = _key()
    handlers_before = len(unreliable.HANDLED)
    assert await (await run_async(unreliable.poll.s(key), unreliable.app)).result_async(timeout=10) == f"{key} ready"
    assert unreliable.ATTEMPTS["poll", key] == 3
    assert unreliable.HANDLED[handlers_before:] == [("retry", "unreliable.poll")] * 2 + [("success", "unreliable.poll")]

    broken = await run_async(unreliable.broken.s(key), unreliable.app)
    with pytest.raises(WorkflowFailureError) as failed:
        await broken.result_async(timeout=10)
    assert unreliable.ATTEMPTS["broken", key] == 1  # a ValueError is not in autoretry_for
    assert _root_cause(failed.value).type == "ValueError"
    assert unreliable.HANDLED[-1] == ("failure", "unreliable.broken")


async def test_retries_end_where_max_retries_says(worker):
    key = _key()
    handle = await run_async(unreliable.fetch.s(key, failures=10), unreliable.app)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result_async(timeout=10)
    assert unreliable.ATTEMPTS["fetch", key] == 4  # max_retries=3: the first try and three retries
    cause = _root_cause(failed.value)
    assert cause.type == "ConnectionError" and "upstream down" in cause.message


async def test_a_retry_with_other_arguments_fails_the_step(worker):
    key = _key()
    handle = await run_async(unreliable.reroute.s(key), unreliable.app)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result_async(timeout=10)
    assert unreliable.ATTEMPTS["reroute", key] == 1
    assert "other arguments" in str(failed.value.cause.cause)


async def test_a_failing_member_fails_the_group_after_the_others_ran(worker):
    key = _key()
    later = unreliable.poll.s(key, failures=0).set(countdown=0.5)
    handle = await run_async(group(unreliable.broken.s(key), later), unreliable.app)
    with pytest.raises(WorkflowFailureError):
        await handle.result_async(timeout=10)
    # The member that starts after the failure still runs, as in a Celery group.
    assert unreliable.ATTEMPTS["poll", key] == 1


async def test_a_steps_queue_picks_the_activitys_task_queue(worker):
    # A second worker serves the same tasks on another queue, as `celery worker -Q fast` would.
    fast_queue = f"fast-{uuid.uuid4().hex[:6]}"
    fast = App("unreliable-fast", address=unreliable.app.address, task_queue=fast_queue)
    register_tasks(fast, unreliable.celery_app, names=["unreliable.add"])
    async with fast.worker():
        canvas = unreliable.add.s(1, 2).set(queue=fast_queue) | unreliable.add.s(y=4)
        handle = await run_async(canvas, unreliable.app)
        assert await handle.result_async(timeout=10) == 7
    history = await handle.history_async()
    queues = [e.activity_task_scheduled_event_attributes.task_queue.name for e in history.events
              if e.HasField("activity_task_scheduled_event_attributes")]
    assert queues == [fast_queue, unreliable.app.task_queue]


async def test_get_raises_a_failed_tasks_own_exception_as_celery_does(worker):
    key = _key()
    broken = await run_async(unreliable.broken.s(key), unreliable.app)
    with pytest.raises(ValueError, match=f"^{key} is broken$") as raised:
        await broken.get_async(timeout=10)
    assert "is broken" in raised.value.traceback
    exhausted = await run_async(unreliable.fetch.s(key, failures=10), unreliable.app)
    assert isinstance(await exhausted.get_async(timeout=10, propagate=False), ConnectionError)
    assert await exhausted.state_async() == "FAILURE"
