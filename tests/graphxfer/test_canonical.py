"""Tests of graphxfer.canonical through Cohort: every value checked against its column, errors
that name the column and rows, identifier-like columns."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort, Schema
from graphxfer.cohort import UNKNOWN
from graphxfer.exceptions import (
    AllMissingColumnError,
    CohortError,
    DuplicateIdError,
    EmptyCohortError,
    GraphxferError,
    IdentifierLikeColumnWarning,
    InfiniteValueError,
    MissingColumnError,
    NonNumericValueError,
    OutOfBoundsError,
    SingleClassError,
    UnknownCategoryError,
    UnknownCategoryWarning,
    first_rows,
)
from graphxfer.schema import Column
from tests.graphxfer._cohort_frames import ROWS, frame, rows_pattern, schema


# ---------------------------------------------------------------------- errors
def test_missing_target_column():
    df = frame().drop(columns="sick")
    with pytest.raises(MissingColumnError, match=r"\['sick'\].*missing from the data.*align"):
        Cohort(df, schema())


def test_missing_feature_columns_all_named():
    df = frame().drop(columns=["age", "cp"])
    with pytest.raises(MissingColumnError, match=r"\['age', 'cp'\]"):
        Cohort(df, schema())


def test_single_class_target():
    df = frame()
    df["sick"] = 1
    with pytest.raises(SingleClassError, match=r"target column 'sick' holds a single class \(1\)"):
        Cohort(df, schema())


def test_missing_target_values_name_rows():
    df = frame()
    df["sick"] = [0, 1, np.nan, 1, np.nan, 0]
    with pytest.raises(CohortError, match=r"'sick' is missing in rows " + rows_pattern("r2", "r4")):
        Cohort(df, schema())


def test_non_numeric_values():
    df = frame()
    df["age"] = pd.Series(["50", "61", "n/a", "70", "?", "55"], index=ROWS, dtype="str")
    pattern = (
        r"numeric column 'age' holds non-numeric values \['n/a', '\?'\] in rows "
        + rows_pattern("r2", "r4")
        + ".*missing_values"
    )
    with pytest.raises(NonNumericValueError, match=pattern):
        Cohort(df, schema())


def test_numeric_strings_and_mixed_objects_are_read():
    df = frame()
    df["age"] = pd.Series(["50", 61, 45.5, None, "38", np.int64(55)], index=ROWS, dtype=object)
    c = Cohort(df, schema())
    assert c.data["age"].tolist()[:3] == [50.0, 61.0, 45.5]
    assert np.isnan(c.data.loc["r3", "age"])


def test_dates_are_not_numbers():
    df = frame()
    df["age"] = pd.to_datetime(["2020-01-01", None, "2020-01-03", None, None, None]).to_numpy()
    with pytest.raises(NonNumericValueError, match=r"'age'.*rows " + rows_pattern("r0", "r2")):
        Cohort(df, schema())


def test_complex_values_are_not_numbers():
    df = frame()
    df["chol"] = pd.Series([200, 1 + 2j, 180, 190, 210, 220], index=ROWS, dtype=object)
    with pytest.raises(NonNumericValueError, match=r"'chol'.*rows 'r1'"):
        Cohort(df, schema())


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_values(bad):
    df = frame()
    df.loc["r3", "chol"] = bad
    df.loc["r5", "chol"] = bad
    with pytest.raises(
        InfiniteValueError,
        match=r"'chol' holds infinite values in rows " + rows_pattern("r3", "r5"),
    ):
        Cohort(df, schema())


def test_values_below_lower_bound():
    df = frame()
    df.loc["r1", "age"] = -3
    with pytest.raises(
        OutOfBoundsError,
        match=r"'age' holds values \[-3.0\] below its lower bound 0 in rows 'r1'.*widen",
    ):
        Cohort(df, schema())


def test_values_above_upper_bound():
    df = frame()
    df.loc[["r0", "r4"], "age"] = [130, 121]
    with pytest.raises(
        OutOfBoundsError,
        match=r"'age' holds values \[130.0, 121.0\] above its upper bound 120 in rows "
        + rows_pattern("r0", "r4"),
    ):
        Cohort(df, schema())


def test_bounds_are_inclusive():
    df = frame()
    df.loc["r0", "age"] = 0
    df.loc["r1", "age"] = 120
    assert Cohort(df, schema()).data["age"].tolist()[:2] == [0.0, 120.0]


def test_unknown_category_error():
    df = frame()
    df.loc["r1", "cp"] = "angina"
    df.loc["r3", "cp"] = "other"
    pattern = (
        r"column 'cp' holds categories \['angina', 'other'\] that are not in its vocabulary.*"
        r"rows " + rows_pattern("r1", "r3") + r".*unknown='map'"
    )
    with pytest.raises(UnknownCategoryError, match=pattern):
        Cohort(df, schema())


def test_unknown_category_map_counts_and_warns():
    df = frame()
    df.loc["r1", "cp"] = "angina"
    df.loc["r3", "cp"] = "other"
    df.loc["r4", "cp"] = "other"
    with pytest.warns(UnknownCategoryWarning, match=r"'cp': 3 value\(s\)"):
        c = Cohort(df, schema(), unknown="map")
    assert c.unknown_counts == {"cp": 3}
    assert c.data["cp"].tolist()[:5] == ["typical", UNKNOWN, "none", UNKNOWN, UNKNOWN]
    assert UNKNOWN == "<unknown>"


def test_unknown_map_without_unknowns_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = Cohort(frame(), schema(), unknown="map")
    assert c.unknown_counts == {}


def test_unknown_binary_label():
    df = frame()
    df.loc["r2", "sex"] = "X"
    with pytest.raises(UnknownCategoryError, match=r"binary column 'sex'.*\['X'\].*rows 'r2'"):
        Cohort(df, schema())
    df = frame()
    df["smoker"] = [0, 1, 2, 0, 1, 1]
    with pytest.raises(UnknownCategoryError, match=r"'smoker'.*\['2'\].*rows 'r2'"):
        Cohort(df, schema())


def test_ordinal_column():
    df = frame()
    df["nyha"] = ["I", "II", "IV", None, "I", "III"]
    c = Cohort(df, schema().add(Column("nyha", "ordinal", levels=["I", "II", "III", "IV"])))
    assert c.data["nyha"].tolist()[:3] == ["I", "II", "IV"]
    df.loc["r3", "nyha"] = "V"
    with pytest.raises(UnknownCategoryError, match=r"'nyha'.*\['V'\].*rows 'r3'"):
        Cohort(df, schema().add(Column("nyha", "ordinal", levels=["I", "II", "III", "IV"])))


def test_duplicate_ids():
    df = frame()
    df["pid"] = ["p1", "p2", "p1", "p4", "p2", "p6"]
    pattern = (
        r"id column 'pid' repeats ids \['p1', 'p2'\] \(rows "
        + rows_pattern("r0", "r1", "r2", "r4")
        + r"\).*repeated_ids='allow'"
    )
    with pytest.raises(DuplicateIdError, match=pattern):
        Cohort(df, schema())
    c = Cohort(df, schema(), repeated_ids="allow")
    assert len(c) == 6 and c.n_persons == 4
    assert c.person_index.tolist() == [0, 1, 0, 2, 1, 3]


def test_duplicate_numeric_ids_are_canonical():
    df = frame()
    df["pid"] = [1, 2, 3, 1.0, 5, 6]
    with pytest.raises(DuplicateIdError, match=r"\['1'\].*" + rows_pattern("r0", "r3")):
        Cohort(df, schema())


def test_missing_ids_and_groups():
    df = frame()
    df.loc["r2", "pid"] = None
    with pytest.raises(CohortError, match=r"id column 'pid' is missing in rows 'r2'"):
        Cohort(df, schema())
    df = frame()
    df.loc["r4", "site"] = np.nan
    with pytest.raises(CohortError, match=r"group column 'site' is missing in rows 'r4'"):
        Cohort(df, schema())


def test_empty_frame():
    with pytest.raises(EmptyCohortError, match="no rows"):
        Cohort(frame().iloc[:0], schema())


def test_repeated_frame_columns():
    df = pd.concat([frame(), frame()[["age"]]], axis=1)
    with pytest.raises(CohortError, match=r"repeats columns \['age'\]"):
        Cohort(df, schema())


def test_all_missing_column_policies():
    df = frame()
    df["chol"] = np.nan
    with pytest.raises(AllMissingColumnError, match=r"feature column 'chol'.*all 6|'chol'.*6 rows"):
        Cohort(df, schema())
    kept = Cohort(df, schema(), all_missing="keep")
    assert "chol" in kept.schema.feature_names and kept.data["chol"].isna().all()
    dropped = Cohort(df, schema(), all_missing="drop")
    assert "chol" not in dropped.schema and "chol" not in dropped.data.columns
    assert dropped.X.columns.tolist() == ["age", "sex", "cp", "smoker"]


def test_all_missing_after_declared_missing_values():
    df = frame()
    df["chol"] = 0.0
    with pytest.raises(AllMissingColumnError, match="'chol'"):
        Cohort(df, schema())


def test_all_missing_text_column_from_inferred_schema():
    df = frame()
    df["note"] = pd.Series([None] * 6, index=ROWS, dtype="str")
    with pytest.raises(AllMissingColumnError, match="'note'"):
        Cohort(df, Schema.infer(df, target="sick", id="pid", group="site"))


def test_errors_are_graphxfer_and_value_errors():
    df = frame()
    df["sick"] = 0
    with pytest.raises(GraphxferError):
        Cohort(df, schema())
    with pytest.raises(ValueError):
        Cohort(df, schema())


def test_first_rows_truncates():
    assert first_rows(["a", "b"]) == "'a', 'b'"
    assert first_rows(list(range(8))) == "0, 1, 2, 3, 4 (and 3 more)"
    df = pd.DataFrame({"x": [np.inf] * 8 + [1.0, 2.0], "y": [0, 1] * 5})
    with pytest.raises(InfiniteValueError, match=re.escape("rows 0, 1, 2, 3, 4 (and 3 more)")):
        Cohort(df, Schema.infer(df, target="y"))


# ---------------------------------------------------------------------- identifier-like columns
def big_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "code": [f"MRN{i:05d}" for i in range(n)],
            "y": [0, 1] * (n // 2),
        }
    )


def test_identifier_like_text_column_warns():
    df = big_frame()
    with pytest.warns(IdentifierLikeColumnWarning, match=r"'code'.*probably an identifier"):
        Cohort(df, Schema.infer(df, target="y"))


def test_identifier_like_integer_column_warns():
    df = big_frame().drop(columns="code")
    df["record_no"] = np.arange(1000, 1060)
    with pytest.warns(IdentifierLikeColumnWarning, match="'record_no'"):
        Cohort(df, Schema.infer(df, target="y"))


def test_no_identifier_warning_when_column_is_id_ignored_continuous_or_small():
    df = big_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cohort(df, Schema.infer(df, target="y", id="code"))
        Cohort(df, Schema.infer(df, target="y", ignore=["code"]))
        small = df.iloc[:40]
        Cohort(small, Schema.infer(small, target="y"))  # too few rows to tell
        Cohort(df.drop(columns="code"), Schema.infer(df.drop(columns="code"), target="y"))
