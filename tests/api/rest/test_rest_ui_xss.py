"""The web UI renders what callers control (workflow and schedule ids, workflow types, task
queues, inputs, memos, search attributes, summaries and details, termination reasons, schedule
notes and calendar comments, queries): every such field, filled with markup that would run script
if it reached the page raw, must come out escaped, on every page that shows it."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from rest_support import start_body

NS = "/api/v1/namespaces/default"
UI = "/namespaces/default"

# Each would execute (or open a script URL) if rendered without escaping.
ATTACKS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
]


def assert_inert(page: str, attack: str) -> None:
    if attack.startswith("javascript:"):
        # Never as the start of a link target (as text it is harmless).
        assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", page, re.I), attack
        return
    assert attack not in page, f"raw {attack!r} in the page"
    assert "<script>alert" not in page and "<img src=x" not in page and "<svg onload" not in page


def register_keyword(app, name: str) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    request = AddSearchAttributesRequest(
        namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
    )
    app.extensions["odin"].run(lambda runtime: runtime.frontend.add_search_attributes(request))


@pytest.mark.parametrize("attack", ATTACKS)
def test_caller_controlled_fields_are_escaped_on_every_page(app, http, attack):
    workflow_id = f"xss-{ATTACKS.index(attack)}-{attack}"
    register_keyword(app, "XssKeyword")
    body = start_body(
        attack, attack.replace("/", "_"), attack, {"nested": attack},
        memo={"fields": {"note": attack}},
        searchAttributes={"indexedFields": {"XssKeyword": attack}},
        userMetadata={"summary": f"summary {attack}", "details": f"details {attack}"},
    )
    started = http.post(f"{NS}/workflows/{quote(workflow_id, safe='')}", json=body)
    assert started.status_code == 201, started.get_data(as_text=True)
    terminated = http.post(f"{NS}/workflows/{quote(workflow_id, safe='')}/terminate", json={"reason": attack})
    assert terminated.status_code == 200, terminated.get_data(as_text=True)

    pages = {
        "list": http.get(f"{UI}/workflows"),
        "list with the attack as query": http.get(f"{UI}/workflows", query_string={"query": attack}),
        "workflow": http.get(f"{UI}/workflows/{quote(workflow_id, safe='')}"),
        "task queue": http.get(f"{UI}/task-queues/{quote(attack.replace('/', '_'), safe='')}"),
    }
    for name, response in pages.items():
        page = response.get_data(as_text=True)
        assert response.status_code in (200, 400), (name, response.status_code)
        assert response.mimetype == "text/html", name
        assert_inert(page, attack)
    # The fields are shown (escaped), so the check above looked at pages that do render them.
    workflow_page = pages["workflow"].get_data(as_text=True)
    assert "Workflow Execution Terminated" in workflow_page and "XssKeyword" in workflow_page
    assert 'id="summary">summary ' in workflow_page and 'id="details"><pre>details ' in workflow_page
    if not attack.startswith("javascript:"):
        assert "&lt;" in workflow_page or "&#34;&gt;" in workflow_page or "&#39;&gt;" in workflow_page


def test_the_csrf_cookie_is_http_only_and_same_site(http):
    workflow_id = "cookie-check"
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Cookie", "q")).status_code == 201
    page = http.get(f"{UI}/workflows/{workflow_id}")  # a page with forms sets the token cookie
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("odin_csrf=")]
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered, cookie
    assert "secure" not in lowered  # plain HTTP here; behind TLS the cookie is Secure


def test_behind_tls_the_csrf_cookie_is_secure(http):
    workflow_id = "cookie-tls"
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("Cookie", "q")).status_code == 201
    page = http.get(f"{UI}/workflows/{workflow_id}", base_url="https://localhost")
    [cookie] = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("odin_csrf=")]
    assert "; secure" in cookie.lower(), cookie


@pytest.mark.parametrize("attack", ATTACKS)
def test_schedule_fields_are_escaped_on_the_schedule_pages(app, http, attack):
    schedule_id = f"xss-{ATTACKS.index(attack)}-{attack}"
    path_id = quote(schedule_id, safe="")
    register_keyword(app, "XssKeyword")
    body = {
        "schedule": {
            "spec": {"cronString": [f"0 9 * * * # {attack}"]},
            "action": {"startWorkflow": {
                "workflowId": attack, "workflowType": {"name": attack}, "taskQueue": {"name": attack.replace("/", "_")},
                "input": [attack, {"nested": attack}], "memo": {"fields": {"note": attack}},
                "searchAttributes": {"indexedFields": {"XssKeyword": attack}},
            }},
        },
        "memo": {"fields": {"note": attack}},
        "searchAttributes": {"indexedFields": {"XssKeyword": attack}},
    }
    created = http.post(f"{NS}/schedules/{path_id}", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    for patch in ({"triggerImmediately": {}}, {"pause": attack}):
        assert http.post(f"{NS}/schedules/{path_id}/patch", json={"patch": patch}).status_code == 200

    pages = {
        "list": http.get(f"{UI}/schedules"),
        "list with the attack as query": http.get(f"{UI}/schedules", query_string={"query": attack}),
        "schedule": http.get(f"{UI}/schedules/{path_id}"),
    }
    for name, response in pages.items():
        page = response.get_data(as_text=True)
        assert response.status_code in (200, 400), (name, response.status_code)
        assert response.mimetype == "text/html", name
        assert_inert(page, attack)
    # The fields are shown (escaped): the id, the note, the recent action's run, memo and search attributes.
    page = pages["schedule"].get_data(as_text=True)
    assert 'id="notes"' in page and 'id="recent-actions"' in page and "XssKeyword" in page and 'id="memo"' in page
    assert page.count("/namespaces/default/workflows/") >= 1
    if not attack.startswith("javascript:"):
        for shown in (page, pages["list"].get_data(as_text=True)):
            assert "&lt;" in shown or "&#34;&gt;" in shown or "&#39;&gt;" in shown
