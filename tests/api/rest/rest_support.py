"""Helpers of the REST tests (their fixtures are in conftest.py): request bodies, error checks,
calls to a real HTTP server and the environment of a child process."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from werkzeug.test import TestResponse

from odin.persistence import migrate
from odin.persistence.store import open_database

REPO = Path(__file__).resolve().parents[3]
# Long polls in the tests wait at most this long (the app's default is 20 s).
LONG_POLL = 2.0
CONFIG = {"ODIN_LONG_POLL_SECONDS": LONG_POLL, "TESTING": True}


async def upgrade(url: str) -> None:
    db = open_database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


def wid(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_body(workflow_type: str, task_queue: str, *args, **fields) -> dict:
    return {"workflowType": {"name": workflow_type}, "taskQueue": {"name": task_queue}, "input": list(args), **fields}


def assert_error(response: TestResponse, status: int, code: str) -> dict:
    """The response is the JSON error body with this status and code; returns its ``error``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for an ``odin``/``gunicorn`` child running this checkout's code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    for key in ("DATABASE_URL", "REDIS_URL"):
        env.pop(key, None)
    return env


def http_call(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """A JSON call to a real HTTP server: (status, body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
