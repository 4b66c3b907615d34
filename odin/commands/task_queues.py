"""``odin task-queue describe`` and ``odin status``: who polls which queue, and what waits there."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import click

from odin.commands._common import (
    Target,
    ago,
    connection_options,
    console,
    message_json,
    pairs,
    print_json,
    run,
    table,
    timestamp,
)

KINDS = ("workflow", "activity")


@dataclass
class QueueState:
    """One task queue: its pollers and backlog, per kind of task."""

    name: str
    pollers: dict[str, list] = field(default_factory=dict)  # kind -> [PollerInfo]
    backlog: dict[str, int] = field(default_factory=dict)  # kind -> tasks waiting

    def as_json(self) -> dict:
        return {
            "name": self.name,
            **{kind: {"pollers": [message_json(p) for p in self.pollers[kind]], "backlog": self.backlog[kind]} for kind in KINDS},
        }


async def describe_queue(client, namespace: str, name: str) -> QueueState:
    """DescribeTaskQueue for both kinds of task (the legacy form, which Temporal servers answer too)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    state = QueueState(name)
    for kind, queue_type in zip(KINDS, (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)):
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=namespace, task_queue=TaskQueue(name=name), task_queue_type=queue_type, include_task_queue_status=True,
        ))
        state.pollers[kind] = list(described.pollers)
        state.backlog[kind] = described.task_queue_status.backlog_count_hint
    return state


def _queues_table(queues: list[QueueState]):
    t = table("Task queue", "Kind", "Backlog", "Pollers", "Last poll", "Identities")
    for q in queues:
        for kind in KINDS:
            pollers = q.pollers[kind]
            seen = [t for t in (timestamp(p.last_access_time) for p in pollers) if t is not None]
            last = max(seen, default=None)
            backlog = q.backlog[kind]
            t.add_row(
                q.name, kind, f"[yellow]{backlog}[/]" if backlog and not pollers else str(backlog),
                f"[green]{len(pollers)}[/]" if pollers else "[red]0[/]", ago(last), ", ".join(p.identity for p in pollers),
            )
    return t


def register(main: click.Group) -> None:
    main.add_command(task_queue)
    main.add_command(status)


@click.group("task-queue")
def task_queue() -> None:
    """Task queue commands: describe."""


@task_queue.command()
@click.argument("name")
@connection_options
def describe(target: Target, name: str) -> None:
    """The workers polling a task queue and the tasks waiting there, for workflow and activity tasks."""

    async def call():
        return await describe_queue(await target.client(), target.namespace, name)

    queue = run(target, call())
    if target.json:
        print_json(queue.as_json())
    else:
        console().print(_queues_table([queue]))


@click.command()
@click.option("-q", "--task-queue", "task_queues", multiple=True,
              help="A task queue to report on; repeat. Those of running workflows are added.")
@connection_options
def status(target: Target, task_queues: tuple[str, ...]) -> None:
    """Server health, workers polling, backlog.

    The server's version and answer time, the namespaces, and for each task queue named or used by a running workflow (up to 100 runs)
    its pollers and backlog. Exits 4 when the server cannot be reached."""
    from temporalio.api.workflowservice.v1 import GetClusterInfoRequest, ListNamespacesRequest

    async def call():
        began = time.monotonic()
        client = await target.client()
        cluster = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
        answer_ms = (time.monotonic() - began) * 1000
        namespaces = await client.workflow_service.list_namespaces(ListNamespacesRequest(page_size=1000))
        names = list(dict.fromkeys(task_queues))
        running = 0
        async for w in client.list_workflows("ExecutionStatus = 'Running'", limit=100):
            running += 1
            if w.task_queue and w.task_queue not in names:
                names.append(w.task_queue)
        queues = [await describe_queue(client, target.namespace, name) for name in names]
        return cluster, answer_ms, namespaces.namespaces, running, queues

    cluster, answer_ms, namespaces, running, queues = run(target, call())
    if target.json:
        print_json({
            "address": target.address,
            "server": {"name": cluster.cluster_name, "version": cluster.server_version, "store": cluster.persistence_store, "answerMs": round(answer_ms, 1)},
            "namespaces": [n.namespace_info.name for n in namespaces],
            "namespace": target.namespace,
            "running": running,
            "taskQueues": [q.as_json() for q in queues],
        })
        return
    out = console()
    out.print(pairs([
        ("Server", f"[green]up[/] at {target.address} ({cluster.cluster_name} {cluster.server_version} on {cluster.persistence_store}, answered in {answer_ms:.0f} ms)"),
        ("Namespaces", ", ".join(n.namespace_info.name for n in namespaces)),
        ("Running", f"{running}{'+' if running == 100 else ''} workflows in {target.namespace}"),
    ]))
    if queues:
        out.print(_queues_table(queues))
    else:
        out.print("No task queue to report: name one with -q, or start a workflow.")
