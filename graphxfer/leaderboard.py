"""The leaderboard of the encoder selection: every candidate's held-out scores, JSON-ready."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from graphxfer.candidates import Candidate
from graphxfer.exceptions import GraphxferError

__all__ = ["SCORE_RULE", "Leaderboard"]

SCORE_RULE = "score = (mean + worst held-out AUROC) / 2; ties go to the earlier candidate"


@dataclass
class Leaderboard:
    """Every candidate's held-out scores in the encoder selection.

    What :func:`~graphxfer.selection.evaluate_candidates` returns.

    Attributes
    ----------
    method : str
        How the source was split (see :func:`~graphxfer.folds.source_folds`).
    folds : list of dict
        ``name``, ``held_out`` sites, ``n_train``, ``n_test`` per fold.
    units : list of dict
        The held-out sites (or folds) scored: ``name``, ``n``, ``positives``, ``scored``
        (False when either outcome has fewer than
        :data:`~graphxfer.selection.MIN_PER_CLASS` records).
    results : list of dict
        Per candidate, in the order given: ``candidate`` (encoder, objective, params),
        ``label``, ``auroc`` (per unit; ``None`` where not scored), ``mean``, ``worst``,
        ``score`` and ``seconds`` (training and predicting over all folds).
    n_source : int
        Records in the source cohort.
    n_used : int
        Records used for the selection (fewer than ``n_source`` after subsampling).
    random_state : int or None
        The seed of every candidate's pretraining (and of the final fit).
    seconds : float
        Wall time of the whole evaluation.
    score_rule : str
    site_intercepts_check : dict or None
        When candidates of one encoder with and without site intercepts were both scored:
        the best of each (``with``, ``without``), their score ``difference`` (with minus
        without) and its bootstrap ``standard_error`` over ``n_bootstrap`` resamples of the
        held-out sites' records. Information only: the winner is the best score.
    """

    method: str
    folds: list[dict[str, Any]]
    units: list[dict[str, Any]]
    results: list[dict[str, Any]]
    n_source: int
    n_used: int
    random_state: int | None
    seconds: float
    score_rule: str = SCORE_RULE
    site_intercepts_check: dict[str, Any] | None = None

    @property
    def ranking(self) -> list[int]:
        """Indices into :attr:`results`, best score first (stable: ties keep their order)."""
        return sorted(range(len(self.results)), key=lambda i: -self.results[i]["score"])

    @property
    def winner(self) -> dict[str, Any]:
        """The best-scoring result."""
        return self.results[self.ranking[0]]

    @property
    def best(self) -> Candidate:
        """The best-scoring candidate."""
        return Candidate.from_dict(self.winner["candidate"])

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, best first: label, AUROC per unit, mean, worst, score, seconds."""
        rows = []
        for rank, i in enumerate(self.ranking, start=1):
            r = self.results[i]
            row: dict[str, Any] = {"rank": rank, "candidate": r["label"]}
            row.update({f"auroc[{u}]": v for u, v in r["auroc"].items()})
            row.update(
                {
                    "mean": r["mean"],
                    "worst": r["worst"],
                    "score": r["score"],
                    "seconds": r["seconds"],
                }
            )
            rows.append(row)
        return pd.DataFrame(rows).set_index("rank")

    def format(self, top: int | None = None) -> str:
        """A plain-text table (the ``top`` best candidates; all by default)."""
        scored = [u["name"] for u in self.units if u["scored"]]
        head = (
            f"encoder selection: {self.method} over {self.n_used:,} source records"
            + (f" (subsampled from {self.n_source:,})" if self.n_used < self.n_source else "")
            + f", {len(self.results)} candidates, {self.seconds:.1f} s; {self.score_rule}"
        )
        labels = _short_labels(self.results)
        width = max(len(label) for label in labels)
        cols = "".join(f"{u[:12]:>13}" for u in scored)
        lines = [
            head,
            f"{'#':>2}  {'candidate':<{width}}{cols}{'mean':>8}{'worst':>8}{'score':>8}{'sec':>7}",
        ]
        ranking = self.ranking if top is None else self.ranking[:top]
        for rank, i in enumerate(ranking, start=1):
            r = self.results[i]
            values = "".join(f"{r['auroc'][u]:>13.3f}" for u in scored)
            lines.append(
                f"{rank:>2}  {labels[i]:<{width}}{values}{r['mean']:>8.3f}{r['worst']:>8.3f}"
                f"{r['score']:>8.3f}{r['seconds']:>7.1f}"
            )
        check = self.site_intercepts_check
        if check:
            lines.append(
                f"site intercepts: best with ({check['with']}) minus best without "
                f"({check['without']}) = {check['difference']:+.4f} ± {check['standard_error']:.4f}"
                f" (one bootstrap standard error, {check['n_bootstrap']} resamples of the "
                "held-out sites)"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` reads it back."""
        return json.loads(
            json.dumps(
                {
                    "method": self.method,
                    "folds": self.folds,
                    "units": self.units,
                    "results": self.results,
                    "n_source": self.n_source,
                    "n_used": self.n_used,
                    "random_state": self.random_state,
                    "seconds": self.seconds,
                    "score_rule": self.score_rule,
                    "winner": self.ranking[0],
                    "site_intercepts_check": self.site_intercepts_check,
                },
                allow_nan=False,
            )
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Leaderboard:
        """Inverse of :meth:`to_dict`, e.g. ``Leaderboard.from_dict(enc.metadata["selection"])``."""
        try:
            return cls(
                method=data["method"],
                folds=list(data["folds"]),
                units=list(data["units"]),
                results=list(data["results"]),
                n_source=int(data["n_source"]),
                n_used=int(data["n_used"]),
                random_state=data["random_state"],
                seconds=float(data["seconds"]),
                score_rule=data.get("score_rule", SCORE_RULE),
                site_intercepts_check=data.get("site_intercepts_check"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphxferError(f"malformed selection leaderboard: {exc!r}") from exc


def _short_labels(results: list[dict[str, Any]]) -> list[str]:
    """Labels without the parameters that every candidate of the same encoder shares."""
    cands = [Candidate.from_dict(r["candidate"]) for r in results]

    def flat(c: Candidate) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in c.params.items():
            if isinstance(value, Mapping):
                out.update(value)
            else:
                out[key] = value
        return out

    labels = []
    for c in cands:
        mine = flat(c)
        peers = [flat(o) for o in cands if o.encoder == c.encoder]
        shown = [f"{k}={v}" for k, v in mine.items() if any(p.get(k, object()) != v for p in peers)]
        labels.append(" ".join([f"{c.encoder}/{c.objective}", *shown]))
    if len(set(labels)) < len(labels):
        return [c.label for c in cands]
    return labels
