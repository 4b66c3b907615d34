"""Validation and typing of search attribute payloads (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import IndexedValueType as T

from odin.visibility.search_attributes import (
    InvalidSearchAttribute,
    settable_types,
    typed_values,
    validate,
)

TYPES = settable_types(
    {
        "K": T.INDEXED_VALUE_TYPE_KEYWORD,
        "I": T.INDEXED_VALUE_TYPE_INT,
        "D": T.INDEXED_VALUE_TYPE_DOUBLE,
        "B": T.INDEXED_VALUE_TYPE_BOOL,
        "W": T.INDEXED_VALUE_TYPE_DATETIME,
        "L": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
        "X": T.INDEXED_VALUE_TYPE_TEXT,
    }
)


def sa(**values) -> SearchAttributes:
    out = SearchAttributes()
    for name, value in values.items():
        out.indexed_fields[name].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode()))
    return out


def test_untyped_values_get_their_registered_type():
    checked = validate(sa(K="a", I=3, D=1.5, B=True, W="2026-01-02T03:04:05Z", L=["x", "y", "x"], X="some text"), TYPES)
    assert {n: p.metadata["type"] for n, p in checked.indexed_fields.items()} == {
        "K": b"Keyword", "I": b"Int", "D": b"Double", "B": b"Bool", "W": b"Datetime", "L": b"KeywordList", "X": b"Text"
    }
    values = {(v.name, v.text, v.integer, v.double, v.time) for v in typed_values(checked)}
    assert ("L", "x", None, None, None) in values and ("L", "y", None, None, None) in values
    assert ("W", None, None, None, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) in values
    assert ("B", None, 1, None, None) in values
    assert len([v for v in typed_values(checked) if v.name == "L"]) == 2  # duplicates collapse


@pytest.mark.parametrize(
    "attrs",
    [
        dict(K=3), dict(I="3"), dict(I=True), dict(D="x"), dict(B=1), dict(W="yesterday"), dict(L=[1]), dict(Unknown="x"),
        dict(WorkflowId="system"),
    ],
)
def test_bad_values_are_refused(attrs):
    with pytest.raises(InvalidSearchAttribute):
        validate(sa(**attrs), TYPES)


def test_declared_type_must_match_the_registry():
    attrs = sa(K="a")
    attrs.indexed_fields["K"].metadata["type"] = b"Int"
    with pytest.raises(InvalidSearchAttribute):
        validate(attrs, TYPES)


def test_unset_markers_pass_through_and_store_nothing():
    checked = validate(sa(K=None, L=[]), TYPES)
    assert set(checked.indexed_fields) == {"K", "L"}
    assert typed_values(checked) == []


def test_predefined_change_version_is_always_settable():
    checked = validate(sa(TemporalChangeVersion=["patch-1"]), settable_types({}))
    assert checked.indexed_fields["TemporalChangeVersion"].metadata["type"] == b"KeywordList"
