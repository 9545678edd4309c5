"""Bundled public cohorts and a synthetic multi-site generator.

Four real, openly licensed (CC BY 4.0) multi-site cohorts ship with the package and load
offline, each as one :class:`~graphxfer.Cohort` with a hand-written schema and its site in the
group column ``site``:

- :func:`load_heart_disease`: 920 patients of 4 hospitals; target: angiographic heart disease.
- :func:`load_student_performance`: 1,044 records of 2 schools x 2 subjects; target: pass
  (final grade >= 10 of 20).
- :func:`load_oulad`: 32,593 registrations on 7 course modules; target: at risk (Fail or
  Withdrawn).
- :func:`load_diabetes_130`: 101,766 encounters, sites by admission source; target:
  readmitted within 30 days.

:func:`make_multisite` generates synthetic cohorts with a known true model and controlled
covariate, label and missingness shift between sites. :func:`source_info` returns the source,
licence and required attribution of a bundled cohort.
"""

from __future__ import annotations

from graphxfer.datasets._diabetes import (
    DIABETES_MEDICATIONS,
    admission_source_names,
    load_diabetes_130,
)
from graphxfer.datasets._files import data_file
from graphxfer.datasets._heart import HEART_SITES, load_heart_disease
from graphxfer.datasets._oulad import OULAD_MODULES, load_oulad
from graphxfer.datasets._student import (
    STUDENT_SCHOOLS,
    STUDENT_SUBJECTS,
    load_student_performance,
)
from graphxfer.datasets.synthetic import make_multisite

__all__ = [
    "DATASETS",
    "DIABETES_MEDICATIONS",
    "HEART_SITES",
    "OULAD_MODULES",
    "STUDENT_SCHOOLS",
    "STUDENT_SUBJECTS",
    "admission_source_names",
    "load_diabetes_130",
    "load_heart_disease",
    "load_oulad",
    "load_student_performance",
    "make_multisite",
    "source_info",
]

DATASETS: tuple[str, ...] = ("heart_disease", "student_performance", "oulad", "diabetes_130")
"""Names of the bundled cohorts (also the ``name`` of the cohort each loader returns)."""


def source_info(name: str) -> str:
    """Source, licence, attribution and citation of a bundled cohort.

    Parameters
    ----------
    name : {"heart_disease", "student_performance", "oulad", "diabetes_130"}
        The cohort.

    Returns
    -------
    str
        The Markdown text of the cohort's ``LICENSE-and-SOURCE.md``.

    Raises
    ------
    ValueError
        An unknown cohort name.

    Examples
    --------
    >>> from graphxfer.datasets import source_info
    >>> "CC BY 4.0" in source_info("heart_disease")
    True
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; bundled datasets are {list(DATASETS)}")
    return data_file(name, "LICENSE-and-SOURCE.md").read_text(encoding="utf-8")
