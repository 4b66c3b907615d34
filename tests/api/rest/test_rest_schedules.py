"""Schedules over REST (Temporal's HTTP paths) and their web UI pages through Flask's test client:
the seven calls on SQLite and PostgreSQL with a temporalio worker running the scheduled workflow,
bad input with its exact status and message, the roles of the gate, and the UI's forms."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jwt
import pytest
from rest_support import CONFIG, assert_error, wid
from rest_workflows import Echo
from temporalio.client import Client
from temporalio.worker import Worker

from odin.api.rest import create_app
from odin.config import Settings
from odin.security import auth

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"
ALREADY_STARTED = "type.googleapis.com/temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure"
SECRET = "rest-hs256-test-secret-that-is-long-enough-for-the-check"


def schedule_body(workflow_id: str, task_queue: str, spec: dict | None = None, **fields) -> dict:
    action = {"startWorkflow": {
        "workflowId": workflow_id, "workflowType": {"name": "Echo"}, "taskQueue": {"name": task_queue}, "input": ["daily", {"n": 1}],
    }}
    return {"schedule": {"spec": spec or {"interval": [{"interval": "3600s"}]}, "action": action}, **fields}


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def describe(api, schedule_id: str) -> dict:
    response = await api.get(f"{NS}/schedules/{schedule_id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# -- the calls ------------------------------------------------------------------------------


async def test_a_schedule_from_create_to_delete(served, odin_server, task_queue):
    api = served
    client = await Client.connect(f"127.0.0.1:{odin_server.endpoints.grpc_port}")
    sid, other = wid("sched"), wid("sched")

    # Create: the Idempotency-Key is the request id, so a retry answers the same; another request is 409.
    body = schedule_body("report", task_queue, memo={"fields": {"owner": "ops"}})
    created = await api.post(f"{NS}/schedules/{sid}", json=body, headers={"Idempotency-Key": "create-1"})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"] == f"{NS}/schedules/{sid}"
    token = created.get_json()["conflictToken"]
    retried = await api.post(f"{NS}/schedules/{sid}", json=body, headers={"Idempotency-Key": "create-1"})
    assert retried.status_code == 201 and retried.get_json() == {"conflictToken": token}
    taken = assert_error(await api.post(f"{NS}/schedules/{sid}", json=body), 409, "ALREADY_EXISTS")
    assert taken["message"] == f'schedule "{sid}" is already registered'
    assert [d["@type"] for d in taken["details"]] == [ALREADY_STARTED]

    # Describe: payloads as plain JSON, default policies filled in; the SDK reads the same schedule.
    described = await describe(api, sid)
    start = described["schedule"]["action"]["startWorkflow"]
    assert start["input"] == ["daily", {"n": 1}] and start["workflowType"] == {"name": "Echo"}
    assert described["memo"] == {"fields": {"owner": "ops"}}
    assert described["schedule"]["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_SKIP"
    assert described["schedule"]["spec"] == {"interval": [{"interval": "3600s"}]}
    assert described["conflictToken"] == token and len(described["info"]["futureActionTimes"]) == 10
    sdk_view = await client.get_schedule_handle(sid).describe()
    assert sdk_view.schedule.spec.intervals[0].every.total_seconds() == 3600 and await sdk_view.memo() == {"owner": "ops"}

    # Matching times: after the start, up to the end.
    matching = await api.get(f"{NS}/schedules/{sid}/matching-times",
                             query_string={"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T03:00:00Z"})
    assert matching.status_code == 200
    assert matching.get_json() == {"startTime": ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]}

    # List: pages by schedule id; filters on ScheduleId.
    assert (await api.post(f"{NS}/schedules/{other}", json=schedule_body("other", task_queue))).status_code == 201
    first = (await api.get(f"{NS}/schedules", query_string={"pageSize": 1})).get_json()
    second = (await api.get(f"{NS}/schedules", query_string={"pageSize": 1, "nextPageToken": first["nextPageToken"]})).get_json()
    assert [s["scheduleId"] for s in first["schedules"] + second["schedules"]] == sorted([sid, other])
    only = (await api.get(f"{NS}/schedules", query_string={"query": f"ScheduleId = '{sid}'"})).get_json()
    [entry] = only["schedules"]
    assert entry["scheduleId"] == sid and entry["info"]["workflowType"] == {"name": "Echo"}
    assert entry["memo"] == {"fields": {"owner": "ops"}}

    # Update with the current conflict token applies; with a stale one it is dropped (200, as over gRPC).
    updated_body = schedule_body("report", task_queue, {"interval": [{"interval": "7200s"}]}, conflictToken=token)
    assert (await api.post(f"{NS}/schedules/{sid}/update", json=updated_body)).status_code == 200
    after = await describe(api, sid)
    assert after["schedule"]["spec"] == {"interval": [{"interval": "7200s"}]} and after["conflictToken"] != token
    stale = schedule_body("report", task_queue, {"interval": [{"interval": "60s"}]}, conflictToken=token)
    dropped = await api.post(f"{NS}/schedules/{sid}/update", json=stale)
    assert dropped.status_code == 200 and dropped.get_json() == {}
    assert (await describe(api, sid))["schedule"]["spec"] == {"interval": [{"interval": "7200s"}]}

    # Pause with a note; the list's filter sees it.
    paused = await api.post(f"{NS}/schedules/{sid}/patch", json={"patch": {"pause": "database maintenance"}})
    assert paused.status_code == 200
    state = (await describe(api, sid))["schedule"]["state"]
    assert state == {"paused": True, "notes": "database maintenance"}
    filtered = (await api.get(f"{NS}/schedules", query_string={"query": "TemporalSchedulePaused = true"})).get_json()
    assert [s["scheduleId"] for s in filtered["schedules"]] == [sid]

    # Trigger now (a manual start ignores the pause): the worker runs it with the action's input.
    async with Worker(client, task_queue=task_queue, workflows=[Echo]):
        assert (await api.post(f"{NS}/schedules/{sid}/patch", json={"patch": {"triggerImmediately": {}}})).status_code == 200
        for _ in range(100):
            actions = (await describe(api, sid))["info"].get("recentActions", [])
            if actions and actions[-1]["startWorkflowStatus"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED":
                break
            await asyncio.sleep(0.1)
        [action] = actions
        assert action["startWorkflowStatus"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
        run = action["startWorkflowResult"]
        assert run["workflowId"].startswith("report-")
        outcome = (await api.get(f"{NS}/workflows/{run['workflowId']}/result", query_string={"runId": run["runId"]})).get_json()
        assert outcome["result"] == ["daily", {"n": 1}]

    # Backfill: the 2-hour spec's times from 00:00 to 06:00 inclusive, all allowed to overlap.
    backfill = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T06:00:00Z",
                "overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"}
    assert (await api.post(f"{NS}/schedules/{sid}/patch", json={"patch": {"backfillRequest": [backfill]}})).status_code == 200
    info = (await describe(api, sid))["info"]
    assert info["actionCount"] == "5"
    assert [a["startWorkflowResult"]["workflowId"] for a in info["recentActions"][1:]] == [
        f"report-2026-01-01T0{h}:00:00Z" for h in (0, 2, 4, 6)
    ]

    # Unpause with a note.
    assert (await api.post(f"{NS}/schedules/{sid}/patch", json={"patch": {"unpause": "maintenance over"}})).status_code == 200
    assert (await describe(api, sid))["schedule"]["state"] == {"notes": "maintenance over"}

    # Delete: gone (404 after), the runs it started stay.
    deleted = await api.delete(f"{NS}/schedules/{sid}")
    assert deleted.status_code == 200 and deleted.get_json() == {}
    missing = f"workflow not found for ID: temporal-sys-scheduler:{sid}"
    assert assert_error(await api.get(f"{NS}/schedules/{sid}"), 404, "NOT_FOUND")["message"] == missing
    assert assert_error(await api.delete(f"{NS}/schedules/{sid}"), 404, "NOT_FOUND")["message"] == missing
    assert (await api.get(f"{NS}/workflows/{run['workflowId']}")).status_code == 200
    assert [s["scheduleId"] for s in (await api.get(f"{NS}/schedules")).get_json()["schedules"]] == [other]


ACTION = {"startWorkflow": {"workflowId": "x", "workflowType": {"name": "Echo"}, "taskQueue": {"name": "q"}}}
EVERY_MINUTE = {"interval": [{"interval": "60s"}]}


@pytest.mark.parametrize(("body", "headers", "message"), [
    ({"schedule": {"spec": {"cronString": ["0 25 * * *"]}, "action": ACTION}}, {},
     "Invalid schedule spec: Hour is not in range [0-23]"),
    ({"schedule": {"spec": {"cronString": ["every day"]}, "action": ACTION}}, {},
     "Invalid schedule spec: CronString does not have 5-7 fields"),
    ({"schedule": {"spec": {"interval": [{"interval": "0.5s"}]}, "action": ACTION}}, {},
     "Invalid schedule spec: interval is too small"),
    ({"schedule": {"spec": {"cronString": ["0 9 * * *"], "timezoneName": "Mars/Olympus"}, "action": ACTION}}, {},
     "Invalid schedule spec: unknown time zone Mars/Olympus"),
    ({"schedule": {"spec": EVERY_MINUTE, "action": {"startWorkflow": {"workflowId": "x", "taskQueue": {"name": "q"}}}}}, {},
     "WorkflowType is not set on request."),
    ({"schedule": {"spec": EVERY_MINUTE, "action": {"startWorkflow": {"workflowId": "x", "workflowType": {"name": "E"}}}}}, {},
     "missing task queue name"),
    ({"schedule": {"spec": EVERY_MINUTE, "action": {"startWorkflow": {**ACTION["startWorkflow"], "input": "one"}}}}, {},
     "Invalid request body: schedule.action.startWorkflow.input must be a JSON array of values."),
    ({"requestId": "a", "schedule": {"spec": EVERY_MINUTE, "action": ACTION}}, {"Idempotency-Key": "b"},
     "The Idempotency-Key header and the body's request id differ."),
])
def test_a_bad_schedule_is_400_with_temporal_message_and_creates_nothing(http, body, headers, message):
    error = assert_error(http.post(f"{NS}/schedules/bad", json=body, headers=headers), 400, "INVALID_ARGUMENT")
    assert error["message"] == message
    assert http.get(f"{NS}/schedules").get_json() == {}
    assert_error(http.get(f"{NS}/schedules/bad"), 404, "NOT_FOUND")


def test_bad_requests_on_the_other_routes(http):
    unknown_field = http.post(f"{NS}/schedules/s", json={"schedule": {"spek": {}}})
    assert "has no field named \"spek\"" in assert_error(unknown_field, 400, "INVALID_ARGUMENT")["message"]
    assert assert_error(http.post(f"{NS}/schedules/s", data="{nope"), 400, "INVALID_ARGUMENT")["message"].startswith(
        "Malformed JSON body"
    )
    long_id = "x" * 1000
    assert assert_error(http.post(f"{NS}/schedules/{long_id}", json={"schedule": {"spec": EVERY_MINUTE, "action": ACTION}}),
                        400, "INVALID_ARGUMENT")["message"] == "WorkflowId exceeds maximum allowed length (1023/1000)"
    no_ns = assert_error(http.post("/api/v1/namespaces/nope/schedules/s", json={"schedule": {"spec": EVERY_MINUTE, "action": ACTION}}),
                         404, "NOT_FOUND")
    assert no_ns["message"] == "Namespace nope is not found."

    # List filters: Temporal's messages.
    for query, message in (
        ("WorkflowType = 'x'", 'invalid query filter for schedules: cannot filter on "WorkflowType"'),
        ("Foo = 'x'", "invalid query: invalid search attribute: Foo"),
        ("ScheduleId = 'a' ORDER BY ScheduleId", "invalid query filter for schedules: ORDER BY and GROUP BY are not supported"),
    ):
        error = assert_error(http.get(f"{NS}/schedules", query_string={"query": query}), 400, "INVALID_ARGUMENT")
        assert error["message"] == message

    assert http.post(f"{NS}/schedules/s", json={"schedule": {"spec": EVERY_MINUTE, "action": ACTION}}).status_code == 201
    bad_update = http.post(f"{NS}/schedules/s/update", json={"schedule": {"spec": {"cronString": ["61 * * * *"]}, "action": ACTION}})
    assert assert_error(bad_update, 400, "INVALID_ARGUMENT")["message"] == "Invalid schedule spec: Minute is not in range [0-59]"
    assert http.get(f"{NS}/schedules/s").get_json()["schedule"]["spec"] == EVERY_MINUTE  # unchanged
    missing = "workflow not found for ID: temporal-sys-scheduler:nope"
    for response in (
        http.post(f"{NS}/schedules/nope/patch", json={"patch": {"pause": "x"}}),
        http.post(f"{NS}/schedules/nope/update", json={"schedule": {"spec": EVERY_MINUTE, "action": ACTION}}),
        http.get(f"{NS}/schedules/nope/matching-times", query_string={"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}),
    ):
        assert assert_error(response, 404, "NOT_FOUND")["message"] == missing
    assert assert_error(http.get(f"{NS}/schedules/s/matching-times"), 400, "INVALID_ARGUMENT")["message"] == "missing or invalid query"
    bad_time = http.get(f"{NS}/schedules/s/matching-times", query_string={"startTime": "yesterday", "endTime": "2026-01-02T00:00:00Z"})
    assert assert_error(bad_time, 400, "INVALID_ARGUMENT")["message"] == (
        "Invalid query parameter startTime: 'yesterday' is not a valid RFC 3339 time."
    )
    bad_policy = http.post(f"{NS}/schedules/s/patch", json={"patch": {"triggerImmediately": {"overlapPolicy": "SOMETIMES"}}})
    assert "Invalid enum value SOMETIMES" in assert_error(bad_policy, 400, "INVALID_ARGUMENT")["message"]
    assert http.get(f"{NS}/schedules/s").get_json()["info"].get("actionCount") is None  # nothing was triggered


# -- who may call ---------------------------------------------------------------------------


def bearer(subject: str, *permissions: str) -> dict[str, str]:
    claims = {"sub": subject, "permissions": list(permissions), "exp": int(time.time() + 600)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


@pytest.fixture
def secured(migrated_url):
    app = create_app(
        Settings(database_url=migrated_url, num_shards=4, auth=auth.AuthConfig(enabled=True, hs256_secret=SECRET)), config=CONFIG
    )
    yield app.test_client()
    app.extensions["odin"].close()


def test_roles_decide_who_may_read_and_change_schedules(secured, caplog):
    http = secured
    reader, writer, elsewhere = bearer("ann", "default:reader"), bearer("bob", "default:writer"), bearer("eve", "other:admin")
    body = {"schedule": {"spec": EVERY_MINUTE, "action": ACTION}}
    assert_error(http.get(f"{NS}/schedules"), 401, "UNAUTHENTICATED")
    assert_error(http.post(f"{NS}/schedules/s", json=body, headers=reader), 403, "PERMISSION_DENIED")
    assert_error(http.post(f"{NS}/schedules/s", json=body, headers=elsewhere), 403, "PERMISSION_DENIED")
    assert http.get(f"{NS}/schedules", headers=reader).get_json() == {}  # the refused creates made nothing
    with caplog.at_level(logging.INFO, logger="odin.audit"):
        assert http.post(f"{NS}/schedules/s", json=body, headers=writer).status_code == 201
    assert '"subject":"bob","operation":"CreateSchedule","namespace":"default","target":"s","outcome":"OK"' in caplog.text

    # A reader reads...
    assert http.get(f"{NS}/schedules", headers=reader).status_code == 200
    assert http.get(f"{NS}/schedules/s", headers=reader).status_code == 200
    times = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:05:00Z"}
    assert len(http.get(f"{NS}/schedules/s/matching-times", query_string=times, headers=reader).get_json()["startTime"]) == 5
    assert_error(http.get(f"{NS}/schedules/s", headers=elsewhere), 403, "PERMISSION_DENIED")
    # ...and changes nothing.
    for response in (
        http.post(f"{NS}/schedules/s/patch", json={"patch": {"pause": "no"}}, headers=reader),
        http.post(f"{NS}/schedules/s/update", json=body, headers=reader),
        http.delete(f"{NS}/schedules/s", headers=reader),
    ):
        assert_error(response, 403, "PERMISSION_DENIED")
    assert http.get(f"{NS}/schedules/s", headers=writer).get_json()["schedule"]["state"] == {}

    # The web UI: a reader sees the schedule without its buttons, and its forms are refused.
    page = http.get(f"{UI}/schedules/s", headers=reader)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "every 1 minute" in text
    for button in ('id="pause"', 'id="trigger"', 'id="backfill"', 'id="delete"'):
        assert button not in text
    denied = http.post(f"{UI}/schedules/s/pause", data={"csrf_token": csrf_token(text), "note": "no"}, headers=reader)
    assert denied.status_code == 403 and denied.mimetype == "text/html"
    assert http.get(f"{NS}/schedules/s", headers=writer).get_json()["schedule"]["state"] == {}
    # A writer sees them all, and may use them.
    text = http.get(f"{UI}/schedules/s", headers=writer).get_data(as_text=True)
    for button in ('id="pause"', 'id="trigger"', 'id="backfill"', 'id="delete"'):
        assert button in text
    done = http.post(f"{UI}/schedules/s/pause", data={"csrf_token": csrf_token(text), "note": "by bob"}, headers=writer)
    assert done.status_code == 303
    assert http.get(f"{NS}/schedules/s", headers=writer).get_json()["schedule"]["state"] == {"paused": True, "notes": "by bob"}
    assert http.delete(f"{NS}/schedules/s", headers=writer).status_code == 200


# -- the web UI pages -----------------------------------------------------------------------


def test_the_schedules_page_lists_each_schedule_in_words(http):
    spec = {"cronString": ["0 9 * * 1-5"], "timezoneName": "Europe/Paris"}
    http.post(f"{NS}/schedules/weekdays", json=schedule_body("wd", "q", spec))
    http.post(f"{NS}/schedules/hourly", json=schedule_body("hr", "q"))
    http.post(f"{NS}/schedules/hourly/patch", json={"patch": {"pause": "on hold"}})

    page = http.get(f"{UI}/schedules").get_data(as_text=True)
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)[1:]
    assert len(rows) == 2
    hourly, weekdays = (re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip() for r in rows)
    assert hourly.startswith("hourly Echo every 1 hour") and "Paused on hold" in hourly
    assert weekdays.startswith("weekdays Echo at 09:00 on Mon\u2013Fri (Europe/Paris)") and weekdays.endswith("Active")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:00:00 UTC", weekdays)  # the next run
    assert 'href="/namespaces/default/schedules/weekdays"' in page and 'id="nav-schedules"' in page

    http.post(f"{NS}/schedules/minutely", json=schedule_body("mn", "q", {"cronString": ["* * * * *"]}))
    first = http.get(f"{UI}/schedules?pageSize=2").get_data(as_text=True)
    next_link = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = http.get(next_link).get_data(as_text=True)
    assert ">hourly<" in first and ">minutely<" in first and ">weekdays<" not in first
    assert ">weekdays<" in second and ">hourly<" not in second and "First page" in second
    http.delete(f"{NS}/schedules/minutely")

    paused = http.get(f"{UI}/schedules", query_string={"query": "TemporalSchedulePaused = true"}).get_data(as_text=True)
    assert "hourly" in paused and "weekdays" not in paused
    bad = http.get(f"{UI}/schedules", query_string={"query": "WorkflowType = 'x'"})
    assert bad.status_code == 400 and "cannot filter on" in bad.get_data(as_text=True)


def test_the_schedule_page_and_its_forms(http):
    spec = {"cronString": ["CRON_TZ=Europe/Paris 0 9 * * 1-5"]}
    assert http.post(f"{NS}/schedules/s", json=schedule_body("wd", "q", spec, memo={"fields": {"team": "ops"}})).status_code == 201
    page = http.get(f"{UI}/schedules/s").get_data(as_text=True)
    assert "at 09:00 on Mon\u2013Fri (Europe/Paris)" in page and "0 9 * * 1-5" in page
    upcoming = re.findall(r"<li><time[^>]*>([^<]*)</time> <span class=\"muted\">· ([^<]*)</span>", page)
    assert len(upcoming) == 10
    for utc, local in upcoming:  # each shown in UTC and on Paris' wall clock: 09:00 on a weekday
        paris = datetime.strptime(utc, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
        assert (paris.hour, paris.minute, paris.weekday() < 5) == (9, 0, True) and local == paris.strftime("%a 09:00 %Z")
    assert "No actions yet." in page and "&#34;team&#34;: &#34;ops&#34;" in page and "<dd>365 days</dd>" in page
    token = csrf_token(page)

    # Forms without the cookie's token are refused and change nothing.
    forged = http.post(f"{UI}/schedules/s/pause", data={"csrf_token": "guess" * 10, "note": "x"})
    assert forged.status_code == 403 and forged.mimetype == "text/html"
    assert http.get(f"{NS}/schedules/s").get_json()["schedule"]["state"] == {}

    paused = http.post(f"{UI}/schedules/s/pause", data={"csrf_token": token, "note": "quiet <week>"})
    assert paused.status_code == 303 and paused.headers["Location"] == f"{UI}/schedules/s?done=pause"
    page = http.get(paused.headers["Location"]).get_data(as_text=True)
    assert "Schedule paused." in page and 'id="notes">quiet &lt;week&gt;<' in page and 'id="unpause"' in page

    # Trigger with the schedule's own policy: the run is tracked while it runs (no worker here).
    triggered = http.post(f"{UI}/schedules/s/trigger", data={"csrf_token": token, "overlap_policy": ""})
    assert triggered.status_code == 303
    [action] = http.get(f"{NS}/schedules/s").get_json()["info"]["recentActions"]
    run = action["startWorkflowResult"]
    page = http.get(triggered.headers["Location"]).get_data(as_text=True)
    link = f'href="/namespaces/default/workflows/{run["workflowId"]}?runId={run["runId"]}"'
    assert "Triggered" in page and page.count(link) == 2  # in recent actions and in running workflows
    assert re.search(r'id="running">\s*<li><a ' + re.escape(link), page)
    run_page = http.get(f"{UI}/workflows/{run['workflowId']}").get_data(as_text=True)
    assert '<a id="scheduled-by" href="/namespaces/default/schedules/s">s</a>' in run_page

    # Backfill: Monday 7 and Tuesday 8 December 2026 at 09:00 Paris (08:00 UTC), form times in UTC.
    form = {"csrf_token": token, "start_time": "2026-12-07T00:00", "end_time": "2026-12-08T23:59", "overlap_policy": ""}
    assert http.post(f"{UI}/schedules/s/backfill", data={**form, "overlap_policy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"}).status_code == 303
    ids = [a["startWorkflowResult"]["workflowId"] for a in http.get(f"{NS}/schedules/s").get_json()["info"]["recentActions"]]
    assert ids[1:] == ["wd-2026-12-07T08:00:00Z", "wd-2026-12-08T08:00:00Z"]

    for bad, message in (
        ({**form, "end_time": "2026-12-06T00:00"}, "The backfill&#39;s end must be after its start."),
        ({**form, "start_time": "monday"}, "The backfill&#39;s start time &#39;monday&#39; is not a time like 2024-05-01T09:00."),
        ({**form, "start_time": ""}, "The backfill&#39;s start time is missing."),
        ({**form, "overlap_policy": "SOMETIMES"}, "Unknown overlap policy &#39;SOMETIMES&#39;"),
    ):
        response = http.post(f"{UI}/schedules/s/backfill", data=bad)
        assert response.status_code == 400 and response.mimetype == "text/html"
        assert message in response.get_data(as_text=True)
    assert http.get(f"{NS}/schedules/s").get_json()["info"]["actionCount"] == "3"

    unpaused = http.post(f"{UI}/schedules/s/unpause", data={"csrf_token": token, "note": "back"})
    assert "Schedule unpaused." in http.get(unpaused.headers["Location"]).get_data(as_text=True)
    assert http.get(f"{NS}/schedules/s").get_json()["schedule"]["state"] == {"notes": "back"}

    deleted = http.post(f"{UI}/schedules/s/delete", data={"csrf_token": token})
    assert deleted.status_code == 303 and deleted.headers["Location"] == f"{UI}/schedules?done=delete"
    listing = http.get(deleted.headers["Location"]).get_data(as_text=True)
    assert "Schedule deleted." in listing and "No schedules match." in listing
    missing = http.get(f"{UI}/schedules/s")
    assert missing.status_code == 404 and "NOT_FOUND" in missing.get_data(as_text=True)


def test_the_openapi_document_has_the_schedule_routes(http):
    paths = http.get("/openapi.json").get_json()["paths"]
    base = "/api/v1/namespaces/{namespace}/schedules"
    operations = {
        (path, method): op["x-odin-operation"] for path, ops in paths.items() if path.startswith(base) for method, op in ops.items()
    }
    assert operations == {
        (base, "get"): "ListSchedules",
        (base + "/{schedule_id}", "post"): "CreateSchedule",
        (base + "/{schedule_id}", "get"): "DescribeSchedule",
        (base + "/{schedule_id}", "delete"): "DeleteSchedule",
        (base + "/{schedule_id}/update", "post"): "UpdateSchedule",
        (base + "/{schedule_id}/patch", "post"): "PatchSchedule",
        (base + "/{schedule_id}/matching-times", "get"): "ListScheduleMatchingTimes",
    }
    create = paths[base + "/{schedule_id}"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["properties"].keys() >= {"schedule", "memo", "initialPatch"}
    assert "scheduleId" not in create["requestBody"]["content"]["application/json"]["schema"]["properties"]
