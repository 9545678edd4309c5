"""Tests of graphxfer.schema: columns, schemas and JSON round trips (inference: see
test_schema_inference.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphxfer.exceptions import GraphxferError, SchemaError
from graphxfer.schema import KINDS, ROLES, Column, Schema, canonical_label


def rich_schema() -> Schema:
    """A schema that uses every kind, every role and every optional field."""
    return Schema(
        [
            Column("pid", "categorical", "id", description="patient number"),
            Column("site", "categorical", "group"),
            Column("age", lower=0, upper=120, unit="years", description="âge à l'admission"),
            Column("chol", lower=50.5, unit="mg/dL", missing_values=[0, -1]),
            Column("temp", upper=45),
            Column("sex", "binary", categories=["F", "M"]),
            Column("smoker", "binary"),
            Column("cp", "categorical", categories=["typical", "atypical", "asymptomatic"]),
            Column("nyha", "ordinal", levels=["I", "II", "III", "IV"]),
            Column("notes", "categorical", "ignore"),
            Column("sick", "binary", "target", categories=["no", "yes"]),
        ],
        name="hospital A",
    )


# ---------------------------------------------------------------------- canonical labels
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (1.0, "1"),
        ("1", "1"),
        (np.int64(3), "3"),
        (np.float32(2.0), "2"),
        (True, "1"),
        (False, "0"),
        (np.bool_(True), "1"),
        (1.5, "1.5"),
        ("  a b ", "a b"),
        ("yes", "yes"),
    ],
)
def test_canonical_label_values(value, expected):
    assert canonical_label(value) == expected


@pytest.mark.parametrize("value", [None, np.nan, float("nan"), pd.NA, pd.NaT, "", "   "])
def test_canonical_label_missing(value):
    out = canonical_label(value)
    assert isinstance(out, float) and np.isnan(out)


# ---------------------------------------------------------------------- Column validation
def test_column_defaults_and_bounds_become_floats():
    col = Column("age", lower=0, upper=120)
    assert col.kind == "numeric" and col.role == "feature"
    assert col.lower == 0.0 and isinstance(col.lower, float)
    assert col.upper == 120.0 and isinstance(col.upper, float)


def test_column_categories_are_canonical_strings():
    col = Column("cp", "categorical", categories=[1, 2.0, "3", np.int64(4)])
    assert col.categories == ["1", "2", "3", "4"]
    assert col.vocabulary == ["1", "2", "3", "4"]
    ordinal = Column("nyha", "ordinal", levels=[1, 2, 3])
    assert ordinal.levels == ["1", "2", "3"]
    assert ordinal.vocabulary == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"name": ""}, "non-empty strings"),
        ({"name": 3}, "non-empty strings"),
        ({"name": "x", "role": "label"}, r"'x'.*unknown role 'label'"),
        ({"name": "x", "kind": "text"}, r"'x'.*unknown kind 'text'"),
        ({"name": "x", "kind": "categorical", "lower": 0}, r"'x'.*only meaningful for numeric"),
        ({"name": "x", "lower": 5, "upper": 1}, r"'x'.*lower bound 5.0 is above.*swap"),
        ({"name": "x", "upper": float("inf")}, r"'x'.*upper bound must be finite"),
        ({"name": "x", "lower": float("nan")}, r"'x'.*lower bound must be finite"),
        ({"name": "x", "lower": "abc"}, r"'x'.*lower bound must be a number"),
        ({"name": "x", "lower": [1]}, r"'x'.*lower bound must be a number"),
        ({"name": "x", "kind": "categorical", "categories": ["a", "a"]}, r"'x'.*repeat"),
        ({"name": "x", "kind": "categorical", "categories": [1, " 1"]}, r"'x'.*repeat"),
        ({"name": "x", "kind": "categorical", "categories": ["a", None]}, r"'x'.*missing"),
        ({"name": "x", "kind": "categorical", "categories": 5}, r"'x'.*must be a list"),
        ({"name": "x", "kind": "categorical", "categories": "abc"}, r"'x'.*must be a list"),
        ({"name": "x", "kind": "categorical", "categories": []}, r"'x'.*empty vocabulary"),
        ({"name": "x", "kind": "ordinal", "levels": ["lo", "lo"]}, r"'x'.*repeat"),
        ({"name": "x", "kind": "ordinal"}, r"'x'.*ordered `levels`"),
        ({"name": "x", "kind": "binary", "categories": ["a", "b", "c"]}, r"'x'.*exactly two"),
        ({"name": "x", "kind": "numeric", "role": "target"}, r"'x'.*target must be binary"),
        ({"name": "x", "missing_values": "NA"}, r"'x'.*missing_values must be a list"),
    ],
)
def test_column_validation_errors(kwargs, pattern):
    with pytest.raises(SchemaError, match=pattern):
        Column(**kwargs)


def test_schema_error_is_a_graphxfer_and_value_error():
    with pytest.raises(ValueError):
        Column("x", kind="nope")
    assert issubclass(SchemaError, GraphxferError)


def test_column_numpy_missing_values_become_plain_python():
    col = Column("chol", missing_values=(np.int64(0), np.float64(-1.5), "NA"))
    assert col.missing_values == [0, -1.5, "NA"]
    assert all(type(v) in (int, float, str) for v in col.missing_values)
    schema = Schema([col])
    assert Schema.from_json(schema.to_json()) == schema


# ---------------------------------------------------------------------- Schema
def test_schema_accessors():
    s = rich_schema()
    assert len(s) == 11
    assert s.names[:3] == ["pid", "site", "age"]
    assert [c.name for c in s] == s.names
    assert s.feature_names == ["age", "chol", "temp", "sex", "smoker", "cp", "nyha"]
    assert [c.name for c in s.features] == s.feature_names
    assert s.target is not None and s.target.name == "sick"
    assert s.id is not None and s.id.name == "pid"
    assert s.group is not None and s.group.name == "site"
    assert "age" in s and "weight" not in s
    assert s["age"].unit == "years"
    with pytest.raises(KeyError, match="weight"):
        s["weight"]


def test_schema_without_special_roles():
    s = Schema([Column("a"), Column("b", "binary")])
    assert s.target is None and s.id is None and s.group is None
    assert s.name is None


def test_schema_rejects_repeated_columns_and_roles():
    with pytest.raises(SchemaError, match="'a' appears twice"):
        Schema([Column("a"), Column("a", "binary")])
    with pytest.raises(SchemaError, match=r"one target.*\['y', 'z'\]"):
        Schema([Column("y", "binary", "target"), Column("z", "binary", "target")])
    with pytest.raises(SchemaError, match=r"one id"):
        Schema([Column("p", "categorical", "id"), Column("q", "categorical", "id")])
    with pytest.raises(SchemaError, match=r"one group"):
        Schema([Column("p", "categorical", "group"), Column("q", "categorical", "group")])


def test_schema_accepts_dicts_and_rejects_garbage_columns():
    s = Schema([{"name": "a", "lower": 1}])
    assert s["a"] == Column("a", lower=1.0)
    with pytest.raises(SchemaError, match="columns are a list"):
        Schema(5)
    with pytest.raises(SchemaError, match="JSON object with a 'name'"):
        Schema([1])


def test_schema_replace_returns_a_new_schema():
    s = rich_schema()
    before = copy.deepcopy(s)
    t = s.replace("age", upper=110, unit="yr")
    assert t["age"].upper == 110.0 and t["age"].unit == "yr"
    assert s == before  # the original is untouched
    assert t.names == s.names
    assert t.name == s.name
    # kind and vocabulary together
    u = s.replace("temp", kind="categorical", upper=None, categories=["lo", "hi"])
    assert u["temp"].kind == "categorical" and u["temp"].categories == ["lo", "hi"]


def test_schema_replace_errors():
    s = rich_schema()
    with pytest.raises(SchemaError, match=r"'age'.*above"):
        s.replace("age", lower=200)
    with pytest.raises(SchemaError, match=r"'age'.*unknown field.*'uper'"):
        s.replace("age", uper=3)
    with pytest.raises(KeyError, match="weight"):
        s.replace("weight", upper=3)


def test_schema_drop_add_copy():
    s = rich_schema()
    d = s.drop(["notes", "temp"])
    assert "notes" not in d and "temp" not in d and len(d) == len(s) - 2
    assert s.drop("notes").names == [n for n in s.names if n != "notes"]
    with pytest.raises(KeyError):
        s.drop("weight")
    a = s.add(Column("bmi", lower=10, upper=80))
    assert a.names[-1] == "bmi" and "bmi" not in s
    with pytest.raises(SchemaError, match="'age' appears twice"):
        s.add(Column("age"))
    c = s.copy()
    assert c == s and c is not s
    c.columns[2].upper = 1.0
    assert s["age"].upper == 120.0  # deep copy


# ---------------------------------------------------------------------- JSON
def test_json_round_trip_is_exact():
    s = rich_schema()
    text = s.to_json()
    back = Schema.from_json(text)
    assert back == s
    assert back.to_json() == text
    assert back.name == "hospital A"
    assert back["chol"].missing_values == [0, -1]
    assert back["age"].description == "âge à l'admission"
    # a non-default indent is still read back identically
    assert Schema.from_json(s.to_json(indent=None)) == s


def test_json_omits_defaults_and_keeps_names():
    doc = json.loads(Schema([Column("a"), Column("b", "binary", "target")]).to_json())
    assert doc == {
        "format": 1,
        "name": None,
        "columns": [{"name": "a"}, {"name": "b", "kind": "binary", "role": "target"}],
    }


def test_json_file_round_trip(tmp_path):
    s = rich_schema()
    path = tmp_path / "sub" / "schema.json"
    text = s.to_json(path)
    assert path.read_text(encoding="utf-8") == text + "\n"
    assert Schema.from_json(path) == s
    assert Schema.from_json(str(path)) == s
    assert Schema.from_json(path).to_json() == text
    assert [p.name for p in path.parent.iterdir()] == ["schema.json"]  # no temporary left over


def test_json_hand_edited_file(tmp_path):
    path = tmp_path / "edited.json"
    path.write_text(
        '{"columns": [{"name": "age", "upper": 110},'
        ' {"name": "y", "kind": "binary", "role": "target"}]}',
        encoding="utf-8",
    )
    s = Schema.from_json(path)
    assert s == Schema([Column("age", upper=110.0), Column("y", "binary", "target")])


def test_json_unknown_column_key_is_rejected():
    text = rich_schema().to_json()
    doc = json.loads(text)
    doc["columns"][2]["bounds"] = [0, 1]
    with pytest.raises(SchemaError, match=r"'age'.*unknown schema keys \['bounds'\]"):
        Schema.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('{"format": 2, "columns": []}', "unknown schema format 2"),
        ('{"name": "x"}', "'columns' list"),
        ('{"columns": 5}', "columns are a list"),
        ('{"columns": [["age"]]}', "JSON object with a 'name'"),
        ('{"columns": [{"kind": "numeric"}]}', "has no 'name'"),
        ('{"columns": [{"name": "a", "kind": "text"}]}', r"'a'.*unknown kind"),
        ('{"columns": [{"name": "a", "lower": "zero"}]}', r"'a'.*must be a number"),
        ('{"columns": [', "not valid JSON"),
    ],
)
def test_json_invalid_documents(text, pattern):
    with pytest.raises(SchemaError, match=pattern):
        Schema.from_json(text)


def test_json_missing_file_and_directory(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.from_json(tmp_path / "nope.json")
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.from_json(tmp_path)


def test_json_non_serialisable_schema_raises_schema_error():
    s = Schema([Column("chol", missing_values=[float("nan")])])
    with pytest.raises(SchemaError, match="cannot be written as JSON"):
        s.to_json()


# a random valid column
_labels = st.lists(
    st.text(alphabet="abcXYZ é0123", min_size=1, max_size=5).filter(lambda t: t.strip() != ""),
    min_size=2,
    max_size=5,
    unique_by=lambda t: t.strip(),
)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def columns(draw, name):
    kind = draw(st.sampled_from(KINDS))
    role = draw(st.sampled_from(["feature", "ignore"]))
    kw = {
        "unit": draw(st.none() | st.text(max_size=5)),
        "description": draw(st.text(max_size=10)),
        "missing_values": draw(st.none() | st.lists(st.integers(-5, 5) | st.text(max_size=3))),
    }
    if kind == "numeric":
        bounds = sorted(draw(st.lists(_finite, min_size=2, max_size=2)))
        kw["lower"] = draw(st.sampled_from([None, bounds[0]]))
        kw["upper"] = draw(st.sampled_from([None, bounds[1]]))
    elif kind == "binary":
        kw["categories"] = draw(st.none() | _labels.map(lambda v: v[:2]))
    elif kind == "categorical":
        kw["categories"] = draw(st.none() | _labels)
    else:
        kw["levels"] = draw(_labels)
    return Column(name, kind, role, **kw)


@st.composite
def schemas(draw):
    n = draw(st.integers(0, 5))
    cols = [draw(columns(f"c{i}")) for i in range(n)]
    if draw(st.booleans()):
        cols.append(Column("y", "binary", "target"))
    return Schema(cols, name=draw(st.none() | st.text(max_size=8)))


@settings(max_examples=100, deadline=None)
@given(schemas())
def test_json_round_trip_property(schema):
    text = schema.to_json()
    back = Schema.from_json(text)
    assert back == schema
    assert back.to_json() == text
    assert Schema.from_dict(schema.to_dict()) == schema
    assert set(ROLES) >= {c.role for c in back}


def test_docstring_examples_run() -> None:
    import doctest

    import graphxfer.align
    import graphxfer.canonical
    import graphxfer.cohort
    import graphxfer.schema
    import graphxfer.schema_inference

    modules = (
        graphxfer.schema,
        graphxfer.schema_inference,
        graphxfer.cohort,
        graphxfer.canonical,
        graphxfer.align,
    )
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
