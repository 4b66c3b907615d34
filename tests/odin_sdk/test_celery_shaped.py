"""What a Celery user expects of the Odin SDK, through a real worker and an in-process server:
bad arguments raise at the call, failing code fails the run, ``get()`` raises the original
exception, Celery's states, activities that run once unless they ask for retries, ``send_task``,
and canvases of Odin's own signatures giving what Celery's give."""

from __future__ import annotations

import asyncio
import uuid
import warnings

import billing
import celery
import pytest
from celery import Celery
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from odin.sdk import App, NoWorkerWarning, Retry
from odin.sdk.celery import CanvasError, chain, chord, group, run
from tests.support.odin_apps import point

from examples.celery_migration import durable as migration_durable
from examples.celery_migration import rewritten as migration_rewritten
from examples.celery_migration import tasks as migration_tasks


@pytest.fixture
def server(odin):
    point(billing.app, odin)
    return odin


@pytest.fixture
async def worker(server):
    async with billing.app.worker(concurrency=4) as host:
        yield host


def _key(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def blocking(fn, *args, **kwargs):
    """Celery-style blocking calls, off the loop the in-process server runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _started_of(server_app: App, workflow_type: str) -> int:
    client = await server_app.client_async()
    return len([w async for w in client.list_workflows(f"WorkflowType = '{workflow_type}'")])


# -- 1. fail fast, fail loud -------------------------------------------------------------------------


async def test_wrong_arguments_raise_type_error_at_the_call_and_start_nothing(worker):
    with pytest.raises(TypeError, match=r"pipeline\(card: str\): too many positional arguments"):
        await blocking(billing.pipeline.delay, 1, 2, 3)
    with pytest.raises(TypeError, match="missing a required argument: 'card'"):
        await blocking(billing.pipeline.apply_async, (), {})
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        await billing.with_options.start_async("c", kwargs={"colour": "red"})
    with pytest.raises(TypeError, match="too many positional arguments"):
        await blocking(billing.app.send_task, "pipeline", [1, 2])
    with pytest.raises(TypeError, match=r"charge\(card: str, cents: int\): missing a required argument: 'cents'"):
        await blocking(billing.charge.delay, "4242")
    assert await _started_of(billing.app, "pipeline") == 0
    # Keyword-only and defaulted parameters are taken as Python takes them.
    handle = await blocking(billing.with_options.delay, "c", note="gift")
    assert await blocking(handle.get, timeout=30) == {"card": "c", "cents": 1, "note": "gift"}


async def test_an_exception_in_workflow_code_fails_the_run_with_its_type_message_and_stack(worker):
    handle = await blocking(billing.broken.delay, "out of stock")
    with pytest.raises(ValueError, match="^out of stock$") as raised:
        await blocking(handle.get, timeout=30)
    assert "raise ValueError(reason)" in raised.value.traceback and "billing.py" in raised.value.traceback
    assert await handle.status_async() == WorkflowExecutionStatus.FAILED
    history = await handle.history_async()
    failed = history.events[-1].workflow_execution_failed_event_attributes.failure
    assert failed.message == "out of stock" and failed.application_failure_info.type == "ValueError"
    assert "raise ValueError(reason)" in failed.cause.stack_trace
    assert await blocking(lambda: handle.traceback) == raised.value.traceback


async def test_a_class_based_workflow_fails_the_same_way(worker):
    with pytest.raises(TypeError, match="too many positional arguments"):
        await blocking(billing.ledger.delay, 1, 2)
    assert await blocking(lambda: billing.ledger.delay(5).get(timeout=30)) == 5
    with pytest.raises(ArithmeticError, match="negative amount -1"):
        await blocking(lambda: billing.ledger.delay(-1).get(timeout=30))


async def test_on_error_retry_keeps_temporals_retry_the_workflow_task_behaviour(worker):
    handle = await blocking(billing.patient.delay, "fix me")
    await asyncio.sleep(1.5)
    assert await handle.status_async() == WorkflowExecutionStatus.RUNNING
    history = await handle.history_async()
    failures = [e.workflow_task_failed_event_attributes.failure.message for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert failures and "fix me" in failures[0]
    await handle.terminate_async("test over")


async def test_a_misspelled_workflow_type_fails_at_once_naming_what_the_queue_runs(worker):
    handle = await blocking(billing.app.send_task, "pipline", ["4242"])
    with pytest.raises(WorkflowFailureError) as raised:
        await blocking(handle.get, timeout=30)
    cause = raised.value.cause
    assert cause.type == "WorkflowTypeNotRegistered"
    assert "no workflow type 'pipline'" in cause.message and "pipeline" in cause.message
    assert await blocking(lambda: handle.state) == "FAILURE"


async def test_starting_on_a_queue_no_worker_polls_warns(server):
    from odin.api.rest import RuntimeHandle, create_app

    with pytest.warns(NoWorkerWarning, match=f"no worker has polled task queue '{billing.app.task_queue}'"):
        handle = await blocking(billing.pipeline.delay, "4242")
    assert await blocking(lambda: handle.state) == "PENDING"  # nobody picked it up
    # The run's page says so too.
    api = create_app(runtime=RuntimeHandle.attached(server.runtime, asyncio.get_running_loop()), config={"TESTING": True})
    page = (await blocking(api.test_client().get, f"/namespaces/default/workflows/{handle.id}")).get_data(as_text=True)
    assert f"No worker has polled task queue {billing.app.task_queue} in the last 120 s" in page
    async with billing.app.worker():
        assert await blocking(handle.get, timeout=30) == "charged 100 to 4242"
        served = await blocking(billing.approval.delay, "o-9")
        page = (await blocking(api.test_client().get, f"/namespaces/default/workflows/{served.id}")).get_data(as_text=True)
        assert 'id="status"' in page and "No worker has polled" not in page
        await served.terminate_async()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a served queue: no warning
            await blocking(billing.pipeline.delay, "4243")
    # A worker of another process: its polls are what the server reports.
    other = App("billing", address=billing.app.address, task_queue=billing.app.task_queue)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert await other.queue_polled_async(other.task_queue)


# -- 2. Celery-shaped results -----------------------------------------------------------------------


async def test_get_raises_the_original_exception_type_or_returns_it_with_propagate_false(worker):
    handle = await blocking(billing.pipeline.delay, _key("bad"))
    with pytest.raises(ValueError, match="^bad card$") as raised:
        await blocking(handle.get, timeout=30)
    assert type(raised.value) is ValueError
    assert "raise ValueError(\"bad card\")" in raised.value.traceback
    assert isinstance(raised.value.__cause__, WorkflowFailureError)  # the temporalio error, kept
    returned = await blocking(handle.get, timeout=30, propagate=False)
    assert type(returned) is ValueError and str(returned) == "bad card"
    assert (await blocking(lambda: (handle.state, handle.status, handle.ready(), handle.successful(), handle.failed()))) == (
        "FAILURE", "FAILURE", True, False, True)
    # An exception class of the app's own comes back as itself.
    declined = await blocking(billing.declined.delay, "4000")
    with pytest.raises(billing.CardDeclined, match="4000 declined"):
        await blocking(declined.get, timeout=30)
    # result() keeps temporalio's form.
    with pytest.raises(WorkflowFailureError):
        await blocking(handle.result, timeout=30)


async def test_states_through_a_runs_life(server):
    with pytest.warns(NoWorkerWarning):
        handle = await blocking(billing.approval.delay, "o-1")
    assert handle.task_id == handle.id
    assert await blocking(lambda: handle.state) == "PENDING"
    async with billing.app.worker():
        for _ in range(100):
            if await handle.state_async() == "STARTED":
                break
            await asyncio.sleep(0.05)
        assert await blocking(lambda: (handle.state, handle.ready())) == ("STARTED", False)
        await handle.signal_async("decide", "approved")
        assert await blocking(handle.get, timeout=30) == "o-1 approved"
        assert await blocking(lambda: (handle.state, handle.ready(), handle.successful())) == ("SUCCESS", True, True)
        assert await blocking(lambda: billing.app.AsyncResult(handle.id).state) == "SUCCESS"

        rejected = await blocking(billing.approval.delay, "o-2")
        await rejected.signal_async("decide", "reject")
        assert isinstance(await blocking(rejected.get, timeout=30, propagate=False), billing.CardDeclined)
        assert await blocking(lambda: rejected.state) == "FAILURE"

        revoked = await blocking(billing.approval.delay, "o-3")
        await blocking(revoked.revoke)
        for _ in range(100):  # the run takes the cancellation at its next workflow task
            if await revoked.state_async() != "STARTED":
                break
            await asyncio.sleep(0.05)
        assert await blocking(lambda: (revoked.state, revoked.ready(), revoked.failed())) == ("REVOKED", True, False)

        key = _key("slow")
        retrying = await blocking(billing.slow_retrying.delay, key)
        seen = set()
        for _ in range(100):
            seen.add(await retrying.state_async())
            if "SUCCESS" in seen:
                break
            await asyncio.sleep(0.05)
        assert "RETRY" in seen and "SUCCESS" in seen  # waiting 2 s for the activity's second attempt

        await blocking(handle.forget)
        with pytest.raises(Exception, match="not found|NotFound"):
            await handle.describe_async()


# -- 3. documented, Celery-like defaults ----------------------------------------------------------


async def test_activities_run_once_unless_they_ask_for_retries(worker):
    card = _key("bad")
    with pytest.raises(ValueError):
        await blocking((await blocking(billing.pipeline.delay, card)).get, timeout=30)
    assert billing.ATTEMPTS[card] == 1  # no retry by default, as a Celery task

    key = _key()
    assert await blocking(lambda: billing.flaky.delay(key, 2).get(timeout=30)) == f"{key} after 3"
    key = _key()
    with pytest.raises(KeyError):  # not in autoretry_for: fails at the first attempt
        await blocking(lambda: billing.flaky.delay(key, 1, error="other").get(timeout=30))
    assert billing.ATTEMPTS[key] == 1
    key = _key()
    with pytest.raises(billing.GatewayTimeout):  # max_retries=2: three attempts
        await blocking(lambda: billing.flaky.delay(key, 5).get(timeout=30))
    assert billing.ATTEMPTS[key] == 3
    key = _key()
    with pytest.raises(RuntimeError, match="never works"):  # retry=Retry(max_attempts=3): every error
        await blocking(lambda: billing.stubborn.delay(key).get(timeout=30))
    assert billing.ATTEMPTS[key] == 3


def test_the_defaults_and_the_celery_retry_options_become_policies():
    app = App("defaults")

    @app.activity
    def plain() -> None: ...

    @app.activity(autoretry_for=(ConnectionError,))
    def celery_defaults() -> None: ...

    @app.activity(max_retries=None, retry_backoff=2, retry_backoff_max=30)
    def forever() -> None: ...

    assert plain.retry.maximum_attempts == 1 and plain.start_to_close_timeout.total_seconds() == 300
    assert celery_defaults.retry.maximum_attempts == 4 and celery_defaults.retry.initial_interval.total_seconds() == 180
    assert celery_defaults.retries(ConnectionError()) and not celery_defaults.retries(ValueError())
    assert forever.retry.maximum_attempts == 0 and forever.retry.backoff_coefficient == 2.0
    assert forever.retry.initial_interval.total_seconds() == 2 and forever.retry.maximum_interval.total_seconds() == 30


@pytest.mark.parametrize(
    "decorate, error, message",
    [
        (lambda app: app.activity(rate_limt="1/s"), TypeError, "@app.activity got unknown option rate_limt"),
        (lambda app: app.workflow(retries=3), TypeError, "@app.workflow got unknown option retries"),
        (lambda app: app.activity(autoretry_for="ValueError"), TypeError, "autoretry_for must be a tuple of exception classes"),
        (lambda app: app.activity(retry=Retry(max_attempts=2), max_retries=3), TypeError, "not both"),
        (lambda app: app.activity(max_retries=-1), ValueError, "max_retries must be"),
        (lambda app: app.workflow(on_error="explode"), ValueError, "on_error must be 'fail'"),
    ],
)
def test_bad_options_raise_when_the_function_is_declared(decorate, error, message):
    app = App("options")

    async def declared(x: int) -> int:
        return x

    with pytest.raises(error, match=message):
        decorate(app)(declared)


async def test_keyword_arguments_are_stored_and_shown_as_written(worker, server):
    from odin.api.rest import RuntimeHandle, create_app

    handle = await blocking(billing.with_options.delay, "c", cents=5, note="gift")
    assert await blocking(handle.get, timeout=30) == {"card": "c", "cents": 5, "note": "gift"}
    api = create_app(runtime=RuntimeHandle.attached(server.runtime, asyncio.get_running_loop()), config={"TESTING": True})
    http = api.test_client()
    history = (await blocking(http.get, f"/api/v1/namespaces/default/workflows/{handle.id}/history")).get_json()
    started = history["history"]["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["input"] == ["c", {"cents": 5, "note": "gift"}]  # the keyword arguments as written
    page = (await blocking(http.get, f"/namespaces/default/workflows/{handle.id}")).get_data(as_text=True)
    assert "&#34;kwargs&#34;: {" in page or '"kwargs": {' in page
    assert "__odin_kwargs__" not in page
    # Runs started before keyword arguments were marked replay and run as they did.
    from odin.sdk._defs import unpack_args

    assert unpack_args(("c", {"__odin_kwargs__": {"note": "old"}})) == (("c",), {"note": "old"})


# -- 4. canvases on Odin itself --------------------------------------------------------------------

# The same functions as Celery tasks, run by Celery itself (eagerly, ``apply()``) for comparison.
celery_app = Celery("billing-celery", broker="redis://127.0.0.1:1/0")
celery_app.conf.task_always_eager = True  # run where called: nothing goes to the (absent) broker
c_add = celery_app.task(name="c.add")(billing.add.fn)
c_mul = celery_app.task(name="c.mul")(billing.mul.fn)
c_xsum = celery_app.task(name="c.xsum")(billing.xsum.fn)


def _canvases(add, mul, xsum, make_chain, make_group, make_chord):
    return {
        "chain": make_chain(add.s(2, 2), mul.s(4), add.s(1)),
        "pipe": add.s(1, 1) | mul.s(3),
        "group": make_group(add.s(i, i) for i in range(5)),
        "chord": make_chord([add.s(1, 2), mul.s(3, 4)], xsum.s()),
        "chain into group into chord": add.s(1, 2) | make_group(add.s(10), mul.s(10)) | xsum.s(),
        "immutable": add.s(1, 2) | add.si(5, 5),
        "starmap": mul.starmap([(1, 2), (3, 4)]),
        "chunks": add.chunks([(i, i) for i in range(5)], 2),
        "nested": make_chord([make_chain(add.s(1, 1), mul.s(2)), make_group(add.s(3, 3), add.s(4, 4))], xsum.s()),
    }


async def test_canvases_give_what_celery_gives(worker):
    odin_side = _canvases(billing.add, billing.mul, billing.xsum, chain, group, chord)
    celery_side = _canvases(c_add, c_mul, c_xsum, celery.chain, celery.group, celery.chord)
    for name, canvas in odin_side.items():
        expected = celery_side[name].apply_async().get()
        handle = await blocking(canvas.delay)
        assert await blocking(handle.get, timeout=30) == expected, name
    # Partial arguments of delay() go first, as in Celery.
    assert await blocking((await blocking((billing.add.s(2) | billing.mul.s(10)).delay, 3)).get, timeout=30) == (
        (c_add.s(2) | c_mul.s(10)).apply((3,)).get())
    # map: the task called with each item.
    summing = billing.xsum.map([[1, 2], [3, 4, 5]])
    assert await blocking((await blocking(summing.delay)).get, timeout=30) == c_xsum.map([[1, 2], [3, 4, 5]]).apply().get()


async def test_canvases_inside_a_workflow_and_with_workflows_as_steps(worker):
    assert await blocking(lambda: billing.fan_out.delay(4).get(timeout=30)) == celery.chord(
        celery.group(c_add.s(i, i) for i in range(4)), c_xsum.s()).apply().get()
    # staged: add, then the double workflow as a child, then a group.
    assert await blocking(lambda: billing.staged.delay(1).get(timeout=30)) == [40, 9]
    # A workflow's signature in a canvas started from outside.
    assert await blocking((await blocking((billing.add.s(1, 2) | billing.double.s()).delay)).get, timeout=30) == 6
    # A canvas is one durable run: its steps are activities and children of that run.
    handle = await blocking((billing.add.s(1, 2) | billing.double.s()).delay)
    await blocking(handle.get, timeout=30)
    history = await handle.history_async()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds.count("activity_task_scheduled_event_attributes") == 1
    assert kinds.count("start_child_workflow_execution_initiated_event_attributes") == 1


async def test_link_and_link_error(worker):
    del billing.CALLED[:]
    linked = billing.add.s(2, 3).set(link=billing.record.s("after"))
    assert await blocking((await blocking(linked.delay)).get, timeout=30) == 5  # the parent's result, as in Celery
    assert billing.CALLED == [(5, "after")]

    del billing.CALLED[:]
    handle = await blocking(billing.fail.s(7).set(link_error=[billing.record.si("cleanup"), billing.record.s()]).delay)
    with pytest.raises(ValueError, match="cannot take 7"):
        await blocking(handle.get, timeout=30)
    immutable, mutable = sorted(billing.CALLED, key=len)
    assert immutable == ("cleanup",)
    request, error, trace = mutable
    assert request["task"] == "fail" and request["args"] == [7] and request["id"] == handle.id
    assert error == {"type": "ValueError", "message": "cannot take 7"} and "cannot take" in trace

    # link= given to apply_async, and a failing callback does not fail the step (as in Celery).
    del billing.CALLED[:]
    handle = await blocking(billing.add.s(1, 1).apply_async, link=billing.fail.s())
    assert await blocking(handle.get, timeout=30) == 2


async def test_a_canvas_of_the_example_app_gives_what_celery_gives(server):
    point(migration_durable.app, server)
    order = {"id": "o-7", "lines": [{"qty": 2, "unit_cents": 500}, {"qty": 1, "unit_cents": 499}]}
    expected = migration_tasks.checkout(order, currency="USD").apply().get()
    async with migration_durable.app.worker(concurrency=4):
        handle = await blocking(run, migration_tasks.checkout(order, currency="USD"), migration_durable.app)
        assert await blocking(handle.get, timeout=60) == expected

    # The rewritten checkout's activities, as a canvas of Odin's own signatures, give what the
    # Celery tasks' canvas gives.
    t, r = migration_tasks, migration_rewritten
    expected = (t.price.s(order, currency="USD") | celery.group(t.charge.s(), t.reserve.s()) | t.pack.s("o-7")).apply().get()
    point(r.app, server)
    async with r.app.worker(concurrency=4):
        canvas = r.price.s(order, currency="USD") | group(r.charge.s(), r.reserve.s()) | r.pack.s("o-7")
        assert await blocking(lambda: canvas.delay().get(timeout=60)) == expected == "parcel o-7 (charged 1499 USD; reserved o-7)"


def test_a_canvas_of_tasks_no_app_has_is_refused():
    with pytest.raises(CanvasError, match="no Odin app has all of"):
        (billing.add.s(1, 2) | c_add.s(1)).delay()



async def test_the_same_through_odin_worker_dash_a_in_another_process(server):
    """``odin worker -A billing:app`` as a process of its own: failures, states and canvases
    reach this process's caller as they do with an in-process worker."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "ODIN_ADDRESS": billing.app.address, "ODIN_TASK_QUEUE": billing.app.task_queue}
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "worker", "-A", "billing:app", "-c", "2"],
        cwd=Path(__file__).parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = await asyncio.to_thread(proc.stdout.readline)
        assert f"queues {billing.app.task_queue}" in banner, banner
        for _ in range(100):  # until the server has seen the worker's polls
            if await billing.app.queue_polled_async(billing.app.task_queue):
                break
            await asyncio.sleep(0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a queue served by another process: no NoWorkerWarning
            failing = await blocking(billing.pipeline.delay, _key("bad"))
        with pytest.raises(ValueError, match="^bad card$"):
            await blocking(failing.get, timeout=30)
        broken = await blocking(billing.broken.delay, "from afar")
        assert isinstance(await blocking(broken.get, timeout=30, propagate=False), ValueError)
        assert await blocking(lambda: broken.state) == "FAILURE"
        declined = await blocking(billing.declined.delay, "4111")
        with pytest.raises(billing.CardDeclined):
            await blocking(declined.get, timeout=30)
        canvas = billing.add.s(1, 2) | group(billing.mul.s(10), billing.double.s()) | billing.xsum.s()
        assert await blocking((await blocking(canvas.delay)).get, timeout=30) == 36
        assert await blocking(lambda: billing.fan_out.delay(3).get(timeout=30)) == 6
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err
