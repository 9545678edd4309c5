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

Every cohort that loads by name is registered in :data:`LOADERS` (a :class:`DatasetLoader`
each: the four above and ``synthetic``); :data:`DATASETS`, the names of the bundled cohorts,
and the data sets of the command line (``--dataset``) derive from it, so a cohort registered
with :func:`register_dataset` is known to all of them.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from graphxfer.datasets._diabetes import (
    DIABETES_MEDICATIONS,
    admission_source_names,
    load_diabetes_130,
)
from graphxfer.datasets._files import data_file
from graphxfer.datasets._heart import HEART_SITES, load_heart_disease
from graphxfer.datasets._oulad import OULAD_MODULES, load_oulad
from graphxfer.datasets._registry import (
    LOADERS,
    DatasetLoader,
    dataset_loader,
    dataset_names,
    register_dataset,
)
from graphxfer.datasets._student import (
    STUDENT_SCHOOLS,
    STUDENT_SUBJECTS,
    load_student_performance,
)
from graphxfer.datasets.synthetic import make_multisite

if TYPE_CHECKING:
    DATASETS: tuple[str, ...]

__all__ = [
    "DATASETS",
    "DIABETES_MEDICATIONS",
    "HEART_SITES",
    "LOADERS",
    "OULAD_MODULES",
    "STUDENT_SCHOOLS",
    "STUDENT_SUBJECTS",
    "DatasetLoader",
    "admission_source_names",
    "dataset_loader",
    "dataset_names",
    "load_diabetes_130",
    "load_heart_disease",
    "load_oulad",
    "load_student_performance",
    "make_multisite",
    "register_dataset",
    "source_info",
]

register_dataset(
    DatasetLoader(
        "heart_disease", load_heart_disease, "Heart disease (UCI)", "4 hospitals", bundled=True
    )
)
register_dataset(
    DatasetLoader(
        "student_performance",
        load_student_performance,
        "Student performance (UCI)",
        "2 schools x 2 subjects",
        bundled=True,
    )
)
register_dataset(DatasetLoader("oulad", load_oulad, "OULAD", "7 course modules", bundled=True))
register_dataset(
    DatasetLoader(
        "diabetes_130",
        load_diabetes_130,
        "Diabetes 130-US hospitals",
        "admission sources",
        bundled=True,
    )
)
register_dataset(
    DatasetLoader(
        "synthetic",
        partial(make_multisite, random_state=0),
        "Synthetic (make_multisite, random_state=0)",
        "3 sites",
    )
)


def __getattr__(name: str) -> Any:
    if name == "DATASETS":
        # names of the bundled cohorts (also the ``name`` of the cohort each loader returns)
        return dataset_names(bundled=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def source_info(name: str) -> str:
    """Source, licence, attribution and citation of a bundled cohort.

    Parameters
    ----------
    name : {"diabetes_130", "heart_disease", "oulad", "student_performance"}
        The cohort (one of :data:`DATASETS`).

    Returns
    -------
    str
        The Markdown text of the cohort's ``LICENSE-and-SOURCE.md``.

    Raises
    ------
    ValueError
        An unknown cohort name, or a cohort that does not ship with graphxfer.

    Examples
    --------
    >>> from graphxfer.datasets import source_info
    >>> "CC BY 4.0" in source_info("heart_disease")
    True
    """
    bundled = dataset_names(bundled=True)
    if name not in bundled:
        raise ValueError(f"unknown dataset {name!r}; bundled datasets are {list(bundled)}")
    return data_file(name, "LICENSE-and-SOURCE.md").read_text(encoding="utf-8")
