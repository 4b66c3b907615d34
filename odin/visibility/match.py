"""A list filter evaluated on one entity's values (pure): what ListSchedules and the standalone
activity lists use, where the filtered rows are few enough to be read and checked in the process."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from odin.visibility import query as visibility_query
from odin.visibility import search_attributes


def _comparable(value: Any, like: Any) -> Any:
    if isinstance(like, bool):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if isinstance(like, datetime):
        return search_attributes.parse_datetime(str(value))
    if isinstance(like, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _compare(op: str, a: Any, b: Any) -> bool:
    try:
        b = _comparable(b, a)
        return bool({"=": a == b, "!=": a != b, "<>": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])
    except (TypeError, ValueError, KeyError):
        return False


def matches(node: visibility_query.Node, values: dict[str, list[Any]]) -> bool:
    """Whether an entity with these values (attribute name -> its values) passes the filter."""
    q = visibility_query
    if isinstance(node, q.And):
        return all(matches(item, values) for item in node.items)
    if isinstance(node, q.Or):
        return any(matches(item, values) for item in node.items)
    have = values.get(node.name, [])
    if isinstance(node, q.IsNull):
        return bool(have) == node.negated
    if isinstance(node, q.Comparison):
        if node.op in ("!=", "<>"):
            return not any(_compare("=", v, node.value) for v in have)
        return any(_compare(node.op, v, node.value) for v in have)
    if isinstance(node, q.In):
        found = any(_compare("=", v, x) for v in have for x in node.values)
        return found != node.negated
    if isinstance(node, q.Between):
        found = any(_compare(">=", v, node.low) and _compare("<=", v, node.high) for v in have)
        return found != node.negated
    if isinstance(node, q.StartsWith):
        found = any(isinstance(v, str) and v.startswith(node.prefix) for v in have)
        return found != node.negated
    return False


def attribute_names(node: visibility_query.Node | None) -> list[str]:
    """The search attribute names a filter's comparisons name, in order."""
    if node is None:
        return []
    if isinstance(node, visibility_query.And | visibility_query.Or):
        return [n for item in node.items for n in attribute_names(item)]
    return [node.name]
