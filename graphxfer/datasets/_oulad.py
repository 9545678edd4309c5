"""OULAD: the Open University Learning Analytics Dataset, seven course modules."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.datasets._files import as_categories, read_bundled_csv, select
from graphxfer.schema import Column, Schema

__all__ = ["OULAD_MODULES", "load_oulad"]

OULAD_MODULES: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG")
"""The seven course modules (sites) of OULAD."""

_KEY = ["code_module", "code_presentation", "id_student"]
_PRESENTATION = ["code_module", "code_presentation"]
_AT_RISK = {"Fail": 1, "Withdrawn": 1, "Pass": 0, "Distinction": 0}
_REGIONS = [
    "East Anglian Region",
    "East Midlands Region",
    "Ireland",
    "London Region",
    "North Region",
    "North Western Region",
    "Scotland",
    "South East Region",
    "South Region",
    "South West Region",
    "Wales",
    "West Midlands Region",
    "Yorkshire Region",
]
_EDUCATION = [
    "No Formal quals",
    "Lower Than A Level",
    "A Level or Equivalent",
    "HE Qualification",
    "Post Graduate Qualification",
]
_IMD = [f"{10 * i}-{10 * (i + 1)}%" for i in range(10)]
_AGE = ["0-35", "35-55", "55<="]
_DAY_BOUNDS = (-400.0, 500.0)
_MAX_ASSESSMENTS = 20.0


def _schema(cutoff_day: float) -> Schema:
    cut = f"{cutoff_day:g}"
    lo, hi = _DAY_BOUNDS
    return Schema(
        [
            Column(
                "registration_id",
                "categorical",
                "id",
                description="the registration: '<code_module>-<code_presentation>-<id_student>'",
            ),
            Column("site", "categorical", "group", description="course module (code_module)"),
            Column(
                "code_presentation",
                "categorical",
                "ignore",
                description="presentation: year and start month (B = February, J = October)",
            ),
            Column(
                "id_student",
                "categorical",
                "ignore",
                description="student; one student may be registered on several modules",
            ),
            Column("gender", "binary", categories=["F", "M"], description="student's gender"),
            Column("region", "categorical", categories=_REGIONS, description="home region"),
            Column(
                "highest_education",
                "ordinal",
                levels=_EDUCATION,
                description="highest education on entry",
            ),
            Column(
                "imd_band",
                "ordinal",
                levels=_IMD,
                description="deprivation (IMD) band of the home area, 0-10% = most deprived",
            ),
            Column("age_band", "ordinal", levels=_AGE, description="age band"),
            Column(
                "num_of_prev_attempts",
                lower=0,
                upper=10,
                unit="attempts",
                description="earlier attempts at this module",
            ),
            Column(
                "studied_credits",
                lower=0,
                upper=700,
                unit="credits",
                description="total credits of the modules the student is studying",
            ),
            Column(
                "disability", "binary", categories=["N", "Y"], description="declared disability"
            ),
            Column(
                "date_registration",
                lower=lo,
                upper=hi,
                unit="days",
                description="registration day relative to the module start (negative = before)",
            ),
            Column(
                "date_unregistration",
                lower=lo,
                upper=hi,
                unit="days",
                description=(
                    f"unregistration day relative to the module start, if before day {cut}; "
                    "otherwise missing"
                ),
            ),
            Column(
                "unregistered",
                "binary",
                description=f"unregistered before day {cut}",
            ),
            Column(
                "n_submitted",
                lower=0,
                upper=_MAX_ASSESSMENTS,
                unit="assessments",
                description=f"tutor- and computer-marked assessments submitted before day {cut}",
            ),
            Column(
                "n_late",
                lower=0,
                upper=_MAX_ASSESSMENTS,
                unit="assessments",
                description=f"of those, submitted after their due date (before day {cut})",
            ),
            Column(
                "share_submitted",
                lower=0,
                upper=1,
                description=(
                    f"share of the assessments due before day {cut} that were submitted before "
                    f"day {cut} (missing when none was due)"
                ),
            ),
            Column(
                "mean_score",
                lower=0,
                upper=100,
                unit="points",
                description=f"mean score of the assessments submitted before day {cut}",
            ),
            Column(
                "weighted_score",
                lower=0,
                upper=100,
                unit="points",
                description=(
                    f"score of the assessments submitted before day {cut}, weighted by their "
                    "weight in the module mark (missing when all weights are 0)"
                ),
            ),
            Column(
                "at_risk",
                "binary",
                "target",
                description="1 = final result Fail or Withdrawn, 0 = Pass or Distinction",
            ),
        ],
        name="oulad",
    )


def _assessment_features(
    keys: pd.DataFrame,
    assessments: pd.DataFrame,
    student_assessment: pd.DataFrame,
    cutoff_day: float,
) -> pd.DataFrame:
    """Per-registration aggregates of the non-exam assessments submitted before the cutoff."""
    tasks = assessments.loc[
        assessments["assessment_type"] != "Exam",
        [*_PRESENTATION, "id_assessment", "date", "weight"],
    ]
    subs = student_assessment[["id_assessment", "id_student", "date_submitted", "score"]]
    subs = subs.merge(tasks, on="id_assessment", how="inner")
    subs = subs.loc[subs["date_submitted"] < cutoff_day].copy()
    scored = subs["score"].notna()
    weight = subs["weight"].where(scored, 0.0)
    subs["late"] = (subs["date_submitted"] > subs["date"]).astype(np.int64)
    subs["due"] = (subs["date"] < cutoff_day).astype(np.int64)
    subs["w"] = weight
    subs["ws"] = subs["score"].where(scored, 0.0) * weight
    agg = subs.groupby(_KEY, sort=False).agg(
        n_submitted=("id_assessment", "size"),
        n_late=("late", "sum"),
        n_due_submitted=("due", "sum"),
        mean_score=("score", "mean"),
        w=("w", "sum"),
        ws=("ws", "sum"),
    )
    n_due = (
        tasks.loc[tasks["date"] < cutoff_day]
        .groupby(_PRESENTATION, sort=False)
        .size()
        .rename("n_due")
    )
    out = keys[_KEY].merge(agg.reset_index(), on=_KEY, how="left")
    out = out.merge(n_due.reset_index(), on=_PRESENTATION, how="left")
    for name in ("n_submitted", "n_late", "n_due_submitted", "n_due", "w", "ws"):
        out[name] = out[name].fillna(0.0).astype("float64")
    due = out["n_due"].to_numpy()
    out["share_submitted"] = np.divide(
        out["n_due_submitted"].to_numpy(),
        due,
        out=np.full(len(out), np.nan),
        where=due > 0,
    )
    w = out["w"].to_numpy()
    out["weighted_score"] = np.divide(
        out["ws"].to_numpy(), w, out=np.full(len(out), np.nan), where=w > 0
    )
    return out[["n_submitted", "n_late", "share_submitted", "mean_score", "weighted_score"]]


def _oulad_frame(
    info: pd.DataFrame,
    registration: pd.DataFrame,
    assessments: pd.DataFrame,
    student_assessment: pd.DataFrame,
    cutoff_day: float,
) -> pd.DataFrame:
    """Build the one-row-per-registration frame from the raw OULAD tables.

    Only information available on day ``cutoff_day`` of the presentation enters the
    features: registration data, an unregistration that happened before the cutoff, and the
    tutor- and computer-marked assessments *submitted* before the cutoff. Exam results and
    everything later are never read.
    """
    frame = info.merge(
        registration[[*_KEY, "date_registration", "date_unregistration"]],
        on=_KEY,
        how="left",
        validate="one_to_one",
    )
    unreg = pd.to_numeric(frame["date_unregistration"]).astype("float64")
    early = unreg < cutoff_day
    frame["date_unregistration"] = unreg.where(early)
    frame["unregistered"] = early.astype(np.int64)
    frame["date_registration"] = pd.to_numeric(frame["date_registration"]).astype("float64")
    frame["imd_band"] = frame["imd_band"].replace({"10-20": "10-20%"})
    feats = _assessment_features(frame, assessments, student_assessment, cutoff_day)
    frame = pd.concat([frame.reset_index(drop=True), feats.reset_index(drop=True)], axis=1)
    result = frame["final_result"].map(_AT_RISK)
    if result.isna().any():
        bad = sorted(set(frame.loc[result.isna(), "final_result"].astype(str)))
        raise ValueError(f"unexpected OULAD final_result values {bad}")
    frame["at_risk"] = result.astype(np.int64)
    frame["site"] = frame["code_module"]
    frame["registration_id"] = (
        frame["code_module"].astype(str)
        + "-"
        + frame["code_presentation"].astype(str)
        + "-"
        + frame["id_student"].astype(str)
    )
    frame["id_student"] = frame["id_student"].astype(str)
    return frame


def _read(name: str) -> pd.DataFrame:
    return read_bundled_csv("oulad", f"{name}.csv.gz", keep_default_na=False, na_values=[""])


def load_oulad(modules: str | Iterable[str] | None = None, cutoff_day: float = 60) -> Cohort:
    """Load OULAD: 32,593 student-module registrations at The Open University (UK), 2013-2014.

    Early-warning prediction: on day ``cutoff_day`` of a module presentation, which students
    will fail or withdraw? The seven course modules (``AAA`` to ``GGG``) are the sites; ``AAA``
    (748 registrations) is a natural small target.

    The data are bundled with the package (The Open University, CC BY 4.0; cite Kuzilek,
    Hlosta and Zdrahal, Scientific Data 4, 170171, 2017). The daily click logs are not
    bundled. See ``docs/datasets.md``.

    Parameters
    ----------
    modules : str or iterable of str, optional
        Which modules to load (default all seven, ``"AAA"`` ... ``"GGG"``).
    cutoff_day : float, default=60
        Prediction time, in days since the start of the presentation. Only information
        available before this day enters the features.

    Returns
    -------
    Cohort
        One row per registration (a student on one module presentation). The target
        ``at_risk`` is **1 for an unsuccessful outcome (final result Fail or Withdrawn) and 0
        for success (Pass or Distinction)**. The group column ``site`` is the module
        (``code_module``). The id column ``registration_id`` is
        ``"<code_module>-<code_presentation>-<id_student>"``: one student may be registered on
        several modules or presentations, and each registration is its own row; the student
        number is kept as ``id_student`` (role ``ignore``), as is ``code_presentation``.
        Features: demographics (``gender``, ``region``, ``highest_education``, ``imd_band``
        with the source's ``"10-20"`` written ``"10-20%"``, ``age_band``, ``disability``),
        ``num_of_prev_attempts``, ``studied_credits``, ``date_registration``, and
        ``date_unregistration`` / ``unregistered`` only for an unregistration before the
        cutoff. Assessment aggregates use only the tutor- and computer-marked assessments
        *submitted* before the cutoff (their scores are taken as known at the cutoff):
        ``n_submitted``, ``n_late`` (submitted after the due date), ``share_submitted`` (of the
        assessments due before the cutoff), ``mean_score`` and ``weighted_score`` (by the
        assessment's weight in the module mark; missing for module GGG, whose assessments all
        weigh 0). Exam results are never used. Built with ``all_missing="keep"``.

    Raises
    ------
    ValueError
        An unknown module or a cutoff that is not a finite number.

    Examples
    --------
    >>> from graphxfer.datasets import load_oulad
    >>> cohort = load_oulad()
    >>> len(cohort), round(float(cohort.y.mean()), 3)
    (32593, 0.528)
    >>> aaa = load_oulad("AAA", cutoff_day=30)
    >>> len(aaa), int(aaa.y.sum())
    (748, 217)
    """
    chosen = select(modules, OULAD_MODULES, "modules")
    if isinstance(cutoff_day, bool) or not isinstance(cutoff_day, (int, float, np.number)):
        raise ValueError(f"cutoff_day must be a number of days, got {cutoff_day!r}")
    cutoff = float(cutoff_day)
    if not math.isfinite(cutoff):
        raise ValueError(f"cutoff_day must be finite, got {cutoff_day!r}")
    info = _read("studentInfo")
    info = info.loc[info["code_module"].isin(chosen)]
    order = {m: i for i, m in enumerate(chosen)}
    info = info.iloc[np.argsort(info["code_module"].map(order).to_numpy(), kind="stable")]
    registration = _read("studentRegistration")
    registration = registration.loc[registration["code_module"].isin(chosen)]
    assessments = _read("assessments")
    assessments = assessments.loc[assessments["code_module"].isin(chosen)]
    student_assessment = _read("studentAssessment")
    frame = _oulad_frame(info, registration, assessments, student_assessment, cutoff)
    schema = _schema(cutoff)
    labels = [
        c.name for c in schema if c.kind != "numeric" and c.role in ("feature", "group", "target")
    ]
    as_categories(frame, labels)
    return Cohort(frame[schema.names], schema, all_missing="keep", name="oulad")
