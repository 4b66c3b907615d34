"""odin.sdk.celery without a server: Celery tasks registered as activities with their options
mapped, canvases turned into plain JSON, and what Odin cannot run refused before it starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import unreliable
from celery import chain, chord, group, signature

from odin.sdk import App, Retry
from odin.sdk.celery import CANVAS_WORKFLOW, CanvasError, prepare, register_tasks, retry_for, run, serialize

add, fetch, poll = unreliable.add, unreliable.fetch, unreliable.poll


def test_register_tasks_registers_every_task_but_celerys_own_and_the_canvas_workflow():
    # (Celery shares tasks between the apps of a process, so other test modules' tasks may be here too.)
    names = set(unreliable.app.activities)
    assert {n for n in names if n.startswith("unreliable.")} == {
        "unreliable.add", "unreliable.broken", "unreliable.fetch", "unreliable.limits", "unreliable.poll",
        "unreliable.reroute", "unreliable.soft",
    }
    assert not {n for n in names if n.startswith("celery.")}
    assert list(unreliable.app.workflows) == [CANVAS_WORKFLOW]
    # Outside a worker, an activity made from a task is the task: calling it runs it here.
    assert unreliable.app.activities["unreliable.add"](2, y=3) == 5

    some = App("some", task_queue="default-q")
    registered = register_tasks(some, unreliable.celery_app, names=["unreliable.add"], queue="adding")
    assert list(registered) == ["unreliable.add"] and registered["unreliable.add"].task_queue == "adding"
    with pytest.raises(KeyError, match="celery.chord"):
        register_tasks(some, unreliable.celery_app, names=["celery.chord"])


def test_celery_options_become_retry_policies_and_timeouts():
    # Celery's defaults: max_retries 3, default_retry_delay 180 s, no time limit.
    assert retry_for(add) == Retry(max_attempts=4, initial_interval=180, backoff=1.0)
    acts = unreliable.app.activities
    assert acts["unreliable.add"].start_to_close_timeout == timedelta(hours=1)
    assert acts["unreliable.add"].heartbeat_timeout == timedelta(seconds=30)

    assert retry_for(fetch) == Retry(max_attempts=4, initial_interval=30, backoff=1.0)
    assert retry_for(poll) == Retry(max_attempts=3, initial_interval=0.2, backoff=1.0)  # retry_kwargs countdown
    # retry_backoff for autoretry_for: exponential from the factor, capped; max_retries None: no limit.
    assert retry_for(unreliable.limits) == Retry(max_attempts=0, initial_interval=3, backoff=2.0, max_interval=40)
    assert acts["unreliable.limits"].start_to_close_timeout == timedelta(seconds=7)  # the hard limit
    assert acts["unreliable.soft"].start_to_close_timeout == timedelta(seconds=4)  # the soft one when alone
    assert retry_for(unreliable.soft).max_attempts == 1


def test_a_canvas_becomes_plain_json():
    canvas = (
        add.s(1, 2)
        | group(add.s(10), add.si(5, y=5).set(countdown=1.5, queue="fast"), chain(add.s(1), add.s(2)))
        | chord([add.s(1), group(add.s(2), add.s(3))], add.s().set(time_limit=9))
    )
    spec = serialize(canvas)
    assert spec == json.loads(json.dumps(spec))
    steps = spec["canvas"]["steps"]
    assert spec["format"] == 1 and spec["canvas"]["type"] == "chain"
    assert steps[0] == {"type": "task", "task": "unreliable.add", "args": [1, 2], "kwargs": {}}
    # group | chord: Celery itself makes that a chord whose body is the next chord.
    assert steps[1]["type"] == "chord"
    header = steps[1]["header"]
    assert header[1] == {"type": "task", "task": "unreliable.add", "args": [5], "kwargs": {"y": 5},
                         "immutable": True, "countdown": 1.5, "queue": "fast"}
    assert header[2]["type"] == "chain" and len(header[2]["steps"]) == 2
    inner = steps[1]["body"]
    assert [t["args"] for t in inner["header"]] == [[1], [2], [3]]  # a group in a group joins it, as in Celery
    assert inner["body"]["time_limit"] == 9

    # The dict form (a canvas that went through JSON) gives the same.
    assert serialize(json.loads(json.dumps(canvas))) == spec
    # A one-member group in a chain is that member, as in Celery.
    assert serialize(add.s(1) | group(add.s(2)))["canvas"]["steps"][1]["type"] == "task"
    assert serialize(group([]))["canvas"] == {"type": "group", "tasks": []}


def test_map_starmap_chunks_and_callbacks_become_steps():
    assert serialize(add.map([1, 2]))["canvas"] == {"type": "map", "task": "unreliable.add", "it": [1, 2], "immutable": True}
    assert serialize(add.starmap([(1, 2)]))["canvas"]["it"] == [[1, 2]]
    assert serialize(add.chunks([(1, 2), (3, 4), (5, 6)], 2))["canvas"] == {
        "type": "chunks", "task": "unreliable.add", "it": [[1, 2], [3, 4], [5, 6]], "n": 2, "immutable": True}
    linked = serialize(add.s(1).set(link=[add.s(2), add.si(3, 4)], link_error=fetch.si("x")))["canvas"]
    assert [cb["args"] for cb in linked["link"]] == [[2], [3, 4]]
    assert linked["link_error"] == [{"type": "task", "task": "unreliable.fetch", "args": ["x"], "kwargs": {}, "immutable": True}]
    # prepare() gives the callbacks' activities their options too.
    spec = prepare(add.s(1).set(link=fetch.s()), unreliable.app)
    assert spec["canvas"]["link"][0]["activity"]["heartbeat_timeout"] == 30


def test_eta_becomes_utc_and_delivery_options_are_dropped():
    eta = datetime(2030, 1, 2, 3, 4, 5)
    node = serialize(add.s(1).set(eta=eta, priority=5, routing_key="x", task_id="abc", expires=eta))["canvas"]
    assert node["eta"] == eta.replace(tzinfo=UTC).isoformat()
    assert node["expires_at"] == eta.replace(tzinfo=UTC).isoformat()
    assert node["priority"] == 5  # kept: it becomes the step's priority key
    assert set(node) == {"type", "task", "args", "kwargs", "eta", "expires_at", "priority"}


def test_prepare_writes_each_activitys_options_into_the_spec():
    spec = prepare(add.s(1).set(queue="fast") | fetch.s().set(time_limit=3), unreliable.app)
    first, second = spec["canvas"]["steps"]
    assert first["activity"]["queue"] == "fast" and "queue" not in first
    assert first["activity"]["retry"] == {"max_attempts": 4, "initial_interval": 180.0, "backoff": 1.0,
                                          "max_interval": None, "non_retryable": []}
    assert second["activity"]["start_to_close_timeout"] == 3
    assert second["activity"]["heartbeat_timeout"] == 30


@pytest.mark.parametrize(
    "canvas, message",
    [
        (signature("billing.invoice", args=(1,)), "unknown task billing.invoice"),
        (add.s(1) | signature("celery.accumulate"), "unknown task celery.accumulate"),
        (add.starmap([1, 2]), r"starmap\(\) takes a list of argument lists"),
        (add.chunks([(1, 2)], 0), r"chunks\(\) needs a chunk size of 1 or more"),
        (add.s(1).set(link=signature("billing.invoice")), "unknown task billing.invoice"),
        (chain(add.s(1), add.s()).set(expires=60), "option expires on a chain"),
        # (dict forms: Celery's own constructors already drop an empty group from a chain and
        # hand a group's partial arguments to its members)
        ({**chain(add.s(1), add.s()), "kwargs": {"tasks": [add.s(1), group([]), add.s()]}}, "an empty group in a chain"),
        (chord([add.s(1)]), "a chord needs a body"),
        ({**group(add.s(1)), "args": [5]}, "partial arguments on a group"),
        (group(add.s(1), group(add.s(2)).set(countdown=1)), "options on a group inside a group"),
        (add.s(object()), "JSON values"),
        (add.s(1).set(eta="next tuesday"), "eta of unreliable.add"),
        ("unreliable.add", "not a Celery signature"),
    ],
)
def test_what_odin_cannot_run_is_refused_before_anything_starts(canvas, message):
    # The app points at an address nobody listens on: reaching for the server would fail otherwise.
    app = App("nowhere", address="127.0.0.1:1")
    register_tasks(app, unreliable.celery_app)
    with pytest.raises(CanvasError, match=message):
        run(canvas, app)


def test_run_given_the_celery_app_instead_of_the_odin_app_says_so():
    with pytest.raises(TypeError, match="not Celery: a Celery app named `app` may have shadowed it"):
        run(add.s(1), unreliable.celery_app)
