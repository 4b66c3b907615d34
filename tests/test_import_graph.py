"""The packages of odin/ import each other without cycles, and so do the modules, also within a
package (module-level imports; imports under ``if TYPE_CHECKING:`` and inside functions do not count). The layers, doors on top:
api -> runtime -> frontend -> history/matching/beat/visibility/persistence -> errors/clock, with
security and config beside them; a cycle means a layer reaches up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ODIN = ROOT / "odin"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def module_graph() -> dict[str, set[str]]:
    """Each odin module -> the odin modules it imports at module level. ``from pkg import name``
    counts as importing ``pkg`` (its __init__) and, if ``name`` is a submodule, that too."""
    modules = {module_name(p): p for p in ODIN.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph.setdefault(name, set()).update(t for t in targets if t in modules and t != name)
    return graph


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in module_graph().items():
        for target in targets:
            if package_of(target) != package_of(name):
                graph.setdefault(package_of(name), set()).add(package_of(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_graph_has_no_cycles():
    graph = package_graph()
    assert {"odin.api", "odin.frontend", "odin.history", "odin.security"} <= set(graph)  # the graph was read
    assert cycles(graph) == []


def test_the_module_graph_has_no_cycles():
    # Inside a package too: e.g. odin.api.rest's __init__ imports its route and UI modules, so they
    # import their sibling modules by full name, never through ``from odin.api.rest import ...``.
    graph = module_graph()
    assert {"odin.api.rest.invoke", "odin.api.rest.session"} <= graph["odin.api.rest"] | graph["odin.api.rest.invoke"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
