"""Compile a parsed list filter into SQLAlchemy Core expressions over the visibility tables.

Every value becomes a bound parameter; names are resolved against the system attributes (columns
of ``visibility_records``) and the namespace's registry (rows of ``visibility_search_attributes``,
matched with EXISTS subqueries). Type errors are ``QueryError`` with the offending name.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from temporalio.api.enums.v1 import IndexedValueType as T
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status

from odin.persistence import tables
from odin.visibility import query as q
from odin.visibility.search_attributes import (
    PREDEFINED_ATTRIBUTES,
    SYSTEM_ATTRIBUTES,
    TYPE_NAMES,
    InvalidSearchAttribute,
    parse_datetime,
)

vr = tables.visibility_records
vsa = tables.visibility_search_attributes

_COLUMNS = {
    "WorkflowId": vr.c.workflow_id,
    "RunId": vr.c.run_id,
    "WorkflowType": vr.c.workflow_type,
    "StartTime": vr.c.start_time,
    "ExecutionTime": vr.c.execution_time,
    "CloseTime": vr.c.close_time,
    "ExecutionStatus": vr.c.status,
    "TaskQueue": vr.c.task_queue,
    "HistoryLength": vr.c.history_length,
    "HistorySizeBytes": vr.c.history_size_bytes,
    "ParentWorkflowId": vr.c.parent_workflow_id,
    "ParentRunId": vr.c.parent_run_id,
}

STATUS_NAMES = {
    "Running": Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
    "Completed": Status.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    "Failed": Status.WORKFLOW_EXECUTION_STATUS_FAILED,
    "Canceled": Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
    "Terminated": Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    "ContinuedAsNew": Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
    "TimedOut": Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}
STATUS_BY_VALUE = {v: k for k, v in STATUS_NAMES.items()}

_VALUE_COLUMN = {
    T.INDEXED_VALUE_TYPE_TEXT: vsa.c.value_text,
    T.INDEXED_VALUE_TYPE_KEYWORD: vsa.c.value_text,
    T.INDEXED_VALUE_TYPE_KEYWORD_LIST: vsa.c.value_text,
    T.INDEXED_VALUE_TYPE_INT: vsa.c.value_int,
    T.INDEXED_VALUE_TYPE_BOOL: vsa.c.value_int,
    T.INDEXED_VALUE_TYPE_DOUBLE: vsa.c.value_double,
    T.INDEXED_VALUE_TYPE_DATETIME: vsa.c.value_time,
}
_RANGE_TYPES = {T.INDEXED_VALUE_TYPE_INT, T.INDEXED_VALUE_TYPE_DOUBLE, T.INDEXED_VALUE_TYPE_DATETIME, T.INDEXED_VALUE_TYPE_KEYWORD}
_OPS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    ">": lambda c, v: c > v,
    "<=": lambda c, v: c <= v,
    ">=": lambda c, v: c >= v,
}


class _ByDialect(sa.sql.expression.ColumnElement):
    """One condition written two ways: ``portable`` for PostgreSQL and SQLite, ``mysql`` for MySQL and
    MariaDB (whose text columns are UTF-8 in binary columns, tables.Key)."""

    inherit_cache = False

    def __init__(self, portable, mysql_form):
        self.portable = portable
        self.mysql_form = mysql_form


@compiles(_ByDialect)
def _portable(element: _ByDialect, compiler, **kw) -> str:
    return "(" + compiler.process(element.portable, **kw) + ")"


@compiles(_ByDialect, *tables.MYSQL_DIALECTS)
def _mysql(element: _ByDialect, compiler, **kw) -> str:
    return "(" + compiler.process(element.mysql_form, **kw) + ")"


class Compiler:
    def __init__(self, custom_types: dict[str, int], text: str = ""):
        self.types = {**SYSTEM_ATTRIBUTES, **PREDEFINED_ATTRIBUTES, **custom_types}
        self.text = text

    def _pos(self, name: str) -> int:
        """Where an attribute is named in the query text (errors point at it)."""
        at = self.text.find(name)
        return max(at - 1, 0) if at > 0 and self.text[at - 1] == "`" else max(at, 0)

    def type_of(self, name: str) -> int:
        t = self.types.get(name)
        if t is None:
            raise q.QueryError(f"unknown search attribute {name!r}", self._pos(name))
        return t

    def where(self, node: q.Node | None):
        return sa.true() if node is None else self._node(node)

    def _node(self, node: q.Node):
        if isinstance(node, q.And):
            return sa.and_(*(self._node(n) for n in node.items))
        if isinstance(node, q.Or):
            return sa.or_(*(self._node(n) for n in node.items))
        name = node.name
        t = self.type_of(name)
        if name in _COLUMNS:
            return self._system(node, _COLUMNS[name], t)
        return self._custom(node, t)

    # -- values ------------------------------------------------------------------------------

    def _value(self, name: str, t: int, v: q.Value):
        label = TYPE_NAMES[t]
        if name == "ExecutionStatus":
            if isinstance(v, str) and v in STATUS_NAMES:
                return STATUS_NAMES[v]
            raise q.QueryError(f"invalid ExecutionStatus {v!r}; expected one of {', '.join(STATUS_NAMES)}", self._pos(name))
        if t in (T.INDEXED_VALUE_TYPE_KEYWORD, T.INDEXED_VALUE_TYPE_TEXT, T.INDEXED_VALUE_TYPE_KEYWORD_LIST):
            if not isinstance(v, str):
                raise q.QueryError(f"{name} is of type {label}: expected a string, got {v!r}", self._pos(name))
            return v
        if t == T.INDEXED_VALUE_TYPE_INT:
            if isinstance(v, bool) or not isinstance(v, int):
                raise q.QueryError(f"{name} is of type Int: expected an integer, got {v!r}", self._pos(name))
            return v
        if t == T.INDEXED_VALUE_TYPE_DOUBLE:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise q.QueryError(f"{name} is of type Double: expected a number, got {v!r}", self._pos(name))
            return float(v)
        if t == T.INDEXED_VALUE_TYPE_BOOL:
            if not isinstance(v, bool):
                raise q.QueryError(f"{name} is of type Bool: expected true or false, got {v!r}", self._pos(name))
            return int(v)
        if t == T.INDEXED_VALUE_TYPE_DATETIME:
            if not isinstance(v, str):
                raise q.QueryError(f"{name} is of type Datetime: expected an RFC 3339 string, got {v!r}", self._pos(name))
            try:
                return parse_datetime(v)
            except InvalidSearchAttribute as exc:
                raise q.QueryError(f"{name}: {exc}", self._pos(name)) from None
        raise q.QueryError(f"{name}: unsupported type", self._pos(name))

    def _check_op(self, node: q.Node, t: int) -> None:
        name, label = node.name, TYPE_NAMES[t]
        if isinstance(node, q.Comparison) and node.op not in ("=", "!=") and t not in _RANGE_TYPES:
            raise q.QueryError(f"operator {node.op} is not supported for {name} of type {label}", self._pos(name))
        if isinstance(node, q.Between) and t not in _RANGE_TYPES:
            raise q.QueryError(f"BETWEEN is not supported for {name} of type {label}", self._pos(name))
        if isinstance(node, q.StartsWith) and t != T.INDEXED_VALUE_TYPE_KEYWORD:
            raise q.QueryError(f"STARTS_WITH is only supported for Keyword attributes, not {name} of type {label}", self._pos(name))
        if isinstance(node, q.In) and t in (T.INDEXED_VALUE_TYPE_TEXT,):
            raise q.QueryError(f"IN is not supported for {name} of type {label}", self._pos(name))
        if name == "ExecutionStatus" and isinstance(node, (q.Between, q.StartsWith)) or (
            name == "ExecutionStatus" and isinstance(node, q.Comparison) and node.op not in ("=", "!=")
        ):
            raise q.QueryError("ExecutionStatus supports =, !=, IN and NOT IN only", self._pos(name))

    def _predicate(self, node: q.Node, column, t: int):
        """The condition on one value column (a system column or a typed value column)."""
        self._check_op(node, t)
        name = node.name
        if isinstance(node, q.Comparison):
            value = self._value(name, t, node.value)
            if t == T.INDEXED_VALUE_TYPE_TEXT:
                pattern = value.lower()
                # MySQL's LOWER() leaves binary strings alone: read the bytes as UTF-8 text first.
                as_text = sa.cast(column, mysql.CHAR(charset="utf8mb4")).collate("utf8mb4_bin")
                match = _ByDialect(
                    sa.func.lower(column).contains(pattern, autoescape=True),
                    sa.func.lower(as_text).contains(pattern, autoescape=True),
                )
                return match if node.op == "=" else sa.not_(match)
            return _OPS[node.op](column, value)
        if isinstance(node, q.In):
            values = [self._value(name, t, v) for v in node.values]
            return column.notin_(values) if node.negated else column.in_(values)
        if isinstance(node, q.Between):
            cond = column.between(self._value(name, t, node.low), self._value(name, t, node.high))
            return sa.not_(cond) if node.negated else cond
        if isinstance(node, q.StartsWith):
            prefix = self._value(name, t, node.prefix)
            # LIKE can use an index but ignores case on SQLite; the substring test makes it exact.
            # MySQL compares the binary columns' bytes, so LIKE alone is exact there.
            like = column.startswith(prefix, autoescape=True)
            cond = _ByDialect(sa.and_(like, sa.func.substr(column, 1, len(prefix)) == prefix), like)
            return sa.not_(cond) if node.negated else cond
        raise AssertionError(node)

    def _system(self, node: q.Node, column, t: int):
        if isinstance(node, q.IsNull):
            return column.isnot(None) if node.negated else column.is_(None)
        return self._predicate(node, column, t)

    def _custom(self, node: q.Node, t: int):
        def exists(*conds):
            return sa.exists().where(
                vsa.c.namespace_id == vr.c.namespace_id, vsa.c.run_id == vr.c.run_id, vsa.c.name == node.name, *conds
            )

        if isinstance(node, q.IsNull):
            return exists() if node.negated else sa.not_(exists())
        column = _VALUE_COLUMN[t]
        if t == T.INDEXED_VALUE_TYPE_KEYWORD_LIST:
            # Membership: "=" / IN mean some element matches; "!=" / NOT IN mean none does.
            if isinstance(node, q.Comparison) and node.op == "!=":
                return sa.not_(exists(self._predicate(q.Comparison(node.name, "=", node.value), column, t)))
            if isinstance(node, q.In) and node.negated:
                return sa.not_(exists(self._predicate(q.In(node.name, node.values), column, t)))
        if isinstance(node, (q.Between, q.StartsWith)) and node.negated:
            positive = type(node)(*[getattr(node, f) for f in node.__dataclass_fields__ if f != "negated"])
            return sa.and_(exists(), sa.not_(exists(self._predicate(positive, column, t))))
        return exists(self._predicate(node, column, t))

    # -- ordering --------------------------------------------------------------------------

    def order_by(self, order: tuple[tuple[str, bool], ...]) -> list:
        if not order:
            # Open runs first, then the most recently closed / started.
            return [
                sa.case((vr.c.close_time.is_(None), 0), else_=1),
                vr.c.close_time.desc(),
                vr.c.start_time.desc(),
                vr.c.run_id,
            ]
        clauses = []
        for name, desc in order:
            if name not in _COLUMNS:
                self.type_of(name)
                raise q.QueryError(f"ORDER BY is supported on system attributes only, not {name}", self._pos(name))
            column = _COLUMNS[name]
            clauses.append(column.desc() if desc else column.asc())
        clauses.append(vr.c.run_id)
        return clauses


def compile_query(text: str, custom_types: dict[str, int]) -> tuple[q.Query, object, list]:
    """Parse and compile; returns the query, the WHERE clause and the ORDER BY clauses."""
    query = q.parse(text)
    compiler = Compiler(custom_types, text)
    where = compiler.where(query.where)
    order = compiler.order_by(query.order_by)
    for name in query.group_by:
        if name != "ExecutionStatus":
            raise q.QueryError(f"GROUP BY is supported on ExecutionStatus only, not {name}", max(text.rfind(name), 0))
    return query, where, order
