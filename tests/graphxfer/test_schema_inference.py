"""Tests of graphxfer.schema_inference: ``Schema.infer`` proposes a schema from a data frame."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from graphxfer.exceptions import SchemaError
from graphxfer.schema import Column, Schema


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [50.5, 61.0, np.nan, 70.0, 38.0, 44.0],
            "n_visits": [1, 5, 3, 2, 8, 1],
            "smoker": [0, 1, 1, 0, 0, 1],
            "diabetic": [True, False, False, True, False, False],
            "sex": pd.Series(["f", "m", "m", None, "f", "m"], dtype="str"),
            "cp": pd.Series(
                ["typical", "atypical", "none", "typical", np.nan, "none"], dtype="str"
            ),
            "mixed": pd.Series([1, "a", 2.5, None, "a", 1.0], dtype=object),
            "flag": pd.Series([1.0, np.nan, 0.0, 1.0, 1.0, np.nan]),
            "pid": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "site": ["A", "A", "B", "B", "B", "A"],
            "outcome": [0, 1, 0, 1, 1, 0],
        }
    )


def test_infer_mixed_dtypes():
    df = mixed_frame()
    s = Schema.infer(df, target="outcome", id="pid", group="site", name="A")
    assert s.name == "A"
    assert s.names == list(df.columns)
    assert s["age"] == Column("age", "numeric")  # no bounds are invented
    assert s["n_visits"] == Column("n_visits", "numeric")
    assert s["smoker"] == Column("smoker", "binary")
    assert s["diabetic"] == Column("diabetic", "binary")
    assert s["sex"] == Column("sex", "binary", categories=["f", "m"])
    assert s["cp"] == Column("cp", "categorical", categories=["atypical", "none", "typical"])
    assert s["mixed"] == Column("mixed", "categorical", categories=["1", "2.5", "a"])
    assert s["flag"] == Column("flag", "binary")
    assert s["pid"] == Column("pid", "categorical", "id")
    assert s["site"] == Column("site", "categorical", "group")
    assert s["outcome"] == Column("outcome", "binary", "target")
    assert s.feature_names == [
        "age",
        "n_visits",
        "smoker",
        "diabetic",
        "sex",
        "cp",
        "mixed",
        "flag",
    ]


def test_infer_does_not_modify_the_frame():
    df = mixed_frame()
    before = df.copy(deep=True)
    Schema.infer(df, target="outcome", id="pid", group="site", ignore=["mixed"])
    pd.testing.assert_frame_equal(df, before)


def test_infer_sorts_numeric_labels_numerically():
    df = pd.DataFrame({"grade": pd.Series(["10", "9", "2", "x"], dtype="str")})
    assert Schema.infer(df)["grade"].categories == ["2", "9", "10", "x"]


def test_infer_nullable_dtypes():
    df = pd.DataFrame(
        {
            "i": pd.array([0, 1, None, 1], dtype="Int64"),
            "b": pd.array([True, None, False, True], dtype="boolean"),
            "f": pd.array([0.5, None, 2.0, 1.0], dtype="Float64"),
            "y": [0, 1, 0, 1],
        }
    )
    s = Schema.infer(df, target="y")
    assert s["i"].kind == "binary"
    assert s["b"].kind == "binary"
    assert s["f"].kind == "numeric"


def test_infer_text_target_and_ignore():
    df = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0],
            "note": ["a", "b", "c", "d"],
            "dx": pd.Series(["no", "yes", "yes", "no"], dtype="str"),
        }
    )
    s = Schema.infer(df, target="dx", ignore=["note"])
    assert s["dx"] == Column("dx", "binary", "target", categories=["no", "yes"])
    assert s["note"].role == "ignore"
    assert Schema.infer(df, target="dx", ignore="note")["note"].role == "ignore"


def test_infer_high_cardinality_text_gets_open_vocabulary():
    df = pd.DataFrame({"code": [f"c{i}" for i in range(60)], "few": ["a", "b", "c"] * 20})
    s = Schema.infer(df)
    assert s["code"] == Column("code", "categorical")
    assert s["few"].categories == ["a", "b", "c"]
    assert Schema.infer(df, max_categories=2)["few"].categories is None


def test_infer_all_missing_columns():
    df = pd.DataFrame(
        {
            "num": [np.nan, np.nan, np.nan],
            "text": pd.Series([None, None, None], dtype=object),
            "s": pd.Series([None, None, None], dtype="str"),
        }
    )
    s = Schema.infer(df)
    assert s["num"] == Column("num", "numeric")
    assert s["text"] == Column("text", "categorical")
    assert s["s"] == Column("s", "categorical")


def test_infer_target_with_many_values_names_the_column():
    df = pd.DataFrame({"x": [1, 2, 3], "stage": [0, 1, 2]})
    with pytest.raises(SchemaError, match=r"target column 'stage' has 3 distinct values"):
        Schema.infer(df, target="stage")


@pytest.mark.parametrize("arg", ["target", "id", "group"])
def test_infer_unknown_role_column(arg):
    df = pd.DataFrame({"x": [1, 2]})
    with pytest.raises(SchemaError, match=rf"{arg}='nope' is not a column.*\['x'\]"):
        Schema.infer(df, **{arg: "nope"})


def test_infer_rejects_bad_input():
    with pytest.raises(SchemaError, match="ignore='nope'"):
        Schema.infer(pd.DataFrame({"x": [1]}), ignore=["nope"])
    with pytest.raises(SchemaError, match="needs a pandas DataFrame, got dict"):
        Schema.infer({"x": [1, 2]})
    with pytest.raises(SchemaError, match=re.escape("got [0, 1]; rename them")):
        Schema.infer(pd.DataFrame([[1.0, 0], [2.0, 1]]))


def test_inferred_schema_round_trips():
    s = Schema.infer(mixed_frame(), target="outcome", id="pid", group="site")
    assert Schema.from_json(s.to_json()) == s


# ---------------------------------------------------------------------- numbers with stray text
def mostly_numbers(n_numbers: int, text: list[str]) -> pd.DataFrame:
    """``n_numbers`` cholesterol values written as text, then the ``text`` values."""
    values = [str(200 + i) for i in range(n_numbers)] + text
    index = [f"r{i}" for i in range(len(values))]
    outcome = [i % 2 for i in range(len(values))]
    return pd.DataFrame({"chol": pd.Series(values, index=index, dtype="str"), "y": outcome}, index)


def test_infer_refuses_numbers_with_a_few_text_values():
    df = mostly_numbers(19, ["n/a"])
    with pytest.raises(SchemaError) as info:
        Schema.infer(df, target="y")
    message = str(info.value)
    assert "column 'chol' is mostly numbers, but 1 of its 20 values is text: ['n/a']" in message
    assert "(rows 'r19')" in message
    # and says how to fix it
    assert "pd.to_numeric(df['chol'], errors='coerce')" in message
    assert "na_values=['n/a']" in message
    assert "Schema.infer(df, kinds={'chol': 'categorical'})" in message


def test_infer_names_the_first_offending_rows_and_values():
    df = mostly_numbers(90, ["?", "n/a", "?", "<5", "?", "?", "?", "?", "?", "?"])
    with pytest.raises(
        SchemaError,
        match=re.escape("10 of its 100 values are text: ['?', 'n/a', '<5'] (rows 'r90', 'r91', "
                        "'r92', 'r93', 'r94' (and 5 more))"),
    ):  # fmt: skip
        Schema.infer(df)


def test_infer_threshold_is_ninety_percent_numbers():
    assert Schema.infer(mostly_numbers(17, ["a", "b", "c"]))["chol"].kind == "categorical"
    with pytest.raises(SchemaError, match="mostly numbers"):
        Schema.infer(mostly_numbers(27, ["a", "b", "c"]))  # exactly 90%
    # blank strings are missing, not text; all-number text columns keep their vocabulary
    df = pd.DataFrame({"code": pd.Series(["1", " ", "2", "", "3"], dtype="str")})
    assert Schema.infer(df)["code"] == Column("code", "categorical", categories=["1", "2", "3"])
    df = pd.DataFrame({"code": pd.Series([1, "2", 3.5, None, "x"] * 4, dtype=object)})
    assert Schema.infer(df)["code"].kind == "categorical"  # 80% numbers: a real categorical


def test_infer_declared_kinds():
    df = mostly_numbers(19, ["n/a"])
    s = Schema.infer(df, kinds={"chol": "categorical"})
    assert s["chol"].kind == "categorical"
    assert s["chol"].categories[:2] == ["200", "201"] and s["chol"].categories[-1] == "n/a"
    df = pd.DataFrame(
        {
            "grade": pd.Series(["low", "high", "mid", None], dtype="str"),
            "pos": pd.Series(["-", "+", "+", "-"], dtype="str"),
            "x": [1.0, 0.0, 1.0, 0.0],
        }
    )
    s = Schema.infer(df, kinds={"grade": "ordinal", "pos": "binary", "x": "numeric"})
    assert s["grade"] == Column("grade", "ordinal", levels=["high", "low", "mid"])
    assert s["pos"] == Column("pos", "binary", categories=["+", "-"])
    assert s["x"] == Column("x", "numeric")  # not binary: declared


@pytest.mark.parametrize(
    ("kinds", "pattern"),
    [
        ({"nope": "numeric"}, r"kinds names 'nope', which is not a column"),
        ({"chol": "text"}, r"kinds\['chol'\] = 'text' is not one of"),
        ({"y": "numeric"}, r"kinds\['y'\]: the kind is declared for feature columns only"),
        ({"chol": "binary"}, r"kinds\['chol'\] = 'binary', but the column holds 20 distinct"),
    ],
)
def test_infer_declared_kinds_errors(kinds, pattern):
    with pytest.raises(SchemaError, match=pattern):
        Schema.infer(mostly_numbers(19, ["n/a"]), target="y", kinds=kinds)


def test_text_in_a_column_declared_numeric_names_the_column_and_first_row():
    from graphxfer import Cohort
    from graphxfer.exceptions import NonNumericValueError

    df = mostly_numbers(18, ["n/a", "?"])
    schema = Schema.infer(df, target="y", kinds={"chol": "numeric"})
    with pytest.raises(
        NonNumericValueError,
        match=re.escape("numeric column 'chol' holds non-numeric values ['n/a', '?'] in rows "
                        "'r18', 'r19'"),
    ):  # fmt: skip
        Cohort(df, schema)
