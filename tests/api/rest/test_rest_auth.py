"""The REST door and the web UI pass every call through the frontend's gate, like the gRPC door:
bearer tokens, per-namespace roles, rate budgets (429 with Retry-After) and audit lines."""

from __future__ import annotations

import logging
import re
import time

import jwt
import pytest
from rest_support import CONFIG, assert_error, start_body, wid

from odin.api.rest import create_app
from odin.config import Settings
from odin.security import auth

SECRET = "rest-hs256-test-secret-that-is-long-enough-for-the-check"
NS = "/api/v1/namespaces/default"


def bearer(subject: str, *permissions: str) -> dict[str, str]:
    claims = {"sub": subject, "permissions": list(permissions), "exp": int(time.time() + 600)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}


@pytest.fixture
def make_app(migrated_url):
    apps = []

    def make(**settings):
        app = create_app(Settings(database_url=migrated_url, num_shards=4, **settings), config=CONFIG)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["odin"].close()


def test_calls_need_a_token_with_the_right_role(make_app, caplog):
    http = make_app(auth=auth.AuthConfig(enabled=True, hs256_secret=SECRET))
    assert_error(http.get(f"{NS}/workflows"), 401, "UNAUTHENTICATED")
    assert_error(http.get(f"{NS}/workflows", headers={"Authorization": "Bearer not-a-key"}), 401, "UNAUTHENTICATED")
    expired = {"sub": "old", "permissions": ["default:writer"], "exp": int(time.time() - 5)}
    forged = {"sub": "eve", "permissions": ["default:admin"], "exp": int(time.time() + 600)}
    for claims, key, reason in ((expired, SECRET, "expired"), (forged, "some-other-secret-of-enough-length-here", "Invalid token")):
        headers = {"Authorization": f"Bearer {jwt.encode(claims, key, 'HS256')}"}
        body = assert_error(http.post(f"{NS}/workflows/{wid('nope')}", json=start_body("X", "q"), headers=headers),
                            401, "UNAUTHENTICATED")
        assert reason in body["message"]
    listed = http.get(f"{NS}/workflows", headers=bearer("ann", "default:reader")).get_json()
    assert listed.get("executions", []) == []  # the refused starts created nothing
    assert http.get("/api/v1/system-info").status_code == 200  # public

    reader, writer = bearer("ann", "default:reader"), bearer("bob", "default:writer")
    assert http.get(f"{NS}/workflows", headers=reader).status_code == 200
    workflow_id = wid("authz")
    assert_error(http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"), headers=reader), 403, "PERMISSION_DENIED")
    assert_error(http.get("/api/v1/namespaces/other/workflows", headers=writer), 403, "PERMISSION_DENIED")
    with caplog.at_level(logging.INFO, logger="odin.audit"):
        assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"), headers=writer).status_code == 201
    assert '"subject":"bob","operation":"StartWorkflowExecution","namespace":"default"' in caplog.text
    assert f'"target":"{workflow_id}","outcome":"OK"' in caplog.text

    page = http.get("/namespaces/default/workflows")  # the web UI goes through the same gate...
    assert page.status_code == 302 and "/login?next=" in page.headers["Location"]  # ...and asks to sign in
    assert workflow_id in http.get("/namespaces/default/workflows", headers=reader).get_data(as_text=True)


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _token(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_web_ui_sign_in_keeps_the_token_in_a_cookie_and_shows_only_allowed_buttons(make_app):
    http = make_app(auth=auth.AuthConfig(enabled=True, hs256_secret=SECRET))
    writer, reader = bearer("bob", "default:writer"), bearer("ann", "default:reader")
    workflow_id = wid("ui-auth")
    assert http.post(f"{NS}/workflows/{workflow_id}", json=start_body("X", "q"), headers=writer).status_code == 201
    page_url = f"/namespaces/default/workflows/{workflow_id}"

    login = http.get(f"/login?next={page_url}").get_data(as_text=True)
    refused = http.post("/login", data={"csrf_token": _csrf(login), "token": "forged.jwt.token", "next": page_url})
    assert refused.status_code == 401 and "Malformed token" in refused.get_data(as_text=True)
    assert http.get_cookie("odin_session") is None

    # A reader signs in: the page shows the workflow but no buttons that would be refused.
    done = http.post("/login", data={"csrf_token": _csrf(login), "token": _token(reader), "next": page_url})
    assert done.status_code == 303 and done.headers["Location"] == page_url
    cookie = http.get_cookie("odin_session")
    assert cookie.http_only and cookie.same_site == "Strict"
    page = http.get(page_url).get_data(as_text=True)
    assert workflow_id in page and "ann" in page
    assert 'id="cancel"' not in page and 'id="terminate"' not in page
    # Posting the form anyway is refused by the gate, and nothing changes.
    denied = http.post(f"{page_url}/terminate", data={"csrf_token": _csrf(page)})
    assert denied.status_code == 403
    assert http.get(f"{NS}/workflows/{workflow_id}", headers=writer).get_json()["workflowExecutionInfo"]["status"] == (
        "WORKFLOW_EXECUTION_STATUS_RUNNING"
    )
    # The cookie does not count for the JSON API (it has no CSRF protection of its own).
    assert_error(http.get(f"{NS}/workflows"), 401, "UNAUTHENTICATED")

    # A writer sees, and may use, the buttons; signing out forgets the token.
    http.post("/logout", data={"csrf_token": _csrf(page)})
    assert http.get_cookie("odin_session") is None
    login = http.get("/login").get_data(as_text=True)
    http.post("/login", data={"csrf_token": _csrf(login), "token": _token(writer), "next": page_url})
    page = http.get(page_url).get_data(as_text=True)
    assert 'id="cancel"' in page and 'id="terminate"' in page
    assert http.post(f"{page_url}/terminate", data={"csrf_token": _csrf(page)}).status_code == 303
    assert http.get(f"{NS}/workflows/{workflow_id}", headers=writer).get_json()["workflowExecutionInfo"]["status"] == (
        "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    )
    # Only local paths are followed after signing in.
    login = http.get("/login").get_data(as_text=True)
    away = http.post("/login", data={"csrf_token": _csrf(login), "token": _token(writer), "next": "https://evil.example/"})
    assert away.headers["Location"] == "/"


def test_a_namespace_over_its_rate_budget_gets_429_with_retry_after(make_app):
    http = make_app(namespace_rps=1.0)
    statuses = [http.get(f"{NS}/workflows") for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert_error(limited[0], 429, "RESOURCE_EXHAUSTED")
    assert int(limited[0].headers["Retry-After"]) >= 1


# -- the authorization matrix of the REST door, generated from the OpenAPI document ------------

# What each role may do, as the README documents it (the test's own statement of the policy).
ROLE_LEVELS = {
    "reader": {auth.Level.READ},
    "writer": {auth.Level.READ, auth.Level.WRITE},
    "worker": {auth.Level.READ, auth.Level.WORK},
    "admin": {auth.Level.READ, auth.Level.WRITE, auth.Level.WORK, auth.Level.ADMIN},
}
PRINCIPALS = {**{f"default:{role}": f"default:{role}" for role in ROLE_LEVELS}, "other:admin": "other:admin"}


def test_every_route_and_role_is_allowed_or_refused_as_the_operations_table_says(make_app):
    http = make_app(auth=auth.AuthConfig(enabled=True, hs256_secret=SECRET))
    document = http.get("/openapi.json").get_json()
    routes = [
        (path, method.upper(), op["x-odin-operation"])
        for path, ops in document["paths"].items()
        if path.startswith("/api/")
        for method, op in ops.items()
        if method in ("get", "post", "put", "delete", "patch") and op.get("x-odin-operation")
    ]
    every = [(p, m) for p, ops in document["paths"].items() if p.startswith("/api/") for m in ops if m in ("get", "post", "put", "delete", "patch")]
    assert len(routes) == len(every)  # every API route names its operation
    checked = 0
    for principal, permission in PRINCIPALS.items():
        levels = ROLE_LEVELS[permission.split(":")[1]] if permission.startswith("default:") else set()
        headers = bearer(principal, permission)
        for path, method, operation in routes:
            url = re.sub(r"\{namespace\}", "default", path)
            url = re.sub(r"\{[^}]+\}", "matrix-x", url)
            needed = auth.OPERATIONS[operation]
            allowed = bool(needed & {auth.Level.PUBLIC, auth.Level.AUTHENTICATED}) or bool(needed & levels)
            if operation == "RegisterNamespace":
                allowed = False  # cluster administration: no namespace role grants it
            if operation == "DeleteNamespace" and allowed:
                continue  # would remove the namespace the rest of the matrix runs in
            response = http.open(url, method=method, json={} if method != "GET" else None, headers=headers)
            if allowed:
                assert response.status_code not in (401, 403), (principal, method, path, response.get_data(as_text=True))
            else:
                assert response.status_code == 403, (principal, method, path, response.status_code)
                assert response.get_json()["error"]["code"] == "PERMISSION_DENIED"
            checked += 1
        # Without a token, only public routes answer.
    for path, method, operation in routes:
        if auth.Level.PUBLIC in auth.OPERATIONS[operation]:
            continue
        url = re.sub(r"\{[^}]+\}", "default", path)
        assert http.open(url, method=method, json={} if method != "GET" else None).status_code == 401, (method, path)
    assert checked >= len(PRINCIPALS) * (len(routes) - 1)
