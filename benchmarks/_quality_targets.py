"""The target rows of the quality benchmark: which cohort is the source, which site is the
target, and how many target records a model may train on.

Every loader returns ``(source, target, notes)``: two cohorts with the same schema and a list
of sentences for the document (subsampling, persons removed from the source). The source never
holds a person of the target site: a person who occurs at both is removed from the source, so
that no pretrained model has seen a target test record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

DIABETES_TARGET_SITE = "Transfer from a hospital"
"""Target admission source of the diabetes row: 3,187 encounters of 3,064 patients, 9.7%
readmitted within 30 days; large enough for a held-out part of about 2,900 encounters."""

DIABETES_SOURCE_ROWS = 20_000
"""The diabetes source (about 97,000 encounters at the other admission sources) is subsampled,
by patient, to about this many encounters, so that a full run stays within its time budget."""

SYNTHETIC = {
    "n_sites": 4,
    "n_per_site": [3000, 3000, 3000, 1000],
    "shift": 1.5,
    "random_state": 7,
}
"""``make_multisite`` options of the synthetic row: strong covariate shift (site means
1.5 standard deviations apart along random directions), one true logistic model for all
sites, target ``site3``."""


@dataclass(frozen=True)
class Target:
    """One row of the benchmark: a source, a target site and a training size ``n``."""

    key: str
    title: str
    source_label: str
    target_label: str
    n: int
    load: Callable[[], tuple[Any, Any, list[str]]] = field(repr=False, compare=False)

    @property
    def source_key(self) -> str:
        """Rows with the same ``source_key`` share one source cohort (and one encoder)."""
        return f"{self.title}|{self.source_label}"


def _without_shared_persons(source: Any, target: Any, column: str, what: str) -> tuple[Any, str]:
    """``source`` without the rows whose ``column`` value occurs in ``target``; a note."""
    shared = source.data[column].isin(set(target.data[column])).to_numpy()
    if not shared.any():
        return source, ""
    note = (
        f"{int(shared.sum()):,} source rows of {what} who also occur at the target site "
        "are removed from the source."
    )
    return source.subset(~shared), note


@cache
def _heart() -> Any:
    from graphxfer.datasets import load_heart_disease

    return load_heart_disease()


def _heart_rows(target_site: str, source_sites: tuple[str, ...]) -> Callable[[], Any]:
    def load() -> tuple[Any, Any, list[str]]:
        heart = _heart()
        return heart.select_groups(list(source_sites)), heart.select_groups(target_site), []

    return load


@cache
def _student() -> tuple[Any, Any, list[str]]:
    from graphxfer.datasets import load_student_performance

    cohort = load_student_performance()
    source = cohort.select_groups(["GP-por", "MS-por"])
    target = cohort.select_groups(["GP-mat", "MS-mat"])
    note = (
        "Outcome: pass (final grade G3 >= 10 of 20; G1 and G2 are not features). Target: both "
        "schools' mathematics records; source: both schools' Portuguese records. About 382 "
        "students are in both files, but the data hold no key that links them, so they cannot "
        "be removed from the source."
    )
    return source, target, [note]


@cache
def _oulad() -> tuple[Any, Any, list[str]]:
    from graphxfer.datasets import OULAD_MODULES, load_oulad

    cohort = load_oulad()
    target = cohort.select_groups("AAA")
    source = cohort.select_groups([m for m in OULAD_MODULES if m != "AAA"])
    source, note = _without_shared_persons(source, target, "id_student", "students")
    notes = ["Outcome: at risk (Fail or Withdrawn) at day 60 of the presentation."]
    return source, target, notes + ([note] if note else [])


@cache
def _diabetes() -> tuple[Any, Any, list[str]]:
    from graphxfer.datasets import load_diabetes_130

    cohort = load_diabetes_130()
    target = cohort.select_groups(DIABETES_TARGET_SITE)
    others = [s for s in cohort.data["site"].unique() if s != DIABETES_TARGET_SITE]
    source = cohort.select_groups(others)
    n_full = len(source)
    source, shared_note = _without_shared_persons(source, target, "patient_nbr", "patients")
    # subsample by patient (all encounters of a chosen patient), seeded
    person = source.person_index
    order = np.random.default_rng(0).permutation(int(person.max()) + 1)
    rows_per_person = np.bincount(person)
    kept = order[: int(np.searchsorted(np.cumsum(rows_per_person[order]), DIABETES_SOURCE_ROWS))]
    source = source.subset(np.isin(person, kept))
    notes = [
        "Outcome: readmitted within 30 days. Sites are admission sources (the data hold no "
        f"hospital identifier); target: {DIABETES_TARGET_SITE!r}, n counts patients (a "
        "patient's repeat encounters stay together).",
        f"The source (all other admission sources, {n_full:,} encounters) is subsampled by "
        f"patient with a fixed seed to {len(source):,} encounters of {source.n_persons:,} "
        "patients to keep the run within its time budget.",
    ]
    return source, target, notes + ([shared_note] if shared_note else [])


@cache
def _synthetic() -> tuple[Any, Any, list[str]]:
    from graphxfer.datasets import make_multisite

    cohort = make_multisite(**SYNTHETIC)  # type: ignore[arg-type]
    target = cohort.select_groups("site3")
    source = cohort.select_groups(["site0", "site1", "site2"])
    options = ", ".join(f"{k}={v}" for k, v in SYNTHETIC.items())
    return source, target, [f"`make_multisite({options})`; target site3, source site0-site2."]


TARGETS: tuple[Target, ...] = (
    Target(
        "heart-va",
        "heart disease",
        "cleveland + hungarian",
        "va",
        50,
        _heart_rows("va", ("cleveland", "hungarian")),
    ),
    Target(
        "heart-hungarian",
        "heart disease",
        "cleveland + switzerland + va",
        "hungarian",
        50,
        _heart_rows("hungarian", ("cleveland", "switzerland", "va")),
    ),
    Target("student-mat-30", "student performance", "Portuguese", "mathematics", 30, _student),
    Target("student-mat-100", "student performance", "Portuguese", "mathematics", 100, _student),
    Target("oulad-aaa", "OULAD", "modules BBB-GGG", "module AAA", 100, _oulad),
    Target(
        "diabetes",
        "diabetes 130 hospitals",
        "other admission sources (subsampled)",
        DIABETES_TARGET_SITE,
        200,
        _diabetes,
    ),
    Target("synthetic", "synthetic (make_multisite)", "site0-site2", "site3", 100, _synthetic),
)
"""The seven rows of the full benchmark, in order."""

QUICK_ROWS = ("heart-va",)
"""Rows of ``--quick``."""
