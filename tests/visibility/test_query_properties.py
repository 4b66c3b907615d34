"""Property tests of the list-filter parser and its SQL compilation (run on SQLite, PostgreSQL and MariaDB)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import IndexedValueType as T

from odin.persistence import tables
from odin.visibility import query as q
from odin.visibility.sql import compile_query
from tests.support.services import throwaway_mysql_database, throwaway_postgres_database

NAMES = st.sampled_from(["WorkflowId", "WorkflowType", "CustomKeyword", "my.attr", "Weird Name", "and", "x_1", "`tick"]).filter(
    lambda n: "`" not in n
)
STRINGS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
) | st.sampled_from(["'; DROP TABLE visibility_records; --", "a'b", 'a"b', "back\\slash", "%_", "''", "\\'", "ß", "É", "a "])
NUMBERS = st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
    lambda f: math.isfinite(f)
)
VALUES = STRINGS | NUMBERS | st.booleans()


def leaves():
    return st.one_of(
        st.builds(q.Comparison, NAMES, st.sampled_from(["=", "!=", "<", ">", "<=", ">="]), VALUES),
        st.builds(q.In, NAMES, st.lists(VALUES, min_size=1, max_size=4).map(tuple), st.booleans()),
        st.builds(q.Between, NAMES, VALUES, VALUES, st.booleans()),
        st.builds(q.StartsWith, NAMES, STRINGS, st.booleans()),
        st.builds(q.IsNull, NAMES, st.booleans()),
    )


NODES = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: q.And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: q.Or(tuple(xs))),
    ),
    max_leaves=8,
)
QUERIES = st.builds(
    q.Query,
    st.none() | NODES,
    st.lists(st.tuples(NAMES, st.booleans()), max_size=2).map(tuple),
    st.just(()),
) | st.builds(q.Query, st.none() | NODES, st.just(()), st.lists(NAMES, min_size=1, max_size=2).map(tuple))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERIES)
def test_render_then_parse_round_trips(query):
    text = q.render(query)
    assert q.parse(text) == query, text


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=60) | st.lists(st.sampled_from(
    ["WorkflowId", "=", "'x'", "AND", "OR", "(", ")", "IN", "BETWEEN", "NOT", "IS", "NULL", "STARTS_WITH", ",", "5", "ORDER", "BY", "GROUP", "`", "\"", "'", "DESC"]
), max_size=12).map(" ".join))
def test_garbage_only_raises_query_error(text):
    try:
        parsed = q.parse(text)
    except q.QueryError as err:
        assert 0 <= err.position <= len(text)
        return
    # Whatever parses also renders to text that parses the same way.
    assert q.parse(q.render(parsed)) == parsed
    try:
        compile_query(text, {"CustomKeyword": T.INDEXED_VALUE_TYPE_KEYWORD})
    except q.QueryError as err:
        assert 0 <= err.position <= len(text)


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mysql"])
def sql_engine(request):
    """The visibility tables on each database (created from their definitions, not migrated)."""
    if request.param == "sqlite":
        engine = sa.create_engine("sqlite://")
        tables.metadata.create_all(engine, tables=[tables.visibility_records, tables.visibility_search_attributes])
        yield engine
        return
    throwaway = throwaway_postgres_database if request.param == "postgres" else throwaway_mysql_database
    with throwaway() as url:
        engine = sa.create_engine(url)
        tables.metadata.create_all(engine, tables=[tables.visibility_records, tables.visibility_search_attributes])
        yield engine
        engine.dispose()


def _row(run_id: str, workflow_id: str) -> dict:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return dict(
        namespace_id="ns",
        run_id=run_id,
        workflow_id=workflow_id,
        workflow_type="T",
        status=1,
        start_time=now,
        execution_time=now,
        history_length=1,
        history_size_bytes=1,
        task_queue="tq",
        first_execution_run_id="r",
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(STRINGS)
@example("P")  # LIKE alone ignores case on SQLite: 'plain' must not start with 'P'
@example("plain ")  # MySQL's PAD SPACE collations take 'plain ' for 'plain'
@example("PLAIN")  # ... and its _ci ones 'PLAIN'
@example("plaín")  # ... and its accent-insensitive ones 'plaín'
def test_values_are_bound_parameters_and_match_literally(sql_engine, value):
    vr = tables.visibility_records
    with sql_engine.begin() as conn:
        conn.execute(vr.delete())
        conn.execute(vr.insert(), [_row("r1", value), _row("r2", value + "-other"), _row("r3", "plain")])
        for text, expected in (
            (f"WorkflowId = {q._value(value)}", {value}),
            (f"WorkflowId STARTS_WITH {q._value(value)}", {value, value + "-other"} | ({"plain"} if "plain".startswith(value) else set())),
            (f"WorkflowId IN ({q._value(value)}, 'nothing')", {value}),
        ):
            _, where, order = compile_query(text, {})
            rows = conn.execute(sa.select(vr.c.workflow_id).where(vr.c.namespace_id == "ns", where).order_by(*order)).all()
            assert {r[0] for r in rows} == expected, text
        # The table is intact whatever the value contained.
        assert conn.execute(sa.select(sa.func.count()).select_from(vr)).scalar_one() == 3


@pytest.mark.parametrize("text", ["HistoryLength = " + "9" * 5000, "HistoryLength > 9223372036854775808", "x IN (-9223372036854775809)"])
def test_numbers_beyond_64_bits_are_query_errors(text):
    with pytest.raises(q.QueryError):
        q.parse(text)
