"""Tests of Cohort.align and AlignmentReport: expressing a target cohort in a source schema."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from graphxfer import AlignmentReport, Cohort, Schema
from graphxfer.cohort import UNKNOWN, KindCoercionWarning
from graphxfer.exceptions import (
    AlignmentError,
    GraphxferError,
    OutOfBoundsError,
    TypeMismatchError,
    UnknownCategoryError,
    UnknownCategoryWarning,
)
from graphxfer.schema import Column

CHOL_FACTOR = 38.67  # mmol/L -> mg/dL


def source_schema() -> Schema:
    return Schema(
        [
            Column("age", lower=0, upper=120, unit="years"),
            Column("chol", lower=50, upper=500, unit="mg/dL"),
            Column("temp", lower=30, upper=45, unit="degC"),
            Column("sex", "binary", categories=["F", "M"]),
            Column("cp", "categorical", categories=["typical", "atypical", "nonanginal", "none"]),
            Column("thal", "categorical", categories=["normal", "fixed", "reversible"]),
            Column("sick", "binary", "target"),
        ],
        name="source",
    )


def target_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": ["p1", "p2", "p3", "p4", "p5"],
            "hospital": ["H", "H", "K", "K", "K"],
            "age_years": [50, 61, 45, 70, 38],
            "chol_mmol": [5.0, 6.2, 4.1, 7.3, np.nan],
            "temp": [98.6, 100.4, 97.7, 99.5, 98.2],  # Fahrenheit
            "sex": ["f", "m", "m", "f", "m"],
            "cp": [1, 2, 3, 4, 1],
            "smoker": [0, 1, 1, 0, 0],
            "outcome": [0, 1, 0, 1, 1],
        },
        index=[10, 11, 12, 13, 14],
    )


def target_schema() -> Schema:
    inferred = Schema.infer(target_frame(), target="outcome", id="pid", group="hospital")
    return inferred.replace("cp", kind="categorical", categories=[1, 2, 3, 4])


def target_cohort() -> Cohort:
    return Cohort(target_frame(), target_schema(), name="target")


MAPPING = {"age_years": "age", "chol_mmol": "chol", "outcome": "sick"}
RECODE = {
    "sex": {"f": "F", "m": "M"},
    "cp": {1: "typical", 2: "atypical", 3: "nonanginal", 4: "none"},
}
CONVERT = {"chol": CHOL_FACTOR, "temp": (5 / 9, -32 * 5 / 9)}


def full_alignment():
    return target_cohort().align(source_schema(), mapping=MAPPING, recode=RECODE, convert=CONVERT)


def test_full_alignment_data():
    aligned, _ = full_alignment()
    data = aligned.data
    assert list(data.index) == [10, 11, 12, 13, 14]
    # source features in source order, then extra features, then target, id and group
    assert list(data.columns) == [
        "age",
        "chol",
        "temp",
        "sex",
        "cp",
        "thal",
        "sick",
        "smoker",
        "pid",
        "hospital",
    ]
    assert data["age"].tolist() == [50.0, 61.0, 45.0, 70.0, 38.0]
    np.testing.assert_allclose(data["chol"].to_numpy()[:4], np.array([5.0, 6.2, 4.1, 7.3]) * 38.67)
    assert np.isnan(data.loc[14, "chol"])
    np.testing.assert_allclose(
        data["temp"].to_numpy(), (np.array([98.6, 100.4, 97.7, 99.5, 98.2]) - 32) * 5 / 9
    )
    assert data["sex"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]  # F=0, M=1 in the source labels
    assert data["cp"].tolist() == ["typical", "atypical", "nonanginal", "none", "typical"]
    assert data["thal"].isna().all()
    assert data["sick"].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert data["smoker"].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert aligned.ids.tolist() == ["p1", "p2", "p3", "p4", "p5"]
    assert aligned.groups.tolist() == ["H", "H", "K", "K", "K"]
    assert aligned.y.tolist() == [0, 1, 0, 1, 1]


def test_full_alignment_schema():
    aligned, _ = full_alignment()
    src = source_schema()
    for name in ["age", "chol", "temp", "sex", "cp", "thal", "sick"]:
        assert aligned.schema[name] == src[name]  # bounds, units, vocabularies of the source
    assert aligned.schema["smoker"] == target_schema()["smoker"]
    assert aligned.schema.id.name == "pid"
    assert aligned.schema.group.name == "hospital"
    assert aligned.schema.feature_names == ["age", "chol", "temp", "sex", "cp", "thal", "smoker"]
    assert aligned.name == "target"
    assert aligned.summary(by=None).iloc[0]["missing:thal"] == 1.0


def test_full_alignment_report():
    _, report = full_alignment()
    assert isinstance(report, AlignmentReport)
    assert report.matched == ["temp", "sex", "cp"]
    assert report.renamed == {"age_years": "age", "chol_mmol": "chol", "outcome": "sick"}
    assert report.recoded == {"sex": 5, "cp": 5}
    assert report.converted["chol"] == (38.67, 0.0)
    assert report.converted["temp"] == pytest.approx((5 / 9, -160 / 9))
    assert report.missing == ["thal"]
    assert report.extra == ["smoker"]
    assert report.unknown_categories == {}


def test_report_is_printable_and_machine_readable():
    _, report = full_alignment()
    text = str(report)
    lines = text.splitlines()
    assert lines[0] == "Alignment report"
    assert "matched   (3): temp, sex, cp" in text
    assert "renamed   (3): age_years -> age, chol_mmol -> chol, outcome -> sick" in text
    assert "recoded   (2): sex (5 values), cp (5 values)" in text
    assert "chol (x38.67 +0)" in text
    assert "temp (x0.555556 -17.7778)" in text
    assert "missing   (1): thal" in text
    assert "extra     (1): smoker" in text
    assert "coerced   (0): -" in text
    assert "unknown" not in text
    d = report.to_dict()
    back = json.loads(json.dumps(d))
    assert back == d
    assert back["converted"]["chol"] == [38.67, 0.0]
    assert back["missing"] == ["thal"] and back["extra"] == ["smoker"]
    assert set(back) == {
        "matched",
        "renamed",
        "recoded",
        "converted",
        "coerced",
        "missing",
        "extra",
        "unknown_categories",
    }
    # the dict is a copy: editing it does not change the report
    d["missing"].append("x")
    assert report.missing == ["thal"]


def test_empty_report_prints_dashes():
    text = str(AlignmentReport())
    assert text.count("(0): -") == 7


def test_align_does_not_modify_inputs():
    df = target_frame()
    before = df.copy(deep=True)
    cohort = Cohort(df, target_schema())
    data_before = cohort.data
    src = source_schema()
    src_before = src.copy()
    mapping, recode, convert = dict(MAPPING), {k: dict(v) for k, v in RECODE.items()}, dict(CONVERT)
    cohort.align(src, mapping=mapping, recode=recode, convert=convert)
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(cohort.data, data_before)
    assert cohort.schema == target_schema()
    assert src == src_before
    assert mapping == MAPPING and recode == RECODE and convert == CONVERT


def test_same_names_match_without_mapping():
    src = Schema([Column("a"), Column("b", "binary"), Column("y", "binary", "target")])
    df = pd.DataFrame({"b": [0, 1, 1], "a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    aligned, report = Cohort(df, Schema.infer(df, target="y")).align(src)
    assert list(aligned.data.columns) == ["a", "b", "y"]
    assert report.matched == ["a", "b", "y"]
    assert report.renamed == {} and report.missing == [] and report.extra == []


def test_cohort_without_target_aligns_to_source_with_target():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    aligned, report = Cohort(df, Schema.infer(df)).align(source_schema(), mapping={"a": "age"})
    assert not aligned.has_target
    assert report.renamed == {"a": "age"}
    assert report.missing == ["chol", "temp", "sex", "cp", "thal"]


def test_source_ignored_columns_are_skipped_and_own_ignored_are_missing():
    src = Schema([Column("a"), Column("b"), Column("note", "categorical", "ignore")])
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "note": ["x", "y"]})
    sch = Schema([Column("a"), Column("b", role="ignore"), Column("note", "categorical")])
    aligned, report = Cohort(df, sch).align(src)
    assert report.matched == ["a"]
    assert report.missing == ["b"]
    assert aligned.data["b"].isna().all()
    assert aligned.schema.feature_names[:2] == ["a", "b"]


# ---------------------------------------------------------------------- errors
def test_type_mismatch_numeric_vs_categorical():
    sch = target_schema().replace("cp", kind="numeric", categories=None)
    cohort = Cohort(target_frame(), sch)
    # numbers that name no category of the source's vocabulary
    with pytest.raises(
        TypeMismatchError,
        match=r"'cp' is numeric here but source column 'cp' is categorical; its values "
        r"\['1', '2', '3', '4'\] \(rows 10, 11, 12, 13, 14\) are not categories.*recode",
    ):
        cohort.align(source_schema(), mapping=MAPPING, recode={"sex": RECODE["sex"]})
    # with the codes recoded they do: the numbers are read as labels, then recoded
    with pytest.warns(KindCoercionWarning, match=r"'cp' numeric -> categorical"):
        aligned, report = cohort.align(
            source_schema(), mapping=MAPPING, recode=RECODE, convert=CONVERT
        )
    assert aligned.data["cp"].tolist() == ["typical", "atypical", "nonanginal", "none", "typical"]
    assert report.coerced["cp"]["from"] == "numeric" and report.recoded["cp"] == 5


def test_type_mismatch_renamed_column_names_both_sides():
    src = Schema([Column("smoking", "categorical", categories=["never", "ever"])])
    df = pd.DataFrame({"smoker": [0.5, 1.5, 2.0]})
    with pytest.raises(TypeMismatchError, match=r"'smoker' is numeric.*'smoking' is categorical"):
        Cohort(df, Schema.infer(df)).align(src, mapping={"smoker": "smoking"})


def test_type_mismatch_target_vs_feature():
    src = Schema([Column("a"), Column("y", "binary")])
    df = pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]})
    with pytest.raises(TypeMismatchError, match=r"'y' is the target here but 'y' is a feature"):
        Cohort(df, Schema.infer(df, target="y")).align(src)


def test_out_of_bounds_after_conversion():
    cohort = target_cohort()
    # forgetting the unit conversion: 5.0 mmol/L is far below 50 mg/dL
    with pytest.raises(
        OutOfBoundsError, match=r"'chol' holds values .* below its lower bound 50 in rows 10, 11"
    ):
        cohort.align(
            source_schema(), mapping=MAPPING, recode=RECODE, convert={"temp": CONVERT["temp"]}
        )
    # a wrong factor overshoots the upper bound
    with pytest.raises(OutOfBoundsError, match=r"'chol'.*above its upper bound 500.*convert"):
        cohort.align(
            source_schema(),
            mapping=MAPPING,
            recode=RECODE,
            convert={"chol": 100.0, "temp": CONVERT["temp"]},
        )


def test_unknown_categories_error_and_map():
    df = target_frame()
    df["thal"] = ["normal", "fixed", "weird", None, "odd"]
    sch = target_schema().add(Column("thal", "categorical"))  # open vocabulary here
    cohort = Cohort(df, sch)
    kwargs = {"mapping": MAPPING, "recode": RECODE, "convert": CONVERT}
    with pytest.raises(UnknownCategoryError, match=r"'thal'.*\['odd', 'weird'\].*rows 12, 14"):
        cohort.align(source_schema(), **kwargs)
    with pytest.warns(UnknownCategoryWarning, match=r"'thal': 2 value"):
        aligned, report = cohort.align(source_schema(), unknown="map", **kwargs)
    assert report.unknown_categories == {"thal": 2}
    assert aligned.unknown_counts == {"thal": 2}
    assert aligned.data["thal"].tolist()[:3] == ["normal", "fixed", UNKNOWN]
    assert "unknown categories: thal (2)" in str(report)
    assert json.loads(json.dumps(report.to_dict()))["unknown_categories"] == {"thal": 2}


def test_unknown_policy_defaults_to_the_cohorts():
    df = target_frame()
    df["thal"] = ["normal", "weird", "fixed", "normal", "normal"]
    with pytest.warns(UnknownCategoryWarning):
        cohort = Cohort(df, target_schema().add(Column("thal", "categorical")), unknown="map")
        _, report = cohort.align(source_schema(), mapping=MAPPING, recode=RECODE, convert=CONVERT)
    assert report.unknown_categories == {"thal": 1}


def test_incomplete_recode_leaves_unknown_codes():
    with pytest.raises(UnknownCategoryError, match=r"'cp'.*\['4'\].*rows 13"):
        target_cohort().align(
            source_schema(),
            mapping=MAPPING,
            recode={"sex": RECODE["sex"], "cp": {1: "typical", 2: "atypical", 3: "nonanginal"}},
            convert=CONVERT,
        )


def test_recode_to_missing_counts_changes():
    recode = {"sex": RECODE["sex"], "cp": {**RECODE["cp"], 4: None}}
    aligned, report = target_cohort().align(
        source_schema(), mapping=MAPPING, recode=recode, convert=CONVERT
    )
    assert pd.isna(aligned.data.loc[13, "cp"])
    assert report.recoded["cp"] == 5


def test_binary_labels_need_a_recode():
    with pytest.raises(
        AlignmentError, match=r"'sex' is labelled \['f', 'm'\].*\['F', 'M'\].*recode"
    ):
        target_cohort().align(
            source_schema(), mapping=MAPPING, recode={"cp": RECODE["cp"]}, convert=CONVERT
        )


def test_binary_recode_outside_source_labels():
    with pytest.raises(AlignmentError, match=r"recode\['sex'\] leaves values \['X'\]"):
        target_cohort().align(
            source_schema(),
            mapping=MAPPING,
            recode={"sex": {"f": "F", "m": "X"}, "cp": RECODE["cp"]},
            convert=CONVERT,
        )


def test_binary_recode_can_swap_labels():
    src = Schema([Column("pos", "binary", categories=["neg", "pos"])])
    df = pd.DataFrame({"pos": ["yes", "no", "yes"]})
    cohort = Cohort(df, Schema([Column("pos", "binary", categories=["no", "yes"])]))
    aligned, report = cohort.align(src, recode={"pos": {"no": "neg", "yes": "pos"}})
    assert aligned.data["pos"].tolist() == [1.0, 0.0, 1.0]
    assert report.recoded == {"pos": 3}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mapping": {"nope": "age"}}, r"mapping names column 'nope'"),
        ({"mapping": {"age_years": "nope"}}, r"sends 'age_years' to 'nope'.*source columns are"),
        ({"mapping": {"age_years": "age", "temp": "age"}}, r"two columns to the same source"),
        ({"recode": {"nope": {}}}, r"recode names 'nope'.*source column"),
        ({"convert": {"age_years": 2.0}}, r"convert names 'age_years'"),
        ({"convert": {"cp": 2.0}}, r"convert applies to numeric columns; 'cp' is categorical"),
        ({"recode": {"age": {1: 2}}}, r"recode applies to coded columns; 'age' is numeric"),
        ({"convert": {"age": 0}}, r"convert\['age'\].*not a valid unit map"),
        ({"convert": {"age": (1.0, float("nan"))}}, r"convert\['age'\].*not a valid unit map"),
        ({"convert": {"age": (1, 2, 3)}}, r"convert\['age'\] must be a factor or a"),
        ({"convert": {"age": "x"}}, r"convert\['age'\] must be a factor or a"),
        ({"mapping": [("age_years", "age")]}, r"mapping must be a dict"),
        ({"recode": [("sex", {})]}, r"recode must be a dict"),
        ({"convert": 2.0}, r"convert must be a dict"),
        ({"recode": {"sex": ["f", "m"]}}, r"recode\['sex'\] must be a dict"),
    ],
)
def test_alignment_argument_errors(kwargs, pattern):
    base = {"mapping": MAPPING, "recode": RECODE, "convert": CONVERT}
    base.update(kwargs)
    with pytest.raises(AlignmentError, match=pattern):
        target_cohort().align(source_schema(), **base)


def test_numpy_factor_is_accepted():
    _, report = target_cohort().align(
        source_schema(),
        mapping=MAPPING,
        recode=RECODE,
        convert={"chol": np.float32(38.5), "temp": (np.float64(5 / 9), np.int64(-18))},
    )
    assert report.converted["chol"] == (38.5, 0.0)
    assert report.converted["temp"][1] == -18.0


def test_source_schema_must_be_a_schema():
    with pytest.raises(
        AlignmentError, match=r"source_schema must be a graphxfer\.Schema, got dict"
    ):
        target_cohort().align(source_schema().to_dict())


def test_target_not_aligned_to_source_target():
    mapping = {k: v for k, v in MAPPING.items() if k != "outcome"}
    with pytest.raises(AlignmentError, match=re.escape("add mapping={'outcome': 'sick'}")):
        target_cohort().align(source_schema(), mapping=mapping, recode=RECODE, convert=CONVERT)


def test_two_columns_resolving_to_one_source_column():
    src = Schema([Column("a"), Column("b")])
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    cohort = Cohort(df, Schema.infer(df))
    with pytest.raises(AlignmentError, match=r"'a' and 'b' of this cohort both align to .*'b'"):
        cohort.align(src, mapping={"a": "b"})
    # an ignored namesake does not collide: it simply gives way
    cohort = Cohort(df, Schema([Column("a"), Column("b", role="ignore")]))
    aligned, report = cohort.align(src, mapping={"a": "b"})
    assert aligned.data["b"].tolist() == [1.0, 2.0]
    assert report.renamed == {"a": "b"} and report.missing == ["a"]


def test_alignment_errors_are_graphxfer_errors():
    assert issubclass(AlignmentError, GraphxferError)
    assert issubclass(TypeMismatchError, GraphxferError)
    with pytest.raises(GraphxferError):
        target_cohort().align(source_schema())


def test_id_column_with_binary_kind_is_carried_unchanged():
    df = pd.DataFrame({"x": [0.0, 1.0, 1.0], "code": [0, 2, 5]})
    sch = Schema([Column("x", "binary"), Column("code", "binary", "id")])
    aligned, report = Cohort(df, sch).align(Schema([Column("x", "binary")]))
    assert aligned.ids.tolist() == ["0", "2", "5"]
    assert report.matched == ["x"]


def test_own_id_standing_in_for_a_source_feature():
    df = pd.DataFrame({"site": ["A", "B", "C"], "x": [1.0, 2.0, 3.0]})
    cohort = Cohort(df, Schema.infer(df, id="site"))
    src = Schema([Column("x"), Column("site", "categorical", categories=["A", "B", "C"])])
    with pytest.raises(
        TypeMismatchError, match=r"'site' is the id column here but source .*feature"
    ):
        cohort.align(src)
    # an id on both sides is simply this cohort's id
    aligned, report = cohort.align(Schema([Column("x"), Column("site", "categorical", "id")]))
    assert aligned.ids.tolist() == ["A", "B", "C"] and report.matched == ["x"]


def test_aligning_to_its_own_schema_keeps_the_data_and_reports_matches():
    aligned_once, _ = full_alignment()
    again, report = aligned_once.align(aligned_once.schema)
    # nothing to do: the same columns, values and index, every column matched
    pd.testing.assert_frame_equal(again.data, aligned_once.data)
    assert again.schema == aligned_once.schema
    assert report.matched == [
        c.name for c in aligned_once.schema if c.role in ("feature", "target")
    ]
    assert not (report.renamed or report.recoded or report.converted or report.missing)
    # the aligned cohort is independent of the one it came from
    again._data.iloc[0, 0] = -1.0
    assert aligned_once.data.iloc[0, 0] != -1.0


def test_aligning_to_a_stricter_source_still_checks_values():
    aligned_once, _ = full_alignment()
    stricter = aligned_once.schema.replace("age", lower=55)  # same column, tighter bounds
    with pytest.raises(OutOfBoundsError, match="'age'"):
        aligned_once.align(stricter)


def test_realigning_a_cohort_with_mapped_categories_counts_them_again():
    df = target_frame()
    df["thal"] = ["normal", "weird", "fixed", "normal", "normal"]
    vocab = ["normal", "fixed", "reversible"]
    with pytest.warns(UnknownCategoryWarning):
        cohort = Cohort(
            df, target_schema().add(Column("thal", "categorical", categories=vocab)), unknown="map"
        )
    assert cohort.unknown_counts == {"thal": 1}
    with pytest.warns(UnknownCategoryWarning):
        _, report = cohort.align(cohort.schema)
    assert report.unknown_categories == {"thal": 1}
