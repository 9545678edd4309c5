"""Tests of graphxfer.cohort.Cohort: validation, error messages, access, split and summary."""

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

ROWS = ["r0", "r1", "r2", "r3", "r4", "r5"]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "site": ["A", "A", "B", "B", "B", "A"],
            "age": [50, 61, 45, 70, 38, 55],
            "chol": [210.0, np.nan, 180.0, 0.0, 250.0, 199.5],
            "sex": pd.Series(["F", "M", "M", "F", None, "M"], dtype="str"),
            "cp": pd.Series(["typical", "atypical", "none", "typical", "none", None], dtype="str"),
            "smoker": [True, False, True, False, False, True],
            "extra": ["x"] * 6,
            "sick": [0, 1, 0, 1, 1, 0],
        }
    ).set_axis(ROWS)


def schema() -> Schema:
    return Schema(
        [
            Column("pid", "categorical", "id"),
            Column("site", "categorical", "group"),
            Column("age", lower=0, upper=120, unit="years"),
            Column("chol", lower=50, upper=600, missing_values=[0]),
            Column("sex", "binary", categories=["F", "M"]),
            Column("cp", "categorical", categories=["typical", "atypical", "none"]),
            Column("smoker", "binary"),
            Column("sick", "binary", "target"),
        ],
        name="A",
    )


def rows_pattern(*labels: str) -> str:
    return re.escape(first_rows(list(labels)))


# ---------------------------------------------------------------------- construction
def test_cohort_canonical_data():
    df = frame()
    c = Cohort(df, schema())
    assert len(c) == 6
    assert c.name == "A"
    assert list(c.data.columns) == schema().names  # "extra" is not in the schema: dropped
    assert list(c.data.index) == ROWS
    assert c.data["age"].dtype == np.float64
    assert c.data["chol"].tolist()[2:4] == [180.0, pytest.approx(np.nan, nan_ok=True)]
    assert np.isnan(c.data.loc["r3", "chol"])  # 0 is a declared missing value
    assert c.data["sex"].tolist()[:4] == [0.0, 1.0, 1.0, 0.0]
    assert np.isnan(c.data.loc["r4", "sex"])
    assert c.data["smoker"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert c.data["cp"].tolist()[:5] == ["typical", "atypical", "none", "typical", "none"]
    assert pd.isna(c.data.loc["r5", "cp"])


def test_cohort_accessors():
    c = Cohort(frame(), schema())
    assert list(c.X.columns) == ["age", "chol", "sex", "cp", "smoker"]
    assert list(c.X.index) == ROWS
    assert c.y.dtype == np.int64
    assert c.y.tolist() == [0, 1, 0, 1, 1, 0]
    assert c.has_target
    assert c.groups.tolist() == ["A", "A", "B", "B", "B", "A"]
    assert list(c.groups.index) == ROWS
    assert c.ids.tolist() == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert c.n_persons == 6
    assert c.person_index.tolist() == [0, 1, 2, 3, 4, 5]
    assert "A" in repr(c) and "6 rows" in repr(c) and "'sick'" in repr(c)


def test_cohort_without_target_group_or_id():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    c = Cohort(df, Schema.infer(df))
    assert not c.has_target and c.groups is None and c.ids is None
    assert c.n_persons == 3
    with pytest.raises(MissingColumnError, match="no target column"):
        _ = c.y


def test_cohort_does_not_modify_the_callers_frame():
    df = frame()
    before = df.copy(deep=True)
    sch = schema()
    sch_before = sch.copy()
    c = Cohort(df, sch)
    c.split(0.5, random_state=0)
    c.summary()
    c.X, c.y, c.groups  # noqa: B018
    pd.testing.assert_frame_equal(df, before)
    assert sch == sch_before
    # the cohort does not share memory with the caller's frame either
    df.loc["r0", "age"] = 99
    assert c.data.loc["r0", "age"] == 50.0


def test_cohort_does_not_modify_the_frame_when_mapping_or_dropping():
    df = frame()
    df.loc["r1", "cp"] = "other"
    df["empty"] = np.nan
    before = df.copy(deep=True)
    sch = schema().add(Column("empty"))
    with pytest.warns(UnknownCategoryWarning):
        Cohort(df, sch, unknown="map", all_missing="drop")
    pd.testing.assert_frame_equal(df, before)


def test_ignored_columns_are_kept_untouched_or_may_be_absent():
    df = frame()
    sch = schema().add(Column("extra", "categorical", "ignore"))
    sch = sch.add(Column("absent", "categorical", "ignore"))
    c = Cohort(df, sch)
    assert c.data["extra"].tolist() == ["x"] * 6
    assert "absent" not in c.data.columns
    assert "extra" not in c.X.columns


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"unknown": "drop"}, r"unknown='drop' is not one of \('error', 'map'\)"),
        ({"all_missing": "zero"}, r"all_missing='zero'"),
        ({"repeated_ids": "yes"}, r"repeated_ids='yes'"),
    ],
)
def test_bad_policies(kwargs, pattern):
    with pytest.raises(CohortError, match=pattern):
        Cohort(frame(), schema(), **kwargs)


def test_bad_argument_types():
    with pytest.raises(CohortError, match="needs a pandas DataFrame, got dict"):
        Cohort(frame().to_dict(), schema())
    with pytest.raises(CohortError, match=r"graphxfer\.Schema, got dict"):
        Cohort(frame(), schema().to_dict())


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


# ---------------------------------------------------------------------- split
def split_frame(n: int = 400, rate: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    return pd.DataFrame(
        {"x": rng.normal(size=n), "y": y},
        index=[f"row{i}" for i in range(n)],
    )


def test_split_is_deterministic_and_partitions():
    df = split_frame()
    c = Cohort(df, Schema.infer(df, target="y"))
    train, test = c.split(0.25, random_state=7)
    train2, test2 = c.split(0.25, random_state=7)
    assert list(train.data.index) == list(train2.data.index)
    assert list(test.data.index) == list(test2.data.index)
    assert len(test) == 100 and len(train) == 300
    assert set(train.data.index).isdisjoint(test.data.index)
    assert set(train.data.index) | set(test.data.index) == set(df.index)
    other, _ = c.split(0.25, random_state=8)
    assert set(other.data.index) != set(train.data.index)
    assert train.schema == c.schema
    # a Generator seed works too, and is deterministic for equal generator states
    g1, _ = c.split(0.25, random_state=np.random.default_rng(3))
    g2, _ = c.split(0.25, random_state=np.random.default_rng(3))
    assert list(g1.data.index) == list(g2.data.index)


def test_split_is_stratified():
    df = split_frame(n=400, rate=0.2)
    c = Cohort(df, Schema.infer(df, target="y"))
    rate = c.y.mean()
    for seed in range(5):
        train, test = c.split(0.3, random_state=seed)
        assert abs(train.y.mean() - rate) < 0.01
        assert abs(test.y.mean() - rate) < 0.01


def test_split_with_count_of_persons():
    df = split_frame(n=40)
    c = Cohort(df, Schema.infer(df, target="y"))
    train, test = c.split(10, random_state=0)
    assert len(test) == 10 and len(train) == 30


def test_split_keeps_a_persons_rows_together():
    rng = np.random.default_rng(1)
    persons = np.repeat([f"p{i}" for i in range(80)], rng.integers(1, 5, size=80))
    person_y = {p: int(rng.random() < 0.4) for p in set(persons)}
    df = pd.DataFrame(
        {
            "pid": persons,
            "x": rng.normal(size=len(persons)),
            "y": [person_y[p] for p in persons],
        }
    )
    c = Cohort(df, Schema.infer(df, target="y", id="pid"), repeated_ids="allow")
    assert c.n_persons == 80
    for seed in range(3):
        train, test = c.split(0.25, random_state=seed)
        assert set(train.ids).isdisjoint(set(test.ids))
        assert len(train) + len(test) == len(c)
        assert test.n_persons == 20
        for p in set(test.ids):
            assert (test.ids == p).sum() == (c.ids == p).sum()


@pytest.mark.parametrize("size", [0.0, 1.0, 1.5, -0.1, 0, 40, 41, "a", None, True])
def test_split_invalid_test_size(size):
    df = split_frame(n=40)
    c = Cohort(df, Schema.infer(df, target="y"))
    with pytest.raises(CohortError, match="test_size"):
        c.split(size, random_state=0)


def test_split_too_small_to_stratify():
    df = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    c = Cohort(df, Schema.infer(df, target="y"))
    with pytest.raises(CohortError, match=r"cannot split 10 persons.*stratify=False"):
        c.split(0.1, random_state=0)
    train, test = c.split(0.1, stratify=False, random_state=0)
    assert len(test) == 1 and len(train) == 9


def test_split_without_target_or_with_rare_class():
    df = pd.DataFrame({"x": np.arange(20.0)})
    train, test = Cohort(df, Schema.infer(df)).split(0.5, random_state=0)
    assert len(train) == len(test) == 10
    df["y"] = [1] + [0] * 19  # one positive: cannot stratify, falls back to a plain split
    train, test = Cohort(df, Schema.infer(df, target="y")).split(0.5, random_state=0)
    assert len(train) == len(test) == 10


# ---------------------------------------------------------------------- summary
def test_summary_by_group_matches_hand_computation():
    c = Cohort(frame(), schema())
    s = c.summary()
    assert list(s.index) == ["A", "B"]
    assert s.index.name == "site"
    expected_cols = ["rows", "persons", "positive_rate"] + [
        f"missing:{n}" for n in ["age", "chol", "sex", "cp", "smoker"]
    ]
    assert list(s.columns) == expected_cols
    # site A: rows r0, r1, r5; site B: rows r2, r3, r4
    assert s.loc["A", "rows"] == 3 and s.loc["B", "rows"] == 3
    assert s.loc["A", "persons"] == 3
    assert s.loc["A", "positive_rate"] == pytest.approx(1 / 3)  # sick 0, 1, 0
    assert s.loc["B", "positive_rate"] == pytest.approx(2 / 3)  # sick 0, 1, 1
    assert s.loc["A", "missing:chol"] == pytest.approx(1 / 3)  # r1 NaN
    assert s.loc["B", "missing:chol"] == pytest.approx(1 / 3)  # r3 is 0, a missing value
    assert s.loc["B", "missing:sex"] == pytest.approx(1 / 3)  # r4
    assert s.loc["A", "missing:cp"] == pytest.approx(1 / 3)  # r5
    assert s.loc["A", "missing:age"] == 0.0


def test_summary_whole_cohort():
    c = Cohort(frame(), schema())
    s = c.summary(by=None)
    assert list(s.index) == ["A"]  # the cohort's name
    row = s.iloc[0]
    assert row["rows"] == 6 and row["persons"] == 6
    assert row["positive_rate"] == pytest.approx(3 / 6)
    assert row["missing:chol"] == pytest.approx(2 / 6)
    assert row["missing:sex"] == pytest.approx(1 / 6)
    assert row["missing:smoker"] == 0.0


def test_summary_counts_persons_and_handles_no_target():
    df = pd.DataFrame({"pid": ["a", "a", "b", "c"], "x": [1.0, np.nan, np.nan, 4.0]})
    c = Cohort(df, Schema.infer(df, id="pid"), repeated_ids="allow")
    row = c.summary().iloc[0]  # no group column: one row
    assert c.summary().index.tolist() == ["cohort"]
    assert row["rows"] == 4 and row["persons"] == 3
    assert np.isnan(row["positive_rate"])
    assert row["missing:x"] == pytest.approx(0.5)


# ---------------------------------------------------------------------- groups
def test_select_groups_and_by_group():
    c = Cohort(frame(), schema())
    b = c.select_groups("B")
    assert list(b.data.index) == ["r2", "r3", "r4"] and b.name == "B"
    assert set(c.by_group()) == {"A", "B"}
    with pytest.raises(CohortError, match=r"group\(s\) \['C'\] do not occur in column 'site'"):
        c.select_groups("C")
    df = frame()
    df["site"] = [1.0, 1.0, 2.0, 2.0, 2.0, 1.0]
    c = Cohort(df, schema())
    assert len(c.select_groups(2.0)) == 3  # a float label is one group, not an iterable
    assert len(c.select_groups(np.int64(1))) == 3
