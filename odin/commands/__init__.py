"""The ``odin`` client commands: workflows, namespaces, task queues and status, over gRPC through
the temporalio client (``odin.cli`` registers them on its group)."""

from __future__ import annotations

import click

from odin.commands import namespaces, task_queues, workflows
from odin.commands._common import CommandError, Target, explain, temporal_runtime_used, uses_temporal_runtime

__all__ = ["CommandError", "Target", "explain", "register", "temporal_runtime_used", "uses_temporal_runtime"]


def register(main: click.Group, workflow: click.Group) -> None:
    """Add the client commands to ``odin`` and to its ``workflow`` group."""
    workflows.register(workflow)
    main.add_command(namespaces.namespace)
    task_queues.register(main)
