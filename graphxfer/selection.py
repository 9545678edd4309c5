"""Choosing the encoder on the source: leave-one-site-out validation of candidate encoders.

Everything that can be decided on public source data is decided there, at no privacy cost to
the target (DESIGN.md §7.1). :func:`select_encoder` — what ``pretrain(source, "auto")`` runs —
chooses the encoder family, the objective and the regularisation (weight decay, dropout, epochs)
by how well each candidate *generalises across sites* of the source cohort:

1. **Folds.** With two or more sites (the cohort's group column), every site is held out
   exactly once: one fold per site (leave-one-site-out), or, with more sites than
   ``max_folds``, ``max_folds`` folds of whole sites (each site still held out exactly once).
   A single-site source (or ``cv=K``) falls back to K-fold: grouped by person when person ids
   repeat, stratified by outcome otherwise.
2. **Candidates.** Each candidate (an encoder, a *supervised* objective and its parameters) is
   pretrained on the training part of every fold and predicts the held-out part with its own
   source head, zero-shot (:meth:`Encoder.predict_proba`; no fine-tuning).
3. **Score.** The AUROC of those predictions is computed per held-out site (per fold for
   K-fold). A candidate's score is the average of the *mean* and the *worst* held-out AUROC,
   ``score = (mean + worst) / 2``, rewarding models that are good on average and do not break
   at any one site. Sites with fewer than :data:`MIN_PER_CLASS` records of either outcome are
   used for training but not scored. Ties go to the earlier candidate.
4. **Site intercepts.** The default linear candidates fit one intercept per source site
   (``site_intercepts=True``, see :func:`graphxfer.pretrain`): a model for a *new* site is
   judged by how it ranks records within that site, which is what within-site coefficients
   describe. A single-site source drops the option. When candidates of one encoder with and
   without site intercepts are both scored (the ``"thorough"`` set), the leaderboard also
   reports the paired score difference of the best of each and its standard error over
   :data:`N_BOOTSTRAP` bootstrap resamples of the held-out sites' records, stratified by
   outcome (``site_intercepts_check``); the winner is still the best score.
5. **Winner.** The best-scoring candidate is pretrained on the whole source with the same
   seed; the leaderboard (every candidate's parameters, per-site AUROCs, mean, worst, score and
   seconds) is stored in the encoder's ``metadata["selection"]`` and saved with it.

Only source records are read, so the choice costs the target nothing. Large sources are
subsampled for the selection only (``max_rows``, stratified by site and outcome, persons kept
whole); the winner is pretrained on every record.

The default candidates come from the encoder registries (:mod:`graphxfer.registry`):
every registered encoder with a grid in :data:`CANDIDATE_GRIDS` contributes that grid, and in
the ``"thorough"`` set every other registered encoder contributes one candidate with its
default parameters. Any registered encoder can be passed in ``candidates=``.

The parts live in :mod:`graphxfer.candidates` (candidates and grids), :mod:`graphxfer.folds`
(folds and subsampling) and :mod:`graphxfer.leaderboard` (the scores); their public names are
importable from here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from graphxfer.candidates import (
    CANDIDATE_GRIDS,
    CANDIDATE_SETS,
    LARGE_SOURCE,
    SITE_OPTION,
    Candidate,
    default_candidates,
    registered_encoders,
    resolve_candidates,
)
from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError
from graphxfer.folds import Fold, source_folds
from graphxfer.folds import subsample_source as _subsample
from graphxfer.leaderboard import Leaderboard

__all__ = [
    "CANDIDATE_GRIDS",
    "CANDIDATE_SETS",
    "LARGE_SOURCE",
    "MIN_PER_CLASS",
    "N_BOOTSTRAP",
    "Candidate",
    "Fold",
    "Leaderboard",
    "default_candidates",
    "evaluate_candidates",
    "registered_encoders",
    "select_encoder",
    "source_folds",
    "whole_source_params",
]

MIN_PER_CLASS = 5
"""A held-out site (or fold) is scored only with at least this many records of each outcome."""

N_BOOTSTRAP = 200
"""Bootstrap resamples behind the standard error of the site-intercepts comparison."""


# ---------------------------------------------------------------------- selection
def evaluate_candidates(
    source: Cohort,
    candidates: str | Iterable[Candidate | Mapping[str, Any]] = "fast",
    *,
    cv: int | None = None,
    max_folds: int = 5,
    max_rows: int | None = 5_000,
    random_state: int | np.random.Generator | None = 0,
    device: Any = "auto",
    progress: bool = True,
) -> Leaderboard:
    """Validate every candidate across the sites of the source cohort (see the module notes).

    Parameters
    ----------
    source : Cohort
        The source cohort, with a target (and ideally a group/site column).
    candidates : "fast", "thorough" or list of Candidate or dict, default="fast"
        A named default set (:func:`default_candidates`) or explicit candidates, each a
        :class:`Candidate` or a dict ``{"encoder", "objective", "params"}``.
    cv : int, optional
        ``None``: leave-one-site-out (K-fold for a single-site source); an int: K-fold.
    max_folds : int, default=5
        Most folds; more sites are grouped into this many folds of whole sites.
    max_rows : int or None, default=5000
        Subsample larger sources to this many records for the selection (stratified by site
        and outcome; a person's rows stay together). ``None`` uses every record.
    random_state : int, Generator or None, default=0
        Seeds the split, the subsample and every candidate's pretraining (all candidates use
        the same seed).
    device : str or torch.device, default="auto"
    progress : bool, default=True
        A progress bar over candidates and folds (on a terminal only).

    Returns
    -------
    Leaderboard
    """
    from tqdm.auto import tqdm

    from graphxfer.encoder import pretrain

    start = time.perf_counter()
    if not isinstance(source, Cohort):
        raise GraphxferError(f"source must be a Cohort, got {type(source).__name__}")
    if not source.has_target:
        raise GraphxferError("encoder selection needs a source cohort with a target column")
    rng = np.random.default_rng(random_state)
    split_seed = int(rng.integers(0, 2**31 - 1))
    fit_seed = (
        int(random_state)
        if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
        else int(rng.integers(0, 2**31 - 1))
    )
    used = _subsample(source, max_rows, split_seed)
    cands = resolve_candidates(candidates, len(used))
    if isinstance(candidates, str) and (used.groups is None or used.groups.nunique() < 2):
        cands = _without_site_intercepts(cands)
    method, folds = source_folds(used, cv=cv, max_folds=max_folds, random_state=split_seed)
    units = _units(used, folds)
    y = used.y
    unit_info: list[dict[str, Any]] = []
    for name, rows in units.items():
        pos = int(y[rows].sum())
        scored = pos >= MIN_PER_CLASS and len(rows) - pos >= MIN_PER_CLASS
        unit_info.append({"name": name, "n": len(rows), "positives": pos, "scored": scored})
    if not any(u["scored"] for u in unit_info):
        raise GraphxferError(
            f"no held-out part of the source ({method}) has {MIN_PER_CLASS} records of each "
            "outcome, so no candidate can be scored; pass cv=K for K-fold, or a larger source"
        )
    parts = {f.name: (used.subset(f.train), used.subset(f.test)) for f in folds}

    from sklearn.metrics import roc_auc_score

    results = []
    predictions: list[np.ndarray] = []
    bar = tqdm(  # disable=None: a bar only on a terminal
        total=len(cands) * len(folds), desc="selecting encoder", disable=None if progress else True
    )
    for cand in cands:
        t0 = time.perf_counter()
        oof = np.full(len(used), np.nan)
        for fold in folds:
            bar.set_postfix_str(f"{cand.encoder}/{cand.objective}, held out: {fold.name}"[:60])
            train, test = parts[fold.name]
            try:
                enc = pretrain(
                    train,
                    cand.encoder,
                    cand.objective,
                    random_state=fit_seed,
                    progress=False,
                    device=device,
                    **cand.params,
                )
                oof[fold.test] = enc.predict_proba(test)
            except ValueError as exc:  # graphxfer's and tabular's user errors
                raise GraphxferError(
                    f"candidate {cand.label!r} failed on the fold holding out {fold.name!r}: {exc}"
                ) from exc
            bar.update()
        if not np.isfinite(oof).all():
            raise GraphxferError(f"candidate {cand.label!r} predicted non-finite probabilities")
        predictions.append(oof)
        auroc: dict[str, float | None] = {}
        for info in unit_info:
            rows = units[info["name"]]
            auroc[info["name"]] = (
                float(roc_auc_score(y[rows], oof[rows])) if info["scored"] else None
            )
        values = [v for v in auroc.values() if v is not None]
        mean, worst = float(np.mean(values)), float(np.min(values))
        results.append(
            {
                "candidate": cand.to_dict(),
                "label": cand.label,
                "auroc": auroc,
                "mean": mean,
                "worst": worst,
                "score": (mean + worst) / 2,
                "seconds": time.perf_counter() - t0,
            }
        )
    bar.close()
    board = Leaderboard(
        method=method,
        folds=[f.to_dict() for f in folds],
        units=unit_info,
        results=results,
        n_source=len(source),
        n_used=len(used),
        random_state=fit_seed,
        seconds=0.0,
    )
    scored_units = {u["name"]: units[u["name"]] for u in unit_info if u["scored"]}
    board.site_intercepts_check = _site_intercepts_check(
        board, cands, predictions, y, scored_units, split_seed
    )
    board.seconds = time.perf_counter() - start
    return board


def _without_site_intercepts(cands: list[Candidate]) -> list[Candidate]:
    """A single-site source: a site intercept is the intercept, so the option is dropped
    (and a candidate that then repeats another is dropped with it)."""
    out: list[Candidate] = []
    seen: set[str] = set()
    for cand in cands:
        if cand.site_intercepts:
            params = {k: v for k, v in cand.params.items() if k != SITE_OPTION}
            cand = Candidate(cand.encoder, cand.objective, params)
        if cand.label not in seen:
            seen.add(cand.label)
            out.append(cand)
    return out


def _site_intercepts_check(
    board: Leaderboard,
    cands: list[Candidate],
    predictions: list[np.ndarray],
    y: np.ndarray,
    units: dict[str, np.ndarray],
    seed: int,
) -> dict[str, Any] | None:
    """The paired score difference between the best candidate with site intercepts and the
    best of the same encoder without, and its bootstrap standard error (module notes, step
    4); None when the list does not hold both."""
    from sklearn.metrics import roc_auc_score

    ranking = board.ranking
    with_sites = [i for i in ranking if cands[i].site_intercepts]
    if not with_sites:
        return None
    a = with_sites[0]
    # the same encoder without site intercepts (the pooled fits of the same model)
    without = [
        i for i in ranking if not cands[i].site_intercepts and cands[i].encoder == cands[a].encoder
    ]
    if not without:
        return None
    b = without[0]

    def score(p: np.ndarray, rows: dict[str, np.ndarray]) -> float:
        values = [float(roc_auc_score(y[r], p[r])) for r in rows.values()]
        return (float(np.mean(values)) + min(values)) / 2

    from graphxfer.evaluate.metrics import stratified_resamples

    differences = [
        score(predictions[a], rows) - score(predictions[b], rows)
        for rows in stratified_resamples(y, units, n_boot=N_BOOTSTRAP, random_state=seed)
    ]
    return {
        "with": board.results[a]["label"],
        "without": board.results[b]["label"],
        "difference": float(board.results[a]["score"] - board.results[b]["score"]),
        "standard_error": float(np.std(differences, ddof=1)),
        "n_bootstrap": N_BOOTSTRAP,
    }


def select_encoder(
    source: Cohort,
    candidates: str | Iterable[Candidate | Mapping[str, Any]] = "fast",
    *,
    cv: int | None = None,
    max_folds: int = 5,
    max_rows: int | None = 5_000,
    random_state: int | np.random.Generator | None = 0,
    device: Any = "auto",
    progress: bool = True,
) -> Encoder:
    """Choose the encoder by cross-site validation on the source and pretrain the winner.

    What ``graphxfer.pretrain(source, "auto", ...)`` runs. The parameters are those of
    :func:`evaluate_candidates`. The best-scoring candidate is pretrained on the whole source
    (every record, the same seed); the leaderboard is stored as
    ``encoder.metadata["selection"]`` (read it with :meth:`Leaderboard.from_dict`) and saved
    with the encoder.

    Returns
    -------
    Encoder

    Examples
    --------
    >>> from graphxfer import datasets
    >>> heart = datasets.load_heart_disease(sites=["cleveland", "hungarian"])
    >>> enc = select_encoder(heart, [{"encoder": "mlp", "params": {"epochs": 2}}],
    ...                      progress=False)
    >>> Leaderboard.from_dict(enc.metadata["selection"]).method
    'leave-one-site-out'
    """
    from graphxfer.encoder import pretrain

    board = evaluate_candidates(
        source,
        candidates,
        cv=cv,
        max_folds=max_folds,
        max_rows=max_rows,
        random_state=random_state,
        device=device,
        progress=progress,
    )
    best = board.best
    params = whole_source_params(board, best, len(source))
    t0 = time.perf_counter()
    encoder = pretrain(
        source,
        best.encoder,
        best.objective,
        random_state=board.random_state,
        progress=False,
        device=device,
        **params,
    )
    record = board.to_dict()
    record["final_params"] = json.loads(json.dumps(params))
    record["final_fit_seconds"] = time.perf_counter() - t0
    encoder.metadata["selection"] = record
    return encoder


def whole_source_params(board: Leaderboard, cand: Candidate, n_source: int) -> dict[str, Any]:
    """``cand``'s pretraining parameters for a fit on the whole source of ``n_source`` records.

    The linear encoder's L2 penalty is per record (mean-loss units): the strength validated on
    folds of about ``n_train`` records corresponds to ``weight_decay * n_train`` in total,
    which on the whole source is ``weight_decay * n_train / n_source`` per record. Other
    parameters are returned as they are.
    """
    params = dict(cand.params)
    n_train = [int(f["n_train"]) for f in board.folds if f.get("n_train")]
    if cand.encoder == "linear" and "weight_decay" in params and n_train:
        params["weight_decay"] = float(params["weight_decay"]) * np.mean(n_train) / n_source
    return params


def _units(source: Cohort, folds: list[Fold]) -> dict[str, np.ndarray]:
    """Scoring units: each held-out site (site folds) or each fold (K-fold), as row positions."""
    if folds and folds[0].held_out:
        groups = source.groups
        assert groups is not None
        site_of = groups.astype(str).to_numpy()
        return {s: np.flatnonzero(site_of == s) for f in folds for s in f.held_out}
    return {f.name: f.test for f in folds}
