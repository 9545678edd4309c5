"""The bundled real cohorts: published counts, targets, schemas and no look-ahead leakage."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort
from graphxfer.datasets import (
    DATASETS,
    HEART_SITES,
    OULAD_MODULES,
    admission_source_names,
    load_diabetes_130,
    load_heart_disease,
    load_oulad,
    load_student_performance,
    source_info,
)
from graphxfer.datasets._files import data_file
from graphxfer.datasets._oulad import _oulad_frame, _read

FEATURES_OULAD = [
    "date_unregistration",
    "unregistered",
    "n_submitted",
    "n_late",
    "share_submitted",
    "mean_score",
    "weighted_score",
]


def _groups(cohort: Cohort) -> pd.Series:
    groups = cohort.groups
    assert groups is not None
    return groups


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def heart() -> Cohort:
    return load_heart_disease()


@pytest.fixture(scope="module")
def student() -> Cohort:
    return load_student_performance()


@pytest.fixture(scope="module")
def oulad() -> Cohort:
    return load_oulad()


@pytest.fixture(scope="module")
def diabetes() -> Cohort:
    return load_diabetes_130()


def _check_schema(cohort: Cohort, target: str, id_col: str | None) -> None:
    schema = cohort.schema
    assert schema.target is not None and schema.target.name == target
    assert schema.target.kind == "binary"
    assert schema.group is not None and schema.group.name == "site"
    assert (schema.id.name if schema.id is not None else None) == id_col
    data = cohort.data
    assert set(np.unique(cohort.y)) == {0, 1}
    assert data["site"].notna().all()
    for col in schema.features:
        values = data[col.name]
        if col.kind == "numeric":
            assert col.lower is not None and col.upper is not None, col.name
            assert values.dtype == np.float64
            observed = values.dropna()
            assert ((observed >= col.lower) & (observed <= col.upper)).all(), col.name
        elif col.kind == "binary":
            assert set(values.dropna().unique()) <= {0.0, 1.0}, col.name
        elif col.vocabulary is not None:
            assert set(values.dropna().unique()) <= set(col.vocabulary), col.name
        assert col.description, col.name


def _rates(cohort: Cohort) -> dict[str, tuple[int, int]]:
    frame = pd.DataFrame({"site": _groups(cohort), "y": cohort.y})
    return {str(k): (len(g), int(g["y"].sum())) for k, g in frame.groupby("site", sort=False)}


# ---------------------------------------------------------------------- files
@pytest.mark.parametrize("name", DATASETS)
def test_bundled_files_carry_source_and_licence(name: str) -> None:
    text = source_info(name)
    assert "CC BY 4.0" in text
    assert "Cite" in text or "cite" in text or "Creators" in text


def test_bundled_data_is_packaged_and_small() -> None:
    root = resources.files("graphxfer.datasets") / "data"
    total = 0
    for name in DATASETS:
        assert data_file(name, "LICENSE-and-SOURCE.md").is_file()
        for entry in (root / name).iterdir():
            assert not entry.name.endswith(".csv"), "raw tables ship gzip-compressed"
            total += len(entry.read_bytes())
    assert 1_000_000 < total < 8_000_000


def test_source_info_unknown() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        source_info("mnist")


# ---------------------------------------------------------------------- heart
def test_heart_counts_and_rates(heart: Cohort) -> None:
    assert len(heart) == 920
    assert _rates(heart) == {
        "cleveland": (303, 139),
        "hungarian": (294, 106),
        "switzerland": (123, 115),
        "va": (200, 149),
    }
    _check_schema(heart, "target", "record_id")
    assert "num" not in heart.schema


def test_heart_missing_codes(heart: Cohort) -> None:
    data = heart.data
    swiss = data[data["site"] == "switzerland"]
    assert swiss["chol"].isna().all()
    assert (data["chol"].dropna() > 0).all()
    assert (data["trestbps"].dropna() > 0).all()
    assert heart.schema["chol"].missing_values == [0]
    cleveland = data[data["site"] == "cleveland"]
    assert cleveland["ca"].isna().sum() == 4
    assert cleveland["thal"].isna().sum() == 2
    assert set(data["cp"].dropna()) == {"1", "2", "3", "4"}
    assert set(data["thal"].dropna()) == {"3", "6", "7"}


def test_heart_ids_and_kinds(heart: Cohort) -> None:
    ids = heart.ids
    assert ids is not None and ids.is_unique
    assert ids.iloc[0] == "cleveland-0001"
    kinds = {c.name: c.kind for c in heart.schema}
    assert kinds["sex"] == kinds["fbs"] == kinds["exang"] == "binary"
    assert kinds["cp"] == kinds["restecg"] == kinds["slope"] == kinds["thal"] == "categorical"
    assert heart.schema["ca"].lower == 0 and heart.schema["ca"].upper == 3


def test_heart_site_selection() -> None:
    swiss = load_heart_disease("switzerland")
    assert len(swiss) == 123 and int(swiss.y.sum()) == 115
    two = load_heart_disease(["va", "cleveland"])
    assert list(dict.fromkeys(_groups(two))) == ["va", "cleveland"]
    assert tuple(HEART_SITES) == ("cleveland", "hungarian", "switzerland", "va")
    with pytest.raises(ValueError, match="not one of"):
        load_heart_disease(["boston"])
    with pytest.raises(ValueError, match="empty"):
        load_heart_disease([])


# ---------------------------------------------------------------------- student
def test_student_counts_and_rates(student: Cohort) -> None:
    assert len(student) == 395 + 649
    assert _rates(student) == {
        "GP-mat": (349, 236),
        "MS-mat": (46, 29),
        "GP-por": (423, 391),
        "MS-por": (226, 158),
    }
    _check_schema(student, "pass", "record_id")
    for name in ("G1", "G2", "G3"):
        assert name not in student.schema
    assert student.schema["school"].role == "ignore"
    assert student.schema["subject"].role == "ignore"
    assert student.ids is not None and student.ids.is_unique


def test_student_options() -> None:
    graded = load_student_performance("por", include_period_grades=True)
    assert len(graded) == 649
    assert {"G1", "G2"} <= set(graded.schema.feature_names)
    assert "G3" not in graded.schema
    ms = load_student_performance(subjects="mat", schools="MS")
    assert len(ms) == 46 and int(ms.y.sum()) == 29
    assert set(_groups(ms)) == {"MS-mat"}
    with pytest.raises(ValueError):
        load_student_performance(subjects="physics")
    with pytest.raises(ValueError):
        load_student_performance(schools=["XX"])


def test_student_encodings(student: Cohort) -> None:
    schema = student.schema
    assert schema["internet"].kind == "binary"
    assert schema["internet"].categories == ["no", "yes"]
    assert schema["Medu"].kind == "ordinal" and schema["Medu"].levels == ["0", "1", "2", "3", "4"]
    data = student.data
    assert set(data["Medu"].dropna()) <= {"0", "1", "2", "3", "4"}
    assert data["absences"].max() <= 93


# ---------------------------------------------------------------------- OULAD
def test_oulad_counts_and_target(oulad: Cohort) -> None:
    assert len(oulad) == 32_593
    # at risk = Fail + Withdrawn, per module (README table)
    assert _rates(oulad) == {
        "AAA": (748, 91 + 126),
        "BBB": (7909, 1767 + 2388),
        "CCC": (4434, 781 + 1975),
        "DDD": (6272, 1412 + 2250),
        "EEE": (2934, 562 + 722),
        "FFF": (7762, 1711 + 2403),
        "GGG": (2534, 728 + 292),
    }
    assert int(oulad.y.sum()) == 7052 + 10156
    _check_schema(oulad, "at_risk", "registration_id")
    assert oulad.ids is not None and oulad.ids.is_unique
    assert oulad.schema["id_student"].role == "ignore"
    assert oulad.data["id_student"].nunique() == 28_785
    assert "final_result" not in oulad.schema


def test_oulad_imd_band_fixed(oulad: Cohort) -> None:
    bands = oulad.data["imd_band"]
    assert "10-20" not in set(bands.dropna())
    assert (bands == "10-20%").sum() == 3516
    assert bands.isna().sum() == 1111


def test_oulad_modules_and_cutoff() -> None:
    aaa = load_oulad("AAA", cutoff_day=30)
    assert len(aaa) == 748 and int(aaa.y.sum()) == 217
    later = load_oulad("AAA", cutoff_day=120)
    assert (later.data["n_submitted"] >= aaa.data["n_submitted"]).all()
    assert later.data["n_submitted"].mean() > aaa.data["n_submitted"].mean()
    assert (aaa.data["date_unregistration"].dropna() < 30).all()
    pair = load_oulad(["GGG", "AAA"])
    assert list(dict.fromkeys(_groups(pair))) == ["GGG", "AAA"]
    assert pair.data.loc[pair.groups == "GGG", "weighted_score"].isna().all()
    assert tuple(OULAD_MODULES) == ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG")
    with pytest.raises(ValueError):
        load_oulad("ZZZ")
    with pytest.raises(ValueError):
        load_oulad(cutoff_day=float("nan"))
    with pytest.raises(ValueError):
        load_oulad(cutoff_day="60")  # type: ignore[arg-type]


def _mini_oulad() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    info = pd.DataFrame(
        {
            "code_module": ["AAA", "AAA", "BBB"],
            "code_presentation": ["2013J", "2013J", "2014B"],
            "id_student": [1, 2, 1],
            "imd_band": ["10-20", "0-10%", np.nan],
            "final_result": ["Pass", "Withdrawn", "Fail"],
        }
    )
    registration = pd.DataFrame(
        {
            "code_module": ["AAA", "AAA", "BBB"],
            "code_presentation": ["2013J", "2013J", "2014B"],
            "id_student": [1, 2, 1],
            "date_registration": [-10.0, -5.0, np.nan],
            "date_unregistration": [np.nan, 30.0, 100.0],
        }
    )
    assessments = pd.DataFrame(
        {
            "code_module": ["AAA"] * 4 + ["BBB"],
            "code_presentation": ["2013J"] * 4 + ["2014B"],
            "id_assessment": [11, 12, 13, 14, 21],
            "assessment_type": ["TMA", "TMA", "TMA", "Exam", "CMA"],
            "date": [20.0, 50.0, 100.0, np.nan, 10.0],
            "weight": [10.0, 30.0, 60.0, 100.0, 0.0],
        }
    )
    student_assessment = pd.DataFrame(
        {
            "id_assessment": [11, 12, 13, 14, 11, 21],
            "id_student": [1, 1, 1, 1, 2, 1],
            "date_submitted": [18, 55, 70, 250, 25, 5],
            "is_banked": [0, 0, 0, 0, 0, 0],
            "score": [80.0, 60.0, 100.0, 90.0, 40.0, 70.0],
        }
    )
    return info, registration, assessments, student_assessment


def test_oulad_features_by_hand() -> None:
    frame = _oulad_frame(*_mini_oulad(), cutoff_day=60)
    frame = frame.set_index("registration_id")
    a1, a2, b1 = frame.loc["AAA-2013J-1"], frame.loc["AAA-2013J-2"], frame.loc["BBB-2014B-1"]
    assert (a1["n_submitted"], a1["n_late"], a1["share_submitted"]) == (2, 1, 1.0)
    assert a1["mean_score"] == pytest.approx(70.0)
    assert a1["weighted_score"] == pytest.approx((80 * 10 + 60 * 30) / 40)
    assert (a2["n_submitted"], a2["n_late"], a2["share_submitted"]) == (1, 1, 0.5)
    assert (a2["unregistered"], a2["date_unregistration"]) == (1, 30.0)
    assert (b1["n_submitted"], b1["n_late"], b1["share_submitted"]) == (1, 0, 1.0)
    assert np.isnan(b1["weighted_score"])
    assert np.isnan(b1["date_unregistration"]) and b1["unregistered"] == 0
    assert frame["at_risk"].tolist() == [0, 1, 1]
    assert a1["imd_band"] == "10-20%"
    assert frame["site"].tolist() == ["AAA", "AAA", "BBB"]


def test_oulad_no_leakage_by_hand() -> None:
    info, registration, assessments, sa = _mini_oulad()
    before = _oulad_frame(info, registration, assessments, sa, cutoff_day=60)
    sa2 = sa.copy()
    late = sa2["date_submitted"] >= 60
    sa2.loc[late, "score"] = 0.0
    registration2 = registration.copy()
    registration2.loc[2, "date_unregistration"] = 61.0
    after = _oulad_frame(info, registration2, assessments, sa2, cutoff_day=60)
    pd.testing.assert_frame_equal(before[FEATURES_OULAD], after[FEATURES_OULAD])


def test_oulad_no_leakage_real_tables() -> None:
    cutoff = 60.0
    info = _read("studentInfo")
    registration = _read("studentRegistration")
    assessments = _read("assessments")
    sa = _read("studentAssessment")
    before = _oulad_frame(info, registration, assessments, sa, cutoff)
    rng = np.random.default_rng(0)
    exams = sa["id_assessment"].isin(
        assessments.loc[assessments["assessment_type"] == "Exam", "id_assessment"]
    )
    after_cut = (sa["date_submitted"] >= cutoff) | exams
    assert after_cut.sum() > 50_000
    sa2 = sa.copy()
    sa2.loc[after_cut, "score"] = rng.uniform(0, 100, int(after_cut.sum())).round()
    sa2.loc[after_cut, "date_submitted"] += rng.integers(0, 50, int(after_cut.sum()))
    reg2 = registration.copy()
    later = reg2["date_unregistration"] >= cutoff
    reg2.loc[later, "date_unregistration"] += 7
    info2 = info.copy()
    info2["final_result"] = info2["final_result"].replace({"Pass": "Fail", "Withdrawn": "Pass"})
    after = _oulad_frame(info2, reg2, assessments, sa2, cutoff)
    feature_cols = [c for c in before.columns if c not in ("final_result", "at_risk")]
    pd.testing.assert_frame_equal(before[feature_cols], after[feature_cols])
    # and the post-cutoff data do matter at a later cutoff
    later_before = _oulad_frame(info, registration, assessments, sa, 400.0)
    later_after = _oulad_frame(info, registration, assessments, sa2, 400.0)
    assert not later_before["mean_score"].equals(later_after["mean_score"])


# ---------------------------------------------------------------------- diabetes
def test_diabetes_counts_and_target(diabetes: Cohort) -> None:
    assert len(diabetes) == 101_766
    assert diabetes.n_persons == 71_518
    assert int(diabetes.y.sum()) == 11_357
    assert diabetes.y.mean() == pytest.approx(0.112, abs=5e-4)
    _check_schema(diabetes, "readmitted_30d", "patient_nbr")
    assert diabetes.repeated_ids == "allow"
    assert diabetes.schema["encounter_id"].role == "ignore"
    assert "readmitted" not in diabetes.schema
    sizes = _groups(diabetes).value_counts()
    assert sizes["Emergency Room"] == 57_494
    assert sizes["Physician Referral"] == 29_565
    assert sizes["NULL"] == 6_781


def test_diabetes_values(diabetes: Cohort) -> None:
    data = diabetes.data
    assert (data["A1Cresult"] == "None").sum() == 84_748
    assert (data["max_glu_serum"] == "None").sum() == 96_420
    assert data["weight"].isna().sum() == 98_569
    assert data["medical_specialty"].isna().sum() == 49_949
    assert data["gender"].isna().sum() == 3
    assert data["diag_1"].isna().sum() == 21
    assert {"250.83", "V27", "428"} <= set(data["diag_1"].dropna()) | set(data["diag_3"].dropna())
    assert diabetes.schema["diag_1"].categories is None
    assert set(data["insulin"]) == {"No", "Steady", "Up", "Down"}
    codes = data["admission_source_id"].map(int).map(admission_source_names())
    assert (codes == data["site"]).all()


def test_diabetes_options() -> None:
    assert len(load_diabetes_130(drop_expired=True)) == 101_766 - 1_652
    er = load_diabetes_130(sites=7)
    assert len(er) == 57_494 and set(_groups(er)) == {"Emergency Room"}
    both = load_diabetes_130(sites=["physician referral", 7])
    assert len(both) == 57_494 + 29_565
    with pytest.raises(ValueError):
        load_diabetes_130(sites=99)
    with pytest.raises(ValueError):
        load_diabetes_130(sites="Moon base")
