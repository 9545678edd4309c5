"""Property-based tests: malformed frames and schemas only ever raise graphxfer's own errors.

Random frames (floats with NaN and inf, text, mixed objects, ints, bools, nullable and
categorical dtypes, dates) meet random schemas (bounds, vocabularies, roles, missing values);
building a Cohort, using it and aligning it to a random source schema must either succeed with
canonical data or raise a subclass of GraphxferError - never a KeyError, TypeError or a raw
pandas/numpy/scikit-learn error. Warnings are allowed.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphxfer import Cohort, Schema
from graphxfer.cohort import UNKNOWN
from graphxfer.exceptions import GraphxferError, GraphxferWarning
from graphxfer.schema import KINDS, ROLES, Column

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LABELS = ["0", "1", "a", "b", "yes", "no", "2.5", "x y"]
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, np.nan])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    FLOATS,
    st.text(max_size=4),
    st.sampled_from(LABELS),
    st.just(pd.NA),
    st.just(pd.Timestamp("2020-01-01")),
    st.just(1 + 2j),
)
DTYPES = ["float", "int", "bigint", "bool", "str", "object", "Int64", "boolean", "category", "date"]


def column_values(draw: st.DrawFn, dtype: str, n: int) -> pd.Series:
    """A column of ``n`` values of the given flavour."""
    if dtype == "float":
        return pd.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype="float64")
    if dtype == "int":
        return pd.Series(draw(st.lists(st.integers(-2, 3), min_size=n, max_size=n)), dtype="int64")
    if dtype == "bigint":
        return pd.Series(draw(st.lists(st.integers(), min_size=n, max_size=n)), dtype=object)
    if dtype == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if dtype == "str":
        text = st.none() | st.sampled_from(LABELS) | st.text(max_size=3)
        return pd.Series(draw(st.lists(text, min_size=n, max_size=n)), dtype="str")
    if dtype == "object":
        return pd.Series(draw(st.lists(SCALARS, min_size=n, max_size=n)), dtype=object)
    if dtype == "Int64":
        ints = st.none() | st.integers(-2, 2)
        return pd.Series(pd.array(draw(st.lists(ints, min_size=n, max_size=n)), dtype="Int64"))
    if dtype == "boolean":
        bools = st.none() | st.booleans()
        return pd.Series(pd.array(draw(st.lists(bools, min_size=n, max_size=n)), dtype="boolean"))
    if dtype == "category":
        labels = st.none() | st.sampled_from(LABELS[:5])
        return pd.Series(pd.Categorical(draw(st.lists(labels, min_size=n, max_size=n))))
    days = st.none() | st.integers(0, 1000)
    return pd.Series(
        [
            None if d is None else pd.Timestamp("2020-01-01") + pd.Timedelta(days=d)
            for d in draw(st.lists(days, min_size=n, max_size=n))
        ],
        dtype="datetime64[ns]",
    )


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 8, 55]))
    data: dict[str, pd.Series] = {}
    for i in range(draw(st.integers(1, 4))):
        data[f"c{i}"] = column_values(draw, draw(st.sampled_from(DTYPES)), n)
    if draw(st.booleans()):
        target = st.sampled_from(["01", "const", "nan", "text", "three", "float", "any"])
        kind = draw(target)
        if kind == "01":
            y = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
        elif kind == "const":
            y = [1] * n
        elif kind == "nan":
            y = draw(st.lists(st.sampled_from([0, 1, np.nan]), min_size=n, max_size=n))
        elif kind == "text":
            y = draw(st.lists(st.sampled_from(["yes", "no"]), min_size=n, max_size=n))
        elif kind == "three":
            y = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))
        elif kind == "float":
            y = draw(st.lists(st.sampled_from([0.0, 1.0, 0.5]), min_size=n, max_size=n))
        else:
            y = draw(st.lists(SCALARS, min_size=n, max_size=n))
        data["y"] = pd.Series(y, dtype=object if kind == "any" else None)
    if draw(st.booleans()):
        ids = st.sampled_from(["p1", "p2", "p3", 4, 4.0, None]) | st.text(min_size=1, max_size=3)
        data["pid"] = pd.Series(draw(st.lists(ids, min_size=n, max_size=n)), dtype=object)
    if draw(st.booleans()):
        sites = st.sampled_from(["A", "B", 1, None])
        data["site"] = pd.Series(draw(st.lists(sites, min_size=n, max_size=n)), dtype=object)
    df = pd.DataFrame(data)
    index = draw(st.sampled_from(["range", "labels", "duplicates"]))
    if index == "labels":
        df.index = [f"r{i}" for i in range(n)]
    elif index == "duplicates" and n > 0:
        df.index = [i // 2 for i in range(n)]
    return df


@st.composite
def random_column(draw: st.DrawFn, name: str, role: str = "feature") -> Column:
    """Any column, valid or not: SchemaError is an allowed outcome."""
    kind = draw(st.sampled_from(KINDS))
    kw: dict[str, Any] = {}
    if kind == "numeric":
        if draw(st.booleans()):
            kw["lower"] = draw(st.sampled_from([-1e9, -1.0, 0.0, 1.0, 50.0, math.nan, "x"]))
        if draw(st.booleans()):
            kw["upper"] = draw(st.sampled_from([0.0, 1.0, 3.0, 1e9, math.inf]))
    elif kind in ("categorical", "binary"):
        if draw(st.booleans()):
            kw["categories"] = draw(st.lists(st.sampled_from(LABELS), max_size=4))
    else:
        kw["levels"] = draw(st.lists(st.sampled_from(LABELS), max_size=4))
    if draw(st.integers(0, 4)) == 0:
        kw["missing_values"] = draw(st.lists(st.sampled_from([0, -1, "", "a", 0.0]), max_size=2))
    return Column(name, kind, role, **kw)


def attempt(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a GraphxferError is an accepted outcome (returns None), anything else fails."""
    try:
        return fn()
    except GraphxferError as exc:
        assert str(exc), "an error without a message"
        return None


@st.composite
def schemas_for(draw: st.DrawFn, df: pd.DataFrame) -> Schema | None:
    target = "y" if "y" in df.columns and draw(st.booleans()) else None
    id_ = "pid" if "pid" in df.columns and draw(st.booleans()) else None
    group = "site" if "site" in df.columns and draw(st.booleans()) else None
    schema = attempt(lambda: Schema.infer(df, target=target, id=id_, group=group))
    if schema is None:
        schema = Schema([Column(str(c)) for c in df.columns])
    for col in list(schema.names):
        edit = draw(st.sampled_from(["keep", "keep", "random", "ignore", "drop", "role"]))
        if edit == "random":
            role = schema[col].role
            new = attempt(lambda col=col, role=role: draw(random_column(col, role)))
            if new is not None:
                columns = [new if c.name == col else c for c in schema]
                schema = attempt(lambda columns=columns: Schema(columns)) or schema
        elif edit == "ignore":
            schema = schema.replace(col, role="ignore")
        elif edit == "drop":
            schema = schema.drop(col)
        elif edit == "role":
            role = draw(st.sampled_from(ROLES))
            edited = schema
            schema = attempt(lambda c=col, r=role, s=edited: s.replace(c, role=r)) or schema
    if draw(st.integers(0, 5)) == 0:
        schema = schema.add(Column("not_in_data", draw(st.sampled_from(["numeric", "binary"]))))
    return schema


def check_canonical(cohort: Cohort, df: pd.DataFrame) -> None:
    assert len(cohort) == len(df)
    assert list(cohort.data.index) == list(df.index)
    assert list(cohort.data.columns) == cohort.schema.names
    for col in cohort.schema:
        if col.role == "ignore":
            continue
        values = cohort.data[col.name]
        observed = values.dropna()
        if col.role in ("id", "group"):
            assert all(isinstance(v, str) for v in observed)
        elif col.kind in ("numeric", "binary"):
            assert values.dtype == np.float64
            assert np.isfinite(observed.to_numpy()).all()
            if col.kind == "binary":
                assert set(observed) <= {0.0, 1.0}
            if col.lower is not None:
                assert (observed >= col.lower).all()
            if col.upper is not None:
                assert (observed <= col.upper).all()
        else:
            assert all(isinstance(v, str) for v in observed)
            if col.vocabulary is not None:
                allowed = set(col.vocabulary) | ({UNKNOWN} if cohort.unknown == "map" else set())
                assert set(observed) <= allowed
    if cohort.has_target:
        assert set(cohort.y.tolist()) == {0, 1}
    if cohort.ids is not None and cohort.repeated_ids == "error":
        assert cohort.ids.is_unique


def exercise(cohort: Cohort, draw: st.DrawFn) -> None:
    """Use the cohort's API; only GraphxferError may escape."""
    x = cohort.X
    assert list(x.columns) == cohort.schema.feature_names
    if cohort.has_target:
        assert len(cohort.y) == len(cohort)
    if cohort.groups is not None:
        assert len(cohort.groups) == len(cohort)
    summary = attempt(lambda: cohort.summary(by=draw(st.sampled_from(["group", None]))))
    if summary is not None:
        assert summary["rows"].sum() == len(cohort)
    size = draw(st.sampled_from([0.25, 0.5, 1, 2, 0.0, 5, "a"]))
    parts = attempt(lambda: cohort.split(size, random_state=draw(st.integers(0, 3))))
    if parts is not None:
        train, test = parts
        assert len(train) + len(test) == len(cohort)
        assert set(map(str, train.data.index)) | set(map(str, test.data.index)) == set(
            map(str, cohort.data.index)
        )
        if cohort.ids is not None:
            assert set(train.ids).isdisjoint(set(test.ids))


@st.composite
def cohort_cases(draw: st.DrawFn):
    df = draw(frames())
    schema = draw(schemas_for(df))
    kwargs = {
        "unknown": draw(st.sampled_from(["error", "map"])),
        "all_missing": draw(st.sampled_from(["error", "keep", "drop"])),
        "repeated_ids": draw(st.sampled_from(["error", "allow"])),
    }
    return df, schema, kwargs


def quiet(fn: Callable[[], Any]) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = attempt(fn)
    return out, caught


@SETTINGS
@given(cohort_cases(), st.data())
def test_cohort_only_raises_graphxfer_errors(case, data):
    df, schema, kwargs = case
    before = df.copy(deep=True)
    schema_before = schema.copy()
    cohort, caught = quiet(lambda: Cohort(df, schema, **kwargs))
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is never modified
    assert schema == schema_before
    for w in caught:
        if "graphxfer" in w.filename or issubclass(w.category, GraphxferWarning):
            assert issubclass(w.category, GraphxferWarning), w
    if cohort is None:
        return
    check_canonical(cohort, df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exercise(cohort, data.draw)
    pd.testing.assert_frame_equal(df, before)


@st.composite
def source_edits(draw: st.DrawFn, schema: Schema):
    """A source schema derived from ``schema`` by random edits, with the matching arguments."""
    columns: list[Column] = []
    mapping: dict[str, str] = {}
    recode: dict[str, dict[Any, Any]] = {}
    convert: dict[str, Any] = {}
    for col in schema:
        edit = draw(
            st.sampled_from(["same", "same", "rename", "retype", "drop", "bounds", "vocab"])
        )
        src_name = col.name
        if edit == "drop":
            continue
        if edit == "rename":
            src_name = col.name + "_src"
            mapping[col.name] = src_name
        new = attempt(
            lambda col=col, src_name=src_name: Column.from_dict({**col.to_dict(), "name": src_name})
        )
        if edit == "retype" and col.role not in ("target",):
            new = attempt(
                lambda src_name=src_name, col=col: draw(random_column(src_name, col.role))
            )
        elif edit == "bounds" and col.kind == "numeric":
            lo = draw(st.sampled_from([None, -10.0, 0.0, 40.0]))
            new = attempt(lambda src_name=src_name, lo=lo: Column(src_name, lower=lo, upper=100.0))
            convert[src_name] = draw(
                st.sampled_from([2.0, (1.8, 32.0), 0.0, (1.0, math.nan), "x", np.float32(0.5)])
            )
        elif edit == "vocab" and col.kind in ("categorical", "ordinal", "binary"):
            vocab = draw(st.lists(st.sampled_from(LABELS), min_size=2, max_size=4, unique=True))
            if col.kind == "binary":
                vocab = vocab[:2]
            key = "levels" if col.kind == "ordinal" else "categories"
            new = attempt(
                lambda col=col, src_name=src_name, key=key, vocab=vocab: Column(
                    src_name, col.kind, col.role, **{key: vocab}
                )
            )
            own = col.vocabulary or LABELS
            recode[src_name] = {
                draw(st.sampled_from(own)): draw(st.sampled_from([*vocab, None, "zzz"]))
                for _ in range(draw(st.integers(0, 3)))
            }
        if new is not None:
            columns.append(new)
    if draw(st.booleans()):
        columns.append(Column("source_only", draw(st.sampled_from(["numeric", "categorical"]))))
    if draw(st.integers(0, 6)) == 0:
        mapping["no_such_column"] = "source_only"
    if draw(st.integers(0, 6)) == 0:
        convert["no_such_column"] = 2.0
    source = attempt(lambda: Schema(columns, name="source"))
    return source, mapping, recode, convert


@SETTINGS
@given(cohort_cases(), st.data())
def test_align_only_raises_graphxfer_errors(case, data):
    df, schema, kwargs = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = attempt(lambda: Cohort(df, schema, **kwargs))
    if cohort is None:
        return
    source, mapping, recode, convert = data.draw(source_edits(cohort.schema))
    if source is None:
        return
    cohort_before = cohort.data
    unknown = data.draw(st.sampled_from([None, "error", "map"]))
    out, _ = quiet(
        lambda: cohort.align(
            source, mapping=mapping, recode=recode, convert=convert, unknown=unknown
        )
    )
    pd.testing.assert_frame_equal(cohort.data, cohort_before)
    if out is None:
        return
    aligned, report = out
    assert len(aligned) == len(cohort)
    assert list(aligned.data.index) == list(cohort.data.index)
    check_canonical(aligned, df)
    for col in source:
        if col.role == "feature":
            assert col.name in aligned.schema.feature_names
            assert aligned.schema[col.name] == col
    listed = report.matched + list(report.renamed.values()) + report.missing
    assert len(listed) == len(set(listed))
    assert set(report.missing) <= {c.name for c in source}
    assert set(report.extra).isdisjoint(c.name for c in source)
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()
    assert str(report).startswith("Alignment report")
