"""`odin workflow ...`, `odin namespace ...`, `odin task-queue describe`, `odin status` against a
real `odin dev` with a real `odin worker`, each run as a subprocess: output, JSON, exit codes and
the one-line errors."""

from __future__ import annotations

import json
import time

from cli_support import odin, one_line_error, wid

from odin import __version__


def test_version_and_worker_flags():
    assert odin("--version").stdout.strip() == f"odin, version {__version__}"
    help_text = odin("worker", "--help").stdout
    assert "--address" in help_text and "--namespace" in help_text


def test_start_result_list_describe_show(dev, worker):
    workflow_id = wid("greet")
    started = dev.odin("workflow", "start", "-t", "greet", "--task-queue", "clitest", "-w", workflow_id, "-i", '"Ann"', "-o", "json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["runId"]
    done = dev.odin("workflow", "result", workflow_id, "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "Hello, ANN!"

    listed = dev.odin("workflow", "list", "-q", f"WorkflowId = '{workflow_id}'", "-o", "json")
    assert [(w["execution"]["workflowId"], w["status"]) for w in json.loads(listed.stdout)] == [
        (workflow_id, "WORKFLOW_EXECUTION_STATUS_COMPLETED")
    ]
    assert dev.odin("workflow", "count", "-q", f"WorkflowId = '{workflow_id}'").stdout == "1\n"
    grouped = json.loads(dev.odin("workflow", "count", "-q", f"WorkflowId = '{workflow_id}' GROUP BY ExecutionStatus", "-o", "json").stdout)
    assert grouped == {"count": 1, "groups": [{"values": ["Completed"], "count": 1}]}
    table = dev.odin("workflow", "list", "-q", f"WorkflowId = '{workflow_id}'").stdout
    row = next(line for line in table.splitlines() if workflow_id in line)
    assert row.split()[:3] == [workflow_id, "greet", "Completed"] and run_id in row and "ago" in row

    described = dev.odin("workflow", "describe", workflow_id)
    assert described.returncode == 0
    assert "Completed" in described.stdout and run_id in described.stdout and "UTC (" in described.stdout
    as_json = json.loads(dev.odin("workflow", "describe", workflow_id, "-o", "json").stdout)
    assert as_json["workflowExecutionInfo"]["execution"]["runId"] == run_id

    shown = dev.odin("workflow", "show", workflow_id).stdout
    rows = [line.split() for line in shown.splitlines() if line.strip()[:1].isdigit()]
    names = [row[row.index("ago") + 1] for row in rows]  # ID, time ("3s ago"), event, details
    assert names[0] == "WorkflowExecutionStarted" and names[-1] == "WorkflowExecutionCompleted"
    assert "ActivityTaskCompleted" in names and '"Hello, ANN!"' in shown
    history = json.loads(dev.odin("workflow", "show", workflow_id, "-o", "json").stdout)
    assert history["history"]["events"][-1]["workflowExecutionCompletedEventAttributes"]["result"] == ["Hello, ANN!"]


def test_signal_query_then_finish_and_delete(dev, worker):
    workflow_id = wid("waiter")
    assert dev.odin("workflow", "start", "-t", "waiter", "--task-queue", "clitest", "-w", workflow_id, "-i", '"a"').returncode == 0
    signaled = dev.odin("workflow", "signal", workflow_id, "--name", "add", "-i", '{"b": 2}')
    assert signaled.returncode == 0 and signaled.stdout.strip() == f"{workflow_id}: signaled", signaled.stderr
    deadline = time.monotonic() + 30
    while True:
        answered = dev.odin("workflow", "query", workflow_id, "--name", "items")
        if answered.returncode == 0 and json.loads(answered.stdout) == ["a", {"b": 2}]:
            break
        assert time.monotonic() < deadline, (answered.stdout, answered.stderr)
        time.sleep(0.5)
    again = dev.odin("workflow", "start", "-t", "waiter", "--task-queue", "clitest", "-w", workflow_id)
    assert one_line_error(again, 5) == f"a workflow with id '{workflow_id}' is already running: wait for it, or pick another --id"
    assert dev.odin("workflow", "signal", workflow_id, "--name", "finish").returncode == 0
    assert json.loads(dev.odin("workflow", "result", workflow_id, "--timeout", "30").stdout) == ["a", {"b": 2}]

    deleted = dev.odin("workflow", "delete", workflow_id)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"{workflow_id}: deleted"
    deadline = time.monotonic() + 30
    while (gone := dev.odin("workflow", "describe", workflow_id)).returncode == 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert one_line_error(gone, 3) == f"workflow not found for ID: {workflow_id}"


def test_cancel_terminate_and_failed_results_exit_1(dev, worker):
    cancelled, terminated, failed = wid("cancel"), wid("term"), wid("broken")
    for workflow_id in (cancelled, terminated):
        assert dev.odin("workflow", "start", "-t", "waiter", "--task-queue", "clitest", "-w", workflow_id, "-i", "1").returncode == 0
    assert dev.odin("workflow", "start", "-t", "broken", "--task-queue", "clitest", "-w", failed, "-i", '"no stock"').returncode == 0

    waiting = dev.odin("workflow", "result", terminated, "--timeout", "1")
    assert one_line_error(waiting, 1) == f"{terminated} is still running after 1s"
    assert dev.odin("workflow", "cancel", cancelled).stdout.strip() == f"{cancelled}: cancel requested"
    assert dev.odin("workflow", "terminate", terminated, "--reason", "by hand").returncode == 0
    assert one_line_error(dev.odin("workflow", "result", cancelled, "--timeout", "30"), 1) == f"{cancelled} was cancelled"
    assert one_line_error(dev.odin("workflow", "result", terminated), 1) == f"{terminated} was terminated: by hand"
    assert one_line_error(dev.odin("workflow", "result", failed, "--timeout", "30"), 1) == f"{failed} failed: no stock"
    status = dev.odin("workflow", "list", "-q", f"WorkflowId IN ('{cancelled}', '{terminated}', '{failed}')", "-o", "json")
    assert sorted(w["status"] for w in json.loads(status.stdout)) == [
        "WORKFLOW_EXECUTION_STATUS_CANCELED", "WORKFLOW_EXECUTION_STATUS_FAILED", "WORKFLOW_EXECUTION_STATUS_TERMINATED",
    ]


def test_errors_are_one_line_with_exit_codes(dev, tmp_path):
    assert one_line_error(dev.odin("workflow", "describe", "never-started"), 3) == "workflow not found for ID: never-started"
    assert one_line_error(dev.odin("workflow", "list", "-n", "nope"), 3) == (
        f"the namespace 'nope' does not exist on the server at {dev.grpc}: "
        "create it (odin namespace create nope) or pass --namespace / ODIN_NAMESPACE"
    )
    assert one_line_error(dev.odin("workflow", "list", "-q", "WorkflowType ="), 2) == (
        "Invalid query: expected a value (at position 14)"
    )
    assert one_line_error(dev.odin("workflow", "start", "-t", "greet", "--task-queue", "q", "-i", "Ann"), 2) == (
        "--input #1 is not JSON (Expecting value): quote strings as JSON, e.g. --input '\"Ann\"'"
    )
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert one_line_error(odin("status", "--address", f"127.0.0.1:{port}"), 4) == (
        f"cannot reach the server at 127.0.0.1:{port} (--address / ODIN_ADDRESS): nothing listens there (connection refused)"
    )


def test_namespace_commands(dev):
    name = wid("ns")
    created = dev.odin("namespace", "create", name, "--retention", "7d", "--description", "The shop", "--data", "odin.rps=50")
    assert created.returncode == 0 and created.stdout.strip() == f"namespace {name} created (retention 7d)", created.stderr
    assert one_line_error(dev.odin("namespace", "create", name), 5) == f"Namespace {name} already exists."
    assert one_line_error(dev.odin("namespace", "create", wid("ns"), "--retention", "7x"), 2) == (
        "--retention '7x' is not a duration: write e.g. 7d, 72h, 1d12h, 30m or 45s"
    )
    assert one_line_error(dev.odin("namespace", "update", name), 2) == (
        "nothing to update: give --retention, --description, --owner-email or --data"
    )
    assert dev.odin("namespace", "update", name, "--retention", "1d12h", "--owner-email", "ops@example.com").returncode == 0
    described = json.loads(dev.odin("namespace", "describe", name, "-o", "json").stdout)
    assert described["config"]["workflowExecutionRetentionTtl"] == "129600s"
    assert described["namespaceInfo"]["description"] == "The shop"
    assert described["namespaceInfo"]["ownerEmail"] == "ops@example.com"
    assert described["namespaceInfo"]["data"] == {"odin.rps": "50"}
    table = dev.odin("namespace", "list").stdout
    row = next(line for line in table.splitlines() if line.split()[:1] == [name])
    assert row.split()[:3] == [name, "registered", "1d12h"] and "The shop" in row
    assert one_line_error(dev.odin("namespace", "describe", "nope"), 3) == (
        f"the namespace 'nope' does not exist on the server at {dev.grpc}: "
        "create it (odin namespace create nope) or pass --namespace / ODIN_NAMESPACE"
    )


def test_task_queue_and_status_show_pollers_and_backlog(dev, worker):
    deadline = time.monotonic() + 30
    while True:
        queue = json.loads(dev.odin("task-queue", "describe", "clitest", "-o", "json").stdout)
        if queue["workflow"]["pollers"] and queue["activity"]["pollers"]:
            break
        assert time.monotonic() < deadline, queue
        time.sleep(0.5)
    # A queue nobody polls, with a workflow task waiting there.
    lonely = wid("lonely")
    assert dev.odin("workflow", "start", "-t", "greet", "--task-queue", lonely, "-i", '"x"').returncode == 0
    status = dev.odin("status", "-q", "clitest", "-o", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["server"]["version"] == __version__ and report["server"]["store"] == "sqlite"
    queues = {q["name"]: q for q in report["taskQueues"]}
    assert queues["clitest"]["workflow"]["pollers"] and queues[lonely]["workflow"]["pollers"] == []
    assert queues[lonely]["workflow"]["backlog"] == 1
    table = dev.odin("status", "-q", "clitest").stdout
    assert f"up at {dev.grpc}" in table
    lonely_row = next(line for line in table.splitlines() if line.startswith(f" {lonely}") or line.startswith(lonely))
    assert lonely_row.split()[1:4] == ["workflow", "1", "0"]
    described = dev.odin("task-queue", "describe", "clitest").stdout
    assert "workflow" in described and "activity" in described


def test_describe_shows_a_pending_activity_and_its_last_failure(dev, worker):
    workflow_id = wid("stuck")
    assert dev.odin("workflow", "start", "-t", "stuck_on", "--task-queue", "clitest", "-w", workflow_id, "-i", '"billing"').returncode == 0
    deadline = time.monotonic() + 30
    while True:
        described = json.loads(dev.odin("workflow", "describe", workflow_id, "-o", "json").stdout)
        pending = described.get("pendingActivities", [])
        if pending and pending[0].get("attempt", 0) >= 2:
            break
        assert time.monotonic() < deadline, described
        time.sleep(0.5)
    table = dev.odin("workflow", "describe", workflow_id).stdout
    row = next(line for line in table.splitlines() if "always_down" in line)
    assert "billing is down" in row and ("scheduled" in row or "started" in row), table
    assert dev.odin("workflow", "terminate", workflow_id).returncode == 0
