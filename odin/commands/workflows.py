"""``odin workflow list|describe|show|start|signal|query|cancel|terminate|delete|result``."""

from __future__ import annotations

import asyncio
import uuid

import click

from odin.commands._common import (
    FAILED,
    CommandError,
    Target,
    ago,
    connection_options,
    console,
    json_args,
    message_json,
    pairs,
    print_json,
    run,
    styled_status,
    table,
    timestamp,
    when_text,
)

run_id_option = click.option("-r", "--run-id", default="", help="A run of the workflow (default: the latest).")


def register(workflow: click.Group) -> None:
    for command in (list_, count, describe, show, start, signal, query, cancel, terminate, delete, result):
        workflow.add_command(command)


@click.command("list")
@click.option("-q", "--query", default="", help="A list filter, e.g. \"WorkflowType = 'Greeting' AND ExecutionStatus = 'Running'\".")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="At most this many workflows.")
@connection_options
def list_(target: Target, query: str, limit: int) -> None:
    """List workflows, newest first."""

    async def call():
        client = await target.client()
        rows = [w.raw_info async for w in client.list_workflows(query, limit=limit)]
        return rows

    infos = run(target, call())
    if target.json:
        print_json([message_json(i) for i in infos])
        return
    t = table("Workflow ID", "Type", "Status", "Started", "Closed", "Task queue", "Run ID")
    for i in infos:
        t.add_row(
            i.execution.workflow_id, i.type.name, styled_status(i.status), ago(timestamp(i.start_time)),
            ago(timestamp(i.close_time)), i.task_queue, i.execution.run_id,
        )
    console().print(t)
    if not infos:
        click.echo("no workflows" + (f" match {query!r}" if query else ""), err=True)


@click.command()
@click.option("-q", "--query", default="", help="A list filter; with GROUP BY ExecutionStatus, a count per status.")
@connection_options
def count(target: Target, query: str) -> None:
    """Count workflows (the number alone on stdout, for scripts)."""

    async def call():
        client = await target.client()
        return await client.count_workflows(query)

    counted = run(target, call())
    groups = [(list(g.group_values), g.count) for g in counted.groups]
    if target.json:
        print_json({"count": counted.count, "groups": [{"values": v, "count": n} for v, n in groups]})
    elif groups:
        t = table("Group", "Count")
        for values, n in groups:
            t.add_row(", ".join(str(v) for v in values), str(n))
        console().print(t)
    else:
        click.echo(str(counted.count))


@click.command()
@click.argument("workflow_id")
@run_id_option
@connection_options
def describe(target: Target, workflow_id: str, run_id: str) -> None:
    """A workflow's state: status, times, pending activities and children."""

    async def call():
        client = await target.client()
        return (await client.get_workflow_handle(workflow_id, run_id=run_id or None).describe()).raw_description

    from temporalio.api.enums.v1 import PendingActivityState

    described = run(target, call())
    if target.json:
        print_json(message_json(described))
        return
    i, cfg = described.workflow_execution_info, described.execution_config
    out = console()
    out.print(pairs([
        ("Workflow ID", i.execution.workflow_id),
        ("Run ID", i.execution.run_id),
        ("Type", i.type.name),
        ("Status", styled_status(i.status)),
        ("Task queue", i.task_queue or cfg.task_queue.name),
        ("Started", when_text(timestamp(i.start_time))),
        ("Closed", when_text(timestamp(i.close_time))),
        ("History events", str(i.history_length)),
        ("Parent", i.parent_execution.workflow_id),
    ]))
    if described.pending_activities:
        t = table("Activity ID", "Type", "State", "Attempt", "Last failure", title="Pending activities")
        for a in described.pending_activities:
            state = PendingActivityState.Name(a.state).removeprefix("PENDING_ACTIVITY_STATE_").lower()
            t.add_row(a.activity_id, a.activity_type.name, state, str(a.attempt), a.last_failure.message)
        out.print(t)
    if described.pending_children:
        t = table("Workflow ID", "Type", title="Pending children")
        for c in described.pending_children:
            t.add_row(c.workflow_id, c.workflow_type_name)
        out.print(t)


def _event_name(event) -> str:
    from temporalio.api.enums.v1 import EventType

    return "".join(p.capitalize() for p in EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").split("_"))


def _event_details(event) -> str:
    """The event's attributes as compact JSON (payloads as plain values), for one table cell."""
    import json

    data = message_json(event)
    attributes: dict = next((v for k, v in data.items() if k.endswith("EventAttributes")), {})
    for noise in ("identity", "workflowTaskCompletedEventId", "scheduledEventId", "startedEventId", "header"):
        attributes.pop(noise, None)
    text = json.dumps(attributes, separators=(", ", ": "))
    return text if len(text) <= 120 else text[:119] + "…"


@click.command()
@click.argument("workflow_id")
@run_id_option
@connection_options
def show(target: Target, workflow_id: str, run_id: str) -> None:
    """A run's history, event by event (JSON: as `odin workflow history`)."""
    from temporalio.api.history.v1 import History

    async def call():
        client = await target.client()
        return (await client.get_workflow_handle(workflow_id, run_id=run_id or None).fetch_history()).events

    events = run(target, call())
    if target.json:
        print_json({"workflowId": workflow_id, "history": message_json(History(events=events))})
        return
    t = table("ID", "Time", "Event", "Details")
    for column in t.columns[:3]:
        column.no_wrap = True  # the details give way, not the event's name
    for e in events:
        t.add_row(str(e.event_id), ago(timestamp(e.event_time)), _event_name(e), _event_details(e))
    console().print(t)


@click.command()
@click.option("-t", "--type", "workflow_type", required=True, help="The workflow type (its registered name).")
@click.option("--task-queue", required=True, help="The task queue its workers poll.")
@click.option("-w", "--id", "workflow_id", default=None, help="The workflow id (default: a new UUID).")
@click.option("-i", "--input", "inputs", multiple=True, help="An argument as JSON; repeat for each argument.")
@click.option("--execution-timeout", default=None, help="Longest the workflow may run, e.g. 1h, 7d.")
@connection_options
def start(target: Target, workflow_type: str, task_queue: str, workflow_id: str | None, inputs: tuple[str, ...],
          execution_timeout: str | None) -> None:
    """Start a workflow; print its id and run id."""
    from odin.commands._common import parse_duration

    args = json_args(inputs)
    timeout = parse_duration(execution_timeout, "--execution-timeout") if execution_timeout else None
    workflow_id = workflow_id or str(uuid.uuid4())

    async def call():
        client = await target.client()
        handle = await client.start_workflow(
            workflow_type, args=args, id=workflow_id, task_queue=task_queue, execution_timeout=timeout
        )
        return handle.result_run_id

    started_run = run(target, call())
    if target.json:
        print_json({"workflowId": workflow_id, "runId": started_run})
    else:
        click.echo(f"started {workflow_id} (run {started_run})")


@click.command()
@click.argument("workflow_id")
@click.option("--name", required=True, help="The signal's name.")
@click.option("-i", "--input", "inputs", multiple=True, help="An argument as JSON; repeat for each argument.")
@run_id_option
@connection_options
def signal(target: Target, workflow_id: str, name: str, inputs: tuple[str, ...], run_id: str) -> None:
    """Send a signal to a workflow."""
    args = json_args(inputs)

    async def call():
        client = await target.client()
        await client.get_workflow_handle(workflow_id, run_id=run_id or None).signal(name, args=args)

    run(target, call())
    _done(target, workflow_id, "signaled")


@click.command()
@click.argument("workflow_id")
@click.option("--name", required=True, help="The query's name.")
@click.option("-i", "--input", "inputs", multiple=True, help="An argument as JSON; repeat for each argument.")
@run_id_option
@connection_options
def query(target: Target, workflow_id: str, name: str, inputs: tuple[str, ...], run_id: str) -> None:
    """Ask a workflow a query; print its answer as JSON."""
    args = json_args(inputs)

    async def call():
        client = await target.client()
        return await client.get_workflow_handle(workflow_id, run_id=run_id or None).query(name, args=args)

    print_json(run(target, call()))


@click.command()
@click.argument("workflow_id")
@run_id_option
@connection_options
def cancel(target: Target, workflow_id: str, run_id: str) -> None:
    """Ask a workflow to cancel (it may clean up first)."""

    async def call():
        client = await target.client()
        await client.get_workflow_handle(workflow_id, run_id=run_id or None).cancel()

    run(target, call())
    _done(target, workflow_id, "cancel requested")


@click.command()
@click.argument("workflow_id")
@click.option("--reason", default="", help="Recorded in the history.")
@run_id_option
@connection_options
def terminate(target: Target, workflow_id: str, reason: str, run_id: str) -> None:
    """End a workflow at once."""

    async def call():
        client = await target.client()
        await client.get_workflow_handle(workflow_id, run_id=run_id or None).terminate(reason=reason or None)

    run(target, call())
    _done(target, workflow_id, "terminated")


@click.command()
@click.argument("workflow_id")
@run_id_option
@connection_options
def delete(target: Target, workflow_id: str, run_id: str) -> None:
    """Delete a run and its history (a running one is terminated first)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

    async def call():
        client = await target.client()
        await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=target.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
        ))

    run(target, call())
    _done(target, workflow_id, "deleted")


@click.command()
@click.argument("workflow_id")
@run_id_option
@click.option("--timeout", default=None, type=float, help="Seconds to wait for the end (default: as long as it takes).")
@connection_options
def result(target: Target, workflow_id: str, run_id: str, timeout: float | None) -> None:
    """Wait for a workflow to close; print its result as JSON. A workflow that failed, was
    cancelled, terminated or timed out exits 1 with its failure on stderr."""
    from temporalio.client import WorkflowFailureError

    async def call():
        client = await target.client()
        handle = client.get_workflow_handle(workflow_id, run_id=run_id or None)
        try:
            return await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            raise CommandError(f"{workflow_id} is still running after {timeout:g}s", FAILED) from None
        except WorkflowFailureError as exc:
            raise CommandError(f"{workflow_id} {_how_it_ended(exc.cause)}", FAILED) from None

    print_json(run(target, call()))


def _how_it_ended(cause: BaseException) -> str:
    """``failed: <message>``, ``was cancelled``, ``was terminated: <reason>``, ``timed out``."""
    from temporalio import exceptions

    message = getattr(cause, "message", "") or str(cause)
    if isinstance(cause, exceptions.CancelledError):
        return "was cancelled"
    if isinstance(cause, exceptions.TerminatedError):
        return f"was terminated: {message}" if message and message != "Workflow execution terminated" else "was terminated"
    if isinstance(cause, exceptions.TimeoutError):
        return "timed out"
    return f"failed: {message}"


def _done(target: Target, workflow_id: str, what: str) -> None:
    if target.json:
        print_json({"workflowId": workflow_id, "done": what})
    else:
        click.echo(f"{workflow_id}: {what}")


