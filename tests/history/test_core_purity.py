"""The pure core does no I/O: its modules import no async, database, network or concurrency
library, and read neither the clock nor a random source (time comes in as ``Transition.now``,
new run ids are derived). docs/architecture.md#pure-core states the rule; this test keeps it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "odin"

CORE = [
    "history/activities.py", "history/activity_ops.py", "history/chains.py", "history/children.py", "history/commands.py", "history/cron.py",
    "history/events.py", "history/machine.py", "history/retry.py", "history/schedule_spec.py", "history/schedule_text.py", "history/schedules.py", "history/start.py", "history/state.py", "history/tasks.py",
    "history/tokens.py", "history/updates.py", "history/validation.py", "visibility/query.py",
    "visibility/search_attributes.py", "uuids.py",
    "history/reset.py", "history/standalone.py", "visibility/match.py", "history/deployments.py",
]
FORBIDDEN_MODULES = {
    "asyncio", "sqlalchemy", "redis", "grpc", "psycopg", "celery", "kombu", "socket", "threading",
    "concurrent", "subprocess", "random", "secrets", "time", "requests", "httpx", "flask",
}
# Calls that read the clock or a random source.
FORBIDDEN_CALLS = {"uuid1", "uuid4", "now", "utcnow", "today", "time", "monotonic", "random", "urandom", "token_hex"}
# Odin modules the core may import: itself, and plain error types.
ALLOWED_ODIN = {f"odin.{p[:-3].replace('/', '.')}" for p in CORE} | {"odin.errors", "odin.history", "odin.visibility"}


@pytest.mark.parametrize("path", CORE)
def test_a_core_module_imports_no_io_and_reads_no_clock(path):
    tree = ast.parse((ROOT / path).read_text(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.module in ("odin.history", "odin.visibility"):
                names += [f"{node.module}.{a.name}" for a in node.names]
        else:
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                assert name not in FORBIDDEN_CALLS, f"{path}:{node.lineno} calls {name}()"
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path}:{node.lineno} imports {name}"
            if name.startswith("odin"):
                assert name in ALLOWED_ODIN, f"{path}:{node.lineno} imports {name}, outside the pure core"


def test_the_core_list_covers_the_modules_that_claim_to_be_pure():
    claims = {
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "(pure)" in (ast.get_docstring(ast.parse(p.read_text())) or "")
    }
    assert claims <= set(CORE), claims - set(CORE)
