"""UCI Student Performance: two Portuguese schools, two subjects."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.datasets._files import as_categories, read_bundled_csv, select
from graphxfer.schema import Column, Schema

__all__ = ["STUDENT_SCHOOLS", "STUDENT_SUBJECTS", "load_student_performance"]

STUDENT_SUBJECTS: tuple[str, ...] = ("mat", "por")
"""Subjects: mathematics and Portuguese language (one file each)."""

STUDENT_SCHOOLS: tuple[str, ...] = ("GP", "MS")
"""Schools: Gabriel Pereira and Mousinho da Silveira."""

_YES_NO = [
    ("schoolsup", "extra educational support"),
    ("famsup", "family educational support"),
    ("paid", "extra paid classes within the course subject"),
    ("activities", "extra-curricular activities"),
    ("nursery", "attended nursery school"),
    ("higher", "wants to take higher education"),
    ("internet", "Internet access at home"),
    ("romantic", "in a romantic relationship"),
]
_LIKERT = [
    ("famrel", "quality of family relationships (1 very bad - 5 excellent)"),
    ("freetime", "free time after school (1 very low - 5 very high)"),
    ("goout", "going out with friends (1 very low - 5 very high)"),
    ("Dalc", "workday alcohol consumption (1 very low - 5 very high)"),
    ("Walc", "weekend alcohol consumption (1 very low - 5 very high)"),
    ("health", "current health status (1 very bad - 5 very good)"),
]
_EDUCATION = (
    "(0 none, 1 primary education (4th grade), 2 5th to 9th grade, 3 secondary education, "
    "4 higher education)"
)
_JOBS = ["at_home", "health", "other", "services", "teacher"]


def _schema(include_period_grades: bool) -> Schema:
    levels5 = ["1", "2", "3", "4", "5"]
    levels4 = ["1", "2", "3", "4"]
    cols = [
        Column("record_id", "categorical", "id", description="subject and row number in its file"),
        Column("site", "categorical", "group", description="school and subject, e.g. 'GP-mat'"),
        Column("school", "categorical", "ignore", description="GP or MS (part of the site)"),
        Column("subject", "categorical", "ignore", description="mat or por (part of the site)"),
        Column("sex", "binary", categories=["F", "M"], description="student's sex"),
        Column("age", lower=10, upper=25, unit="years", description="student's age"),
        Column(
            "address", "binary", categories=["R", "U"], description="home address: rural or urban"
        ),
        Column(
            "famsize",
            "binary",
            categories=["LE3", "GT3"],
            description="family size: at most 3, or more than 3",
        ),
        Column(
            "Pstatus",
            "binary",
            categories=["A", "T"],
            description="parents' cohabitation status: apart or together",
        ),
        Column(
            "Medu",
            "ordinal",
            levels=["0", "1", "2", "3", "4"],
            description=f"mother's education {_EDUCATION}",
        ),
        Column(
            "Fedu",
            "ordinal",
            levels=["0", "1", "2", "3", "4"],
            description=f"father's education {_EDUCATION}",
        ),
        Column("Mjob", "categorical", categories=_JOBS, description="mother's job"),
        Column("Fjob", "categorical", categories=_JOBS, description="father's job"),
        Column(
            "reason",
            "categorical",
            categories=["course", "home", "other", "reputation"],
            description="reason to choose this school",
        ),
        Column(
            "guardian",
            "categorical",
            categories=["father", "mother", "other"],
            description="student's guardian",
        ),
        Column(
            "traveltime",
            "ordinal",
            levels=levels4,
            description="home to school travel time (1 <15 min, 2 15-30 min, 3 30-60 min, 4 >1 h)",
        ),
        Column(
            "studytime",
            "ordinal",
            levels=levels4,
            description="weekly study time (1 <2 h, 2 2-5 h, 3 5-10 h, 4 >10 h)",
        ),
        Column(
            "failures",
            lower=0,
            upper=4,
            unit="classes",
            description="number of past class failures (n for 1 <= n < 3, else 4)",
        ),
    ]
    cols += [Column(name, "binary", categories=["no", "yes"], description=d) for name, d in _YES_NO]
    cols += [Column(name, "ordinal", levels=levels5, description=d) for name, d in _LIKERT]
    cols.append(
        Column("absences", lower=0, upper=100, unit="days", description="number of school absences")
    )
    if include_period_grades:
        cols += [
            Column("G1", lower=0, upper=20, unit="points", description="first period grade"),
            Column("G2", lower=0, upper=20, unit="points", description="second period grade"),
        ]
    cols.append(
        Column("pass", "binary", "target", description="passed: final grade G3 >= 10 (of 20)")
    )
    return Schema(cols, name="student_performance")


def _read_subject(subject: str) -> pd.DataFrame:
    frame = read_bundled_csv(
        "student_performance",
        f"student-{subject}.csv.gz",
        sep=";",
        keep_default_na=False,
        na_values=[""],
    )
    frame.insert(0, "subject", subject)
    frame.insert(0, "record_id", [f"{subject}-{i:04d}" for i in range(1, len(frame) + 1)])
    return frame


def load_student_performance(
    subjects: str | Iterable[str] = STUDENT_SUBJECTS,
    schools: str | Iterable[str] = STUDENT_SCHOOLS,
    include_period_grades: bool = False,
) -> Cohort:
    """Load the UCI Student Performance cohort: two Portuguese secondary schools, two subjects.

    Students of Gabriel Pereira ("GP") and Mousinho da Silveira ("MS"), 2005-2006, in
    mathematics (395 records) and Portuguese language (649 records), with demographic, family,
    school and social attributes. The four school-subject combinations are the sites; MS in
    mathematics (46 records) is a natural small target.

    The data are bundled with the package (UCI Machine Learning Repository, dataset 320, by
    P. Cortez, CC BY 4.0; cite P. Cortez and A. Silva, FUBUTEC 2008). See ``docs/datasets.md``.

    Parameters
    ----------
    subjects : str or iterable of {"mat", "por"}, default=("mat", "por")
        Which subject files to load, in this order.
    schools : str or iterable of {"GP", "MS"}, default=("GP", "MS")
        Which schools to keep.
    include_period_grades : bool, default=False
        Keep the first and second period grades ``G1`` and ``G2`` as features. They are
        strongly correlated with the final grade, which makes the task much easier.

    Returns
    -------
    Cohort
        One row per record. The target ``pass`` is 1 when the final grade ``G3`` is at least
        10 of 20 (``G3`` is dropped). The group column ``site`` is ``"<school>-<subject>"``
        (``"GP-mat"``, ``"MS-mat"``, ``"GP-por"``, ``"MS-por"``); ``school`` and ``subject``
        are kept with role ``ignore``. The id column ``record_id`` is ``"<subject>-NNNN"`` (row
        number in the subject's file): about 382 students appear in both files, but the data
        hold no key that links them, so records, not persons, are the unit. Yes/no attributes
        are binary (``categories=["no", "yes"]``); parents' education, travel and study time
        and the 1-5 ratings are ordinal; ``age``, ``failures`` and ``absences`` are numeric.

    Raises
    ------
    ValueError
        An unknown subject or school.

    Examples
    --------
    >>> from graphxfer.datasets import load_student_performance
    >>> cohort = load_student_performance("mat")
    >>> cohort.groups.value_counts().to_dict()
    {'GP-mat': 349, 'MS-mat': 46}
    >>> small = load_student_performance("mat", schools="MS")
    >>> len(small), int(small.y.sum())
    (46, 29)
    """
    chosen_subjects = select(subjects, STUDENT_SUBJECTS, "subjects")
    chosen_schools = select(schools, STUDENT_SCHOOLS, "schools")
    frame = pd.concat([_read_subject(s) for s in chosen_subjects], ignore_index=True)
    frame = frame.loc[frame["school"].isin(chosen_schools)].reset_index(drop=True)
    frame["site"] = frame["school"] + "-" + frame["subject"]
    frame["pass"] = (pd.to_numeric(frame.pop("G3")) >= 10).astype(np.int64)
    for name in ("G1", "G2"):
        frame[name] = pd.to_numeric(frame[name])
    schema = _schema(include_period_grades)
    labels = [
        c.name for c in schema if c.kind != "numeric" and c.role in ("feature", "group", "target")
    ]
    as_categories(frame, labels)
    return Cohort(frame[schema.names], schema, name="student_performance")
