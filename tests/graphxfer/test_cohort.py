"""Tests of graphxfer.cohort.Cohort: construction, access, split, summary and groups (the value
checks: test_canonical.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort, Schema
from graphxfer.exceptions import CohortError, MissingColumnError, UnknownCategoryWarning
from graphxfer.schema import Column
from tests.graphxfer._cohort_frames import ROWS, frame, schema


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
