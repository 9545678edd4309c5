"""Validation folds of the source cohort for the encoder selection, and its subsampling.

With two or more sites (the cohort's group column) every site is held out exactly once: one
fold per site (leave-one-site-out), or, with more sites than ``max_folds``, ``max_folds`` folds
of whole sites. A single-site source (or ``cv=K``) falls back to K-fold: grouped by person when
person ids repeat, stratified by outcome otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.exceptions import GraphxferError

__all__ = ["Fold", "source_folds", "subsample_source"]


@dataclass(frozen=True, eq=False)
class Fold:
    """One validation fold of the source cohort.

    Attributes
    ----------
    name : str
        The held-out site(s) joined by ``+``, or ``fold <i>`` for K-fold.
    train, test : ndarray of int
        Row positions in the source cohort.
    held_out : tuple of str
        The sites held out (empty for K-fold).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    held_out: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Name, held-out sites and sizes (no row positions)."""
        return {
            "name": self.name,
            "held_out": list(self.held_out),
            "n_train": len(self.train),
            "n_test": len(self.test),
        }


def source_folds(
    source: Cohort,
    *,
    cv: int | None = None,
    max_folds: int = 5,
    random_state: int | np.random.Generator | None = None,
) -> tuple[str, list[Fold]]:
    """The validation folds of :func:`~graphxfer.selection.select_encoder` over a source cohort.

    Parameters
    ----------
    source : Cohort
    cv : int, optional
        ``None``: leave-one-site-out when the cohort has two or more sites (groups), else
        5-fold. An int: K-fold with that many folds, whatever the sites.
    max_folds : int, default=5
        With more sites than this, sites are grouped into ``max_folds`` folds of whole sites
        (sklearn ``GroupKFold``); every site is still held out exactly once.
    random_state : int, Generator or None
        Shuffles the K-fold split.

    Returns
    -------
    method : str
        ``"leave-one-site-out"``, ``"leave-sites-out (k folds)"``, ``"grouped k-fold by
        person"`` or ``"stratified k-fold"``.
    folds : list of Fold
        The test parts partition the cohort's rows; the rows of one person never straddle a
        training and a test part.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

    if not isinstance(source, Cohort):
        raise GraphxferError(f"source must be a Cohort, got {type(source).__name__}")
    if not source.has_target:
        raise GraphxferError("encoder selection needs a source cohort with a target column")
    max_folds = _positive_int(max_folds, "max_folds", minimum=2)
    n = len(source)
    groups = source.groups
    sites = [] if groups is None else [str(g) for g in dict.fromkeys(groups)]
    if cv is None and len(sites) >= 2:
        site_of = groups.astype(str).to_numpy() if groups is not None else np.array([])
        if len(sites) <= max_folds:
            folds = [
                Fold(s, np.flatnonzero(site_of != s), np.flatnonzero(site_of == s), (s,))
                for s in sites
            ]
            return "leave-one-site-out", folds
        splitter = GroupKFold(n_splits=max_folds)
        folds = []
        for train, test in splitter.split(np.zeros(n), groups=site_of):
            held = tuple(s for s in sites if s in set(site_of[test]))
            folds.append(Fold("+".join(held), train, test, held))
        return f"leave-sites-out ({max_folds} folds)", folds
    k = 5 if cv is None else _positive_int(cv, "cv", minimum=2)
    y = source.y
    person = source.person_index
    first = pd.Series(y).groupby(person).first().to_numpy()
    smallest = int(np.bincount(first, minlength=2).min())
    if smallest < k:
        raise GraphxferError(
            f"{k}-fold validation needs at least {k} persons of each outcome in the source; "
            f"the rarer outcome has {smallest}; pass a smaller cv="
        )
    seed = _seed(random_state)
    if source.n_persons < n:
        method = f"grouped {k}-fold by person"
        split = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(n), y, groups=person
        )
    else:
        method = f"stratified {k}-fold"
        split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), y)
    folds = [Fold(f"fold {i + 1}", train, test) for i, (train, test) in enumerate(split)]
    return method, folds


def subsample_source(source: Cohort, max_rows: int | None, seed: int) -> Cohort:
    """At most ``max_rows`` records, stratified by site and outcome, persons kept whole.

    Parameters
    ----------
    source : Cohort
    max_rows : int or None
        At least 100; ``None`` (or a cohort no larger) returns ``source`` itself.
    seed : int
        Seeds the draw.

    Returns
    -------
    Cohort
    """
    if max_rows is None or len(source) <= max_rows:
        return source
    max_rows = _positive_int(max_rows, "max_rows", minimum=100)
    from sklearn.model_selection import train_test_split

    person = source.person_index
    frame = pd.DataFrame({"person": person, "y": source.y})
    groups = source.groups
    frame["site"] = "" if groups is None else groups.astype(str).to_numpy()
    first = frame.groupby("person").first()
    strata = first["site"] + "|" + first["y"].astype(str)
    counts = strata.value_counts()
    strata = strata.where(strata.map(counts) >= 2, "rare")
    share = max_rows / len(source)
    persons = first.index.to_numpy()
    try:
        keep, _ = train_test_split(persons, train_size=share, stratify=strata, random_state=seed)
    except ValueError:  # a stratum too small to split: stratify by outcome alone
        keep, _ = train_test_split(
            persons, train_size=share, stratify=first["y"], random_state=seed
        )
    return source.subset(np.isin(person, keep))


def _positive_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise GraphxferError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _seed(random_state: int | np.random.Generator | None) -> int:
    return int(np.random.default_rng(random_state).integers(0, 2**31 - 1))
