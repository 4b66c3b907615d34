"""The frontend validates and delegates; only the history layer changes runs (docs/architecture.md#operations)."""

from __future__ import annotations

import ast
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[1] / "odin" / "frontend"

# Calls that change runs or read their history, and belong to odin/history/ only.
HISTORY_ONLY = {("engine", "update"), ("store", "commit"), ("store", "read_events")}


def _history_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if (name, node.func.attr) in HISTORY_ONLY:
                found.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}(...)")
    return found


def test_frontend_changes_runs_only_through_history_operations():
    modules = sorted(FRONTEND.glob("*.py"))
    assert len(modules) >= 5, "the frontend package moved: update this test"
    assert [call for path in modules for call in _history_calls(path)] == []


def test_the_check_sees_a_direct_update(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("async def f(self):\n    await self.engine.update(1, 2, 3, lambda t: t)\n")
    assert _history_calls(module) == ["m.py:2 engine.update(...)"]
