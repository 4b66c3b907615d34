"""What the client commands share: where to connect, how to print, how errors end a command.

Every command talks to the server through the temporalio client (gRPC), as an SDK user would.
Errors end the command with one line on stderr and an exit code a script can test:

    0  done             3  not found (workflow, namespace)
    1  refused/failed   4  the server cannot be reached
    2  bad usage/input  5  already exists (workflow id, namespace)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from temporalio.client import Client

OK, FAILED, USAGE, NOT_FOUND, UNREACHABLE, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5


class CommandError(click.ClickException):
    """A command's end: one line on stderr, and an exit code from the table above."""

    def __init__(self, message: str, exit_code: int = FAILED):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a class default


# temporalio's core keeps native threads; ``odin.cli.run`` ends a process that started it with
# ``os._exit`` once output is flushed (see there). Commands that connect say so here.
_runtime_used = False


def uses_temporal_runtime() -> None:
    global _runtime_used
    _runtime_used = True


def temporal_runtime_used() -> bool:
    return _runtime_used


@dataclass
class Target:
    """Where a command connects and how it prints."""

    address: str
    namespace: str
    api_key: str | None
    tls: bool
    output: str

    async def client(self) -> Client:
        from temporalio.client import Client

        return await Client.connect(self.address, namespace=self.namespace, api_key=self.api_key, tls=self.tls)

    @property
    def json(self) -> bool:
        return self.output == "json"


def _tls_default() -> bool:
    return os.environ.get("ODIN_TLS", "0").lower() in ("1", "true", "on")


def connection_options(command):
    """--address, --namespace, --api-key, --tls, --output; the command receives ``target``."""

    @click.option("--address", envvar="ODIN_ADDRESS", default="127.0.0.1:7233", show_default=True,
                  help="The server's gRPC address (ODIN_ADDRESS).")
    @click.option("-n", "--namespace", envvar="ODIN_NAMESPACE", default="default", show_default=True,
                  help="The namespace (ODIN_NAMESPACE).")
    @click.option("--api-key", envvar="ODIN_API_KEY", default=None, help="Bearer token, when the server wants one (ODIN_API_KEY).")
    @click.option("--tls/--no-tls", default=None, help="TLS to the server (default: ODIN_TLS, else off).")
    @click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
                  help="Tables for people, JSON for scripts.")
    @functools.wraps(command)
    def wrapper(address: str, namespace: str, api_key: str | None, tls: bool | None, output: str, **kwargs):
        target = Target(address, namespace, api_key, _tls_default() if tls is None else tls, output)
        return command(target=target, **kwargs)

    return wrapper


def run(target: Target, coroutine) -> Any:
    """Run a command's coroutine; every failure becomes a ``CommandError``."""
    uses_temporal_runtime()
    try:
        return asyncio.run(coroutine)
    except CommandError:
        raise
    except Exception as exc:
        raise explain(exc, target) from None


def _namespace_missing(exc) -> bool:
    return any(d.type_url.endswith("NamespaceNotFoundFailure") for d in exc.grpc_status.details)


def unreachable(address: str, text: str) -> CommandError:
    """No server at ``address``: say so plainly (the transport's own text when it is not a refusal)."""
    why = "nothing listens there (connection refused)" if "Connection refused" in text else text
    return CommandError(f"cannot reach the server at {address} (--address / ODIN_ADDRESS): {why}", UNREACHABLE)


def namespace_missing(namespace: str, address: str) -> CommandError:
    return CommandError(
        f"the namespace {namespace!r} does not exist on the server at {address}: "
        f"create it (odin namespace create {namespace}) or pass --namespace / ODIN_NAMESPACE",
        NOT_FOUND,
    )


def explain(exc: Exception, target: Target) -> CommandError:
    """The one line (and exit code) for an exception out of the temporalio client."""
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, RuntimeError) and text.startswith("Failed client connect"):
        return unreachable(target.address, text)
    if isinstance(exc, WorkflowAlreadyStartedError):
        return CommandError(
            f"a workflow with id {exc.workflow_id!r} is already running: wait for it, or pick another --id", ALREADY_EXISTS
        )
    if not isinstance(exc, RPCError):
        return CommandError(text, FAILED)
    message = exc.message
    if exc.status == RPCStatusCode.NOT_FOUND and _namespace_missing(exc):
        return namespace_missing(target.namespace, target.address)
    if exc.status == RPCStatusCode.NOT_FOUND:
        return CommandError(message, NOT_FOUND)
    if exc.status == RPCStatusCode.ALREADY_EXISTS:
        return CommandError(message, ALREADY_EXISTS)
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return CommandError(message, USAGE)
    if exc.status == RPCStatusCode.UNAUTHENTICATED:
        return CommandError(f"{message}: pass a token with --api-key or ODIN_API_KEY", FAILED)
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return unreachable(target.address, message)
    return CommandError(f"the server at {target.address} refused: {message}", FAILED)


# -- values in and out ------------------------------------------------------------------------


def json_args(values: tuple[str, ...], flag: str = "--input") -> list:
    """Each ``--input`` is one JSON value (an argument of the workflow, signal or query)."""
    args = []
    for i, text in enumerate(values, 1):
        try:
            args.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{flag} #{i} is not JSON ({exc.msg}): quote strings as JSON, e.g. {flag} '\"Ann\"'", USAGE
            ) from None
    return args


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, flag: str) -> timedelta:
    """``7d``, ``72h``, ``1d12h``, ``90m``, ``30s``."""
    compact = text.strip().lower().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(compact)))
    raise CommandError(f"{flag} {text!r} is not a duration: write e.g. 7d, 72h, 1d12h, 30m or 45s", USAGE)


def duration_text(seconds: float) -> str:
    """3 days -> ``3d``; 90 minutes -> ``1h30m``."""
    seconds = int(round(seconds))
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """A time relative to now: ``12s ago``, ``3h ago``, ``in 5m``; '' for none."""
    if when is None:
        return ""
    now = now or datetime.now(UTC)
    delta = (now - when).total_seconds()
    text = _coarse(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def _coarse(seconds: float) -> str:
    """The leading unit only, for lists: ``2d``, ``5h``, ``12m``, ``40s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def when_text(when: datetime | None) -> str:
    """Absolute and relative: ``2026-12-07 17:40:01 UTC (3m ago)``."""
    if when is None:
        return ""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago(when)})"


def timestamp(ts) -> datetime | None:
    """A protobuf Timestamp, or None when unset."""
    return ts.ToDatetime(tzinfo=UTC) if ts is not None and (ts.seconds or ts.nanos) else None


# -- printing --------------------------------------------------------------------------------


def console():
    """rich's console on stdout: colour on a terminal (NO_COLOR honoured), plain text when piped,
    and wide enough off a terminal that table cells are not wrapped."""
    from rich.console import Console

    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console(highlight=False)
    return Console(highlight=False, width=200, no_color=True)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def message_json(message: Message) -> dict:
    """A response message as the REST API writes it (proto3 JSON, payloads as plain JSON)."""
    from odin.api.rest.codec import to_json

    return to_json(message)


STATUS_STYLE = {
    "Running": "cyan",
    "Completed": "green",
    "Failed": "red",
    "Canceled": "yellow",
    "Terminated": "red",
    "ContinuedAsNew": "blue",
    "TimedOut": "red",
}


def status_text(status: int) -> str:
    """``WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW`` -> ``ContinuedAsNew``."""
    from temporalio.api.enums.v1 import WorkflowExecutionStatus

    name = WorkflowExecutionStatus.Name(WorkflowExecutionStatus.ValueType(status)).removeprefix("WORKFLOW_EXECUTION_STATUS_")
    return "".join(part.capitalize() for part in name.split("_")) if status else "Unknown"


def styled_status(status: int):
    from rich.text import Text

    text = status_text(status)
    return Text(text, style=STATUS_STYLE.get(text, ""))


def table(*columns: str, title: str | None = None):
    from rich import box
    from rich.table import Table

    t = Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left", header_style="bold", pad_edge=False)
    return t


def pairs(rows: list[tuple[str, Any]], title: str | None = None):
    """A two-column table of names and values (``describe``)."""
    from rich.table import Table

    t = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    for name, value in rows:
        if value not in (None, ""):
            t.add_row(name, value if not isinstance(value, (dict, list)) else json.dumps(value))
    return t
