"""UCI Heart Disease: four hospitals, the processed 14-attribute files."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.datasets._files import as_categories, read_bundled_csv, select
from graphxfer.schema import Column, Schema

__all__ = ["HEART_SITES", "load_heart_disease"]

HEART_SITES: tuple[str, ...] = ("cleveland", "hungarian", "switzerland", "va")
"""Sites of the heart-disease cohort, in their customary order."""

_RAW_COLUMNS = [
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
    "num",
]
_LABELS = ["cp", "restecg", "slope", "thal"]


def _schema() -> Schema:
    return Schema(
        [
            Column("record_id", "categorical", "id", description="site and row number"),
            Column("site", "categorical", "group", description="hospital"),
            Column("age", lower=18, upper=100, unit="years", description="age"),
            Column("sex", "binary", description="sex (1 = male, 0 = female)"),
            Column(
                "cp",
                "categorical",
                categories=["1", "2", "3", "4"],
                description=(
                    "chest pain type (1 typical angina, 2 atypical angina, 3 non-anginal pain, "
                    "4 asymptomatic)"
                ),
            ),
            Column(
                "trestbps",
                lower=50,
                upper=250,
                unit="mm Hg",
                missing_values=[0],
                description="resting blood pressure on admission (0 = not measured)",
            ),
            Column(
                "chol",
                lower=50,
                upper=800,
                unit="mg/dl",
                missing_values=[0],
                description="serum cholesterol (0 = not measured)",
            ),
            Column("fbs", "binary", description="fasting blood sugar > 120 mg/dl"),
            Column(
                "restecg",
                "categorical",
                categories=["0", "1", "2"],
                description=(
                    "resting ECG (0 normal, 1 ST-T wave abnormality, 2 left ventricular "
                    "hypertrophy)"
                ),
            ),
            Column(
                "thalach",
                lower=40,
                upper=250,
                unit="beats/min",
                description="maximum heart rate achieved",
            ),
            Column("exang", "binary", description="exercise-induced angina"),
            Column(
                "oldpeak",
                lower=-5,
                upper=10,
                unit="mm",
                description="ST depression induced by exercise relative to rest",
            ),
            Column(
                "slope",
                "categorical",
                categories=["1", "2", "3"],
                description="slope of the peak exercise ST segment (1 up, 2 flat, 3 down)",
            ),
            Column(
                "ca",
                lower=0,
                upper=3,
                unit="vessels",
                description="number of major vessels (0-3) coloured by fluoroscopy",
            ),
            Column(
                "thal",
                "categorical",
                categories=["3", "6", "7"],
                description="thallium scan (3 normal, 6 fixed defect, 7 reversible defect)",
            ),
            Column(
                "target",
                "binary",
                "target",
                description="heart disease: > 50% narrowing of a major vessel (num > 0)",
            ),
        ],
        name="heart_disease",
    )


def _read_site(site: str) -> pd.DataFrame:
    frame = read_bundled_csv(
        "heart_disease",
        f"processed.{site}.data.gz",
        header=None,
        names=_RAW_COLUMNS,
        na_values=["?"],
        keep_default_na=False,
        dtype="float64",
    )
    n = len(frame)
    frame.insert(0, "site", site)
    frame.insert(0, "record_id", [f"{site}-{i:04d}" for i in range(1, n + 1)])
    return frame


def load_heart_disease(sites: str | Iterable[str] = HEART_SITES) -> Cohort:
    """Load the UCI Heart Disease cohort: 920 patients from four hospitals.

    Coronary angiography patients at the Cleveland Clinic (303), the Hungarian Institute of
    Cardiology, Budapest (294), the University Hospitals of Zurich and Basel ("switzerland",
    123) and the V.A. Medical Center, Long Beach ("va", 200), 1981-1988, in the processed
    14-attribute form. The sites differ strongly in class balance and in which tests were done,
    which makes the cohort a realistic transfer test; Switzerland is a natural small target.

    The data are bundled with the package (UCI Machine Learning Repository, dataset 45,
    CC BY 4.0; creators A. Janosi, W. Steinbrunn, M. Pfisterer and R. Detrano, who ask that
    publications name them). See ``docs/datasets.md``.

    Parameters
    ----------
    sites : str or iterable of str, default=("cleveland", "hungarian", "switzerland", "va")
        Which hospitals to load, in this order.

    Returns
    -------
    Cohort
        One row per patient. The target ``target`` is 1 when the angiogram showed more than
        50% narrowing of a major vessel (``num > 0``; ``num`` itself is dropped). The group
        column ``site`` holds the hospital, the id column ``record_id`` is ``"<site>-NNNN"``
        (row number in the site's file). ``?`` and the impossible value 0 of ``chol`` and
        ``trestbps`` are missing. ``cp``, ``restecg``, ``slope`` and ``thal`` are categorical,
        ``sex``, ``fbs`` and ``exang`` binary, ``ca`` numeric in 0-3. The cohort is built with
        ``all_missing="keep"``: Switzerland never measured cholesterol, so ``chol`` is
        entirely missing there (and ``ca`` nearly so at three sites).

    Raises
    ------
    ValueError
        An unknown site name.

    Examples
    --------
    >>> from graphxfer.datasets import load_heart_disease
    >>> cohort = load_heart_disease()
    >>> cohort.groups.value_counts().to_dict()
    {'cleveland': 303, 'hungarian': 294, 'va': 200, 'switzerland': 123}
    >>> swiss = load_heart_disease("switzerland")
    >>> len(swiss), int(swiss.y.sum())
    (123, 115)
    """
    chosen = select(sites, HEART_SITES, "sites")
    frame = pd.concat([_read_site(site) for site in chosen], ignore_index=True)
    for name in ("chol", "trestbps"):
        frame[name] = frame[name].mask(frame[name] == 0)
    frame["target"] = (frame.pop("num") > 0).astype(np.int64)
    as_categories(frame, ["site", "target", *_LABELS])
    schema = _schema()
    return Cohort(frame[schema.names], schema, all_missing="keep", name="heart_disease")
