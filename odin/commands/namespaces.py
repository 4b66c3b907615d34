"""``odin namespace list|describe|create|update``."""

from __future__ import annotations

import click

from odin.commands._common import (
    USAGE,
    CommandError,
    Target,
    connection_options,
    console,
    duration_text,
    message_json,
    pairs,
    parse_duration,
    print_json,
    run,
    table,
)


@click.group()
def namespace() -> None:
    """Namespace commands: list, describe, create, update."""


def _state(value: int) -> str:
    from temporalio.api.enums.v1 import NamespaceState

    return NamespaceState.Name(NamespaceState.ValueType(value)).removeprefix("NAMESPACE_STATE_").lower()


def _retention(config) -> str:
    return duration_text(config.workflow_execution_retention_ttl.ToTimedelta().total_seconds())


def _data(values: tuple[str, ...]) -> dict[str, str]:
    data = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--data {item!r} is not KEY=VALUE: write e.g. --data odin.rps=50", USAGE)
        data[key] = value
    return data


@namespace.command("list")
@connection_options
def list_(target: Target) -> None:
    """Every namespace."""
    from temporalio.api.workflowservice.v1 import ListNamespacesRequest

    async def call():
        client = await target.client()
        found, token = [], b""
        while True:
            page = await client.workflow_service.list_namespaces(ListNamespacesRequest(page_size=100, next_page_token=token))
            found.extend(page.namespaces)
            token = page.next_page_token
            if not token:
                return found

    namespaces = run(target, call())
    if target.json:
        print_json([message_json(n) for n in namespaces])
        return
    t = table("Name", "State", "Retention", "Description", "Owner")
    for n in namespaces:
        t.add_row(n.namespace_info.name, _state(n.namespace_info.state), _retention(n.config),
                  n.namespace_info.description, n.namespace_info.owner_email)
    console().print(t)


@namespace.command()
@click.argument("name", required=False)
@connection_options
def describe(target: Target, name: str | None) -> None:
    """A namespace's settings (default: --namespace)."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    name = name or target.namespace
    target.namespace = name

    async def call():
        client = await target.client()
        return await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))

    described = run(target, call())
    if target.json:
        print_json(message_json(described))
        return
    info, config = described.namespace_info, described.config
    console().print(pairs([
        ("Name", info.name),
        ("ID", info.id),
        ("State", _state(info.state)),
        ("Description", info.description),
        ("Owner", info.owner_email),
        ("Retention", _retention(config)),
        ("Archival URI", config.history_archival_uri),
        *((f"Data {k}", v) for k, v in sorted(info.data.items())),
    ]))


_retention_option = click.option("--retention", default=None, help="How long closed runs are kept, e.g. 7d, 72h (default 3d).")
_description_option = click.option("--description", default=None, help="What the namespace is for.")
_owner_option = click.option("--owner-email", default=None, help="Who to ask about it.")
_data_option = click.option("--data", "data", multiple=True, help="KEY=VALUE setting (e.g. odin.rps=50); repeat.")


@namespace.command()
@click.argument("name")
@_retention_option
@_description_option
@_owner_option
@_data_option
@connection_options
def create(target: Target, name: str, retention: str | None, description: str | None, owner_email: str | None,
           data: tuple[str, ...]) -> None:
    """Register a namespace."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    keep = Duration()
    keep.FromTimedelta(parse_duration(retention or "3d", "--retention"))
    req = RegisterNamespaceRequest(
        namespace=name, workflow_execution_retention_period=keep, description=description or "",
        owner_email=owner_email or "", data=_data(data),
    )
    target.namespace = name

    async def call():
        client = await target.client()
        await client.workflow_service.register_namespace(req)

    run(target, call())
    if target.json:
        print_json({"namespace": name, "done": "created"})
    else:
        click.echo(f"namespace {name} created (retention {duration_text(keep.ToTimedelta().total_seconds())})")


@namespace.command()
@click.argument("name")
@_retention_option
@_description_option
@_owner_option
@_data_option
@connection_options
def update(target: Target, name: str, retention: str | None, description: str | None, owner_email: str | None,
           data: tuple[str, ...]) -> None:
    """Change a namespace's retention, description, owner or data (only what is given)."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
    from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest

    if retention is None and description is None and owner_email is None and not data:
        raise CommandError("nothing to update: give --retention, --description, --owner-email or --data", USAGE)
    req = UpdateNamespaceRequest(namespace=name)
    if description is not None or owner_email is not None or data:
        req.update_info.CopyFrom(UpdateNamespaceInfo(
            description=description or "", owner_email=owner_email or "", data=_data(data)
        ))
    if retention is not None:
        keep = Duration()
        keep.FromTimedelta(parse_duration(retention, "--retention"))
        req.config.CopyFrom(NamespaceConfig(workflow_execution_retention_ttl=keep))
    target.namespace = name

    async def call():
        client = await target.client()
        return await client.workflow_service.update_namespace(req)

    updated = run(target, call())
    if target.json:
        print_json(message_json(updated))
    else:
        click.echo(f"namespace {name} updated")
