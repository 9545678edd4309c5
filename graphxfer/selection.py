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
4. **Winner.** The best-scoring candidate is pretrained on the whole source with the same
   seed; the leaderboard (every candidate's parameters, per-site AUROCs, mean, worst, score and
   seconds) is stored in the encoder's ``metadata["selection"]`` and saved with it.

Only source records are read, so the choice costs the target nothing. Large sources are
subsampled for the selection only (``max_rows``, stratified by site and outcome, persons kept
whole); the winner is pretrained on every record.

The default candidates come from the encoder registry (:data:`tabular.registry.ENCODERS`):
every registered encoder with a grid in :data:`CANDIDATE_GRIDS` contributes that grid, and in
the ``"thorough"`` set every other registered encoder contributes one candidate with its
default parameters. Any registered encoder can be passed in ``candidates=``.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError

__all__ = [
    "CANDIDATE_GRIDS",
    "CANDIDATE_SETS",
    "LARGE_SOURCE",
    "MIN_PER_CLASS",
    "Candidate",
    "Fold",
    "Leaderboard",
    "default_candidates",
    "evaluate_candidates",
    "registered_encoders",
    "select_encoder",
    "source_folds",
]

CANDIDATE_SETS = ("fast", "thorough")
"""Named default candidate sets: ``"fast"`` (seconds per candidate on CPU) and ``"thorough"``."""

MIN_PER_CLASS = 5
"""A held-out site (or fold) is scored only with at least this many records of each outcome."""

LARGE_SOURCE = 2_000
"""Above this many records the default grids use larger batches and fewer epochs."""
LARGE_BATCH = 256
LARGE_EPOCHS = 30

SCORE_RULE = "score = (mean + worst held-out AUROC) / 2; ties go to the earlier candidate"

# supervised pretraining fits a linear encoder's head exactly (L-BFGS, L2 = weight_decay in
# mean-loss units, see tabular.pretrain): one stochastic epoch only starts it
_LINEAR = {"lr": 1e-2, "batch_size": 64, "epochs": 1}
_MLP = {"lr": 3e-3, "batch_size": 64, "epochs": 50, "patience": 5}
_FT = {"lr": 1e-3, "batch_size": 64, "epochs": 50, "patience": 5}
_SAGE = {"lr": 3e-3, "k": 10, "epochs": 50, "patience": 5}
CANDIDATE_GRIDS: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {
    "linear": {
        "fast": [
            ("supervised", {"weight_decay": wd, **_LINEAR})
            for wd in (0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4)
        ],
        "thorough": [
            ("supervised", {"weight_decay": wd, **_LINEAR})
            for wd in (0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 0.0)
        ],
    },
    "mlp": {
        "fast": [
            (
                "supervised",
                {"encoder_params": {"width": 64, "dropout": 0.1}, "weight_decay": 1e-4, **_MLP},
            ),
            (
                "supervised",
                {"encoder_params": {"width": 64, "dropout": 0.3}, "weight_decay": 1e-1, **_MLP},
            ),
        ],
        "thorough": [
            (
                "supervised",
                {"encoder_params": {"width": 64, "dropout": 0.1}, "weight_decay": 1e-4, **_MLP},
            ),
            (
                "supervised",
                {"encoder_params": {"width": 64, "dropout": 0.3}, "weight_decay": 1e-1, **_MLP},
            ),
            (
                "supervised",
                {
                    "encoder_params": {"width": 128, "n_blocks": 3, "dropout": 0.3},
                    "weight_decay": 1e-2,
                    **_MLP,
                },
            ),
            (
                "supervised+masked",
                {"encoder_params": {"width": 64, "dropout": 0.1}, "weight_decay": 1e-3, **_MLP},
            ),
        ],
    },
    "graphsage": {
        "fast": [("supervised", {"hidden": 64, **_SAGE})],
        "thorough": [
            ("supervised", {"hidden": 64, **_SAGE}),
            ("supervised", {"hidden": 64, **_SAGE, "k": 20, "weight_decay": 1e-2}),
        ],
    },
    "ft-transformer": {
        "thorough": [
            (
                "supervised",
                {"encoder_params": {"d_token": 32, "n_layers": 2}, "weight_decay": 1e-4, **_FT},
            ),
            (
                "supervised+masked",
                {"encoder_params": {"d_token": 32, "n_layers": 2}, "weight_decay": 1e-3, **_FT},
            ),
        ],
    },
}
"""Per registered encoder name and candidate set: ``(objective, params)`` pairs.

Encoders absent here still take part in the ``"thorough"`` set (one candidate, default
parameters, ``objective="supervised"``) and can always be passed in ``candidates=``. Add an
entry here to give a new encoder a tuned grid."""

_RESERVED = ("random_state", "progress", "device")
_TABULAR_FIXED = ("data", "columns", "y", "encoder", "objective")
_GRAPH_FIXED = ("source", "encoder", "objective")


# ---------------------------------------------------------------------- candidates
def registered_encoders() -> dict[str, str]:
    """Every registered encoder name and its kind (``"tabular"`` or ``"graph"``), sorted.

    Graph encoders are registered when :mod:`graphxfer.graphs` is importable (PyG installed).
    """
    import tabular  # noqa: F401  (registers the tabular networks)
    from tabular.encoders import EncoderNetwork
    from tabular.registry import ENCODERS

    graph_base: type | None
    try:
        from graphxfer.graphs.encoders import GNNEncoder
    except ImportError:  # PyG missing: tabular encoders only
        graph_base = None
    else:
        graph_base = GNNEncoder
    kinds: dict[str, str] = {}
    for name in ENCODERS:
        cls = ENCODERS.get(name)
        if isinstance(cls, type) and issubclass(cls, EncoderNetwork):
            kinds[name] = "tabular"
        elif graph_base is not None and isinstance(cls, type) and issubclass(cls, graph_base):
            kinds[name] = "graph"
    return kinds


@dataclass(frozen=True)
class Candidate:
    """One configuration to validate: an encoder, a supervised objective and its parameters.

    Parameters
    ----------
    encoder : str
        A registered encoder name (see :func:`registered_encoders`).
    objective : str, default="supervised"
        A pretraining objective that trains an outcome head (tabular: ``supervised``,
        ``supervised+masked``; graph: ``supervised``): candidates are scored by their own
        source predictions.
    params : dict, default={}
        Keyword arguments of :func:`graphxfer.pretrain` for this encoder (``epochs``,
        ``weight_decay``, ``encoder_params``...), JSON-ready. ``random_state``, ``progress``
        and ``device`` are set by the selection.

    Examples
    --------
    >>> Candidate("mlp", params={"epochs": 5, "weight_decay": 0.01}).label
    'mlp/supervised epochs=5 weight_decay=0.01'
    """

    encoder: str
    objective: str = "supervised"
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str) or not self.encoder:
            raise GraphxferError(f"a candidate's encoder must be a name, got {self.encoder!r}")
        if not isinstance(self.objective, str) or not self.objective:
            raise GraphxferError(f"a candidate's objective must be a name, got {self.objective!r}")
        if not isinstance(self.params, Mapping):
            raise GraphxferError(
                f"candidate {self.encoder!r}: params must be a dict, got "
                f"{type(self.params).__name__}"
            )
        try:
            params = json.loads(json.dumps(dict(self.params), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise GraphxferError(
                f"candidate {self.encoder!r}: params must be JSON-ready (they are stored in "
                f"the leaderboard): {exc}"
            ) from exc
        object.__setattr__(self, "params", params)

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``mlp/supervised dropout=0.3 weight_decay=0.01``."""
        parts = []
        for key, value in self.params.items():
            if isinstance(value, Mapping):
                parts += [f"{k}={v}" for k, v in value.items()]
            else:
                parts.append(f"{key}={value}")
        return " ".join([f"{self.encoder}/{self.objective}", *parts])

    def to_dict(self) -> dict[str, Any]:
        """``{"encoder", "objective", "params"}``, JSON-ready."""
        return {
            "encoder": self.encoder,
            "objective": self.objective,
            "params": json.loads(json.dumps(self.params)),
        }

    @classmethod
    def from_dict(cls, spec: Candidate | Mapping[str, Any]) -> Candidate:
        """A candidate from a dict ``{"encoder", "objective" (optional), "params" (optional)}``."""
        if isinstance(spec, Candidate):
            return spec
        if not isinstance(spec, Mapping):
            raise GraphxferError(
                "a candidate is a dict {'encoder': ..., 'objective': ..., 'params': {...}}, "
                f"got {type(spec).__name__}"
            )
        unknown = sorted(set(spec) - {"encoder", "objective", "params"})
        if unknown:
            raise GraphxferError(
                f"candidate {dict(spec)!r} has unknown keys {unknown}; a candidate has "
                "'encoder', 'objective' and 'params'"
            )
        if "encoder" not in spec:
            raise GraphxferError(f"candidate {dict(spec)!r} names no 'encoder'")
        return cls(
            spec["encoder"], spec.get("objective", "supervised"), dict(spec.get("params") or {})
        )


def default_candidates(kind: str = "fast", *, n_rows: int | None = None) -> list[Candidate]:
    """The default candidate list, derived from the encoder registry.

    Parameters
    ----------
    kind : {"fast", "thorough"}, default="fast"
        ``"fast"``: the grids of :data:`CANDIDATE_GRIDS` for the fast set (a linear model over
        a few L2 strengths when ``"linear"`` is registered, two MLPs, one GraphSAGE) — seconds
        per candidate on a CPU for a few hundred records. ``"thorough"``: larger grids, the
        FT-Transformer, and one default candidate for every other registered encoder.
    n_rows : int, optional
        Records the candidates will be trained on. Above :data:`LARGE_SOURCE` the grids train
        in batches of :data:`LARGE_BATCH` records (instead of 64) for at most
        :data:`LARGE_EPOCHS` epochs, so that an epoch stays a few dozen steps.

    Returns
    -------
    list of Candidate
        Encoders in :data:`CANDIDATE_GRIDS` order first, then the others by name.
    """
    if kind not in CANDIDATE_SETS:
        raise GraphxferError(f"candidates={kind!r}: choose one of {CANDIDATE_SETS} or a list")
    registered = registered_encoders()
    names = [n for n in CANDIDATE_GRIDS if n in registered]
    names += [n for n in registered if n not in CANDIDATE_GRIDS]
    out: list[Candidate] = []
    for name in names:
        grid = CANDIDATE_GRIDS.get(name)
        entries: list[tuple[str, dict[str, Any]]]
        if grid is None:
            entries = [("supervised", {})] if kind == "thorough" else []
        else:
            entries = grid.get(kind, [])
        for objective, params in entries:
            params = dict(params)
            if n_rows is not None and n_rows > LARGE_SOURCE:
                if "batch_size" in params:
                    params["batch_size"] = max(int(params["batch_size"]), LARGE_BATCH)
                params["epochs"] = min(int(params.get("epochs", LARGE_EPOCHS)), LARGE_EPOCHS)
            out.append(Candidate(name, objective, params))
    return out


def _resolve_candidates(
    candidates: str | Iterable[Candidate | Mapping[str, Any]], n_rows: int
) -> list[Candidate]:
    if isinstance(candidates, str):
        found = default_candidates(candidates, n_rows=n_rows)
    else:
        found = [Candidate.from_dict(c) for c in candidates]
    if not found:
        raise GraphxferError("no candidate encoders to choose from; pass candidates=[...]")
    labels = [c.label for c in found]
    repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
    if repeated:
        raise GraphxferError(f"candidates repeat: {repeated}")
    kinds = registered_encoders()
    for cand in found:
        _check_candidate(cand, kinds)
    return found


def _check_candidate(cand: Candidate, kinds: dict[str, str]) -> None:
    kind = kinds.get(cand.encoder)
    if kind is None:
        raise GraphxferError(
            f"candidate {cand.label!r}: unknown encoder {cand.encoder!r}; registered: "
            f"{sorted(kinds)}"
        )
    if kind == "tabular":
        import tabular
        from tabular.objectives import OBJECTIVES

        supervised = [n for n in OBJECTIVES if OBJECTIVES.get(n).needs_outcome]
        signature = inspect.signature(tabular.pretrain).parameters
        fixed: tuple[str, ...] = _TABULAR_FIXED
    else:
        from graphxfer.graphs import pretrain_graph

        supervised = ["supervised"]
        signature = inspect.signature(pretrain_graph).parameters
        fixed = _GRAPH_FIXED
    if cand.objective not in supervised:
        raise GraphxferError(
            f"candidate {cand.label!r}: objective {cand.objective!r} trains no outcome head, "
            "and candidates are scored by their own source predictions; use one of "
            f"{supervised} for a {kind} encoder"
        )
    reserved = sorted(set(cand.params) & set(_RESERVED))
    if reserved:
        raise GraphxferError(
            f"candidate {cand.label!r}: {reserved} are set by the selection (pass them to "
            "select_encoder / pretrain instead)"
        )
    accepted = sorted(set(signature) - set(fixed) - set(_RESERVED))
    unknown = sorted(set(cand.params) - set(accepted))
    if unknown:
        raise GraphxferError(
            f"candidate {cand.label!r}: unknown parameters {unknown} for a {kind} encoder; "
            f"accepted: {accepted}"
        )


# ---------------------------------------------------------------------- folds
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
    """The validation folds of :func:`select_encoder` over a source cohort.

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


def _units(source: Cohort, folds: list[Fold]) -> dict[str, np.ndarray]:
    """Scoring units: each held-out site (site folds) or each fold (K-fold), as row positions."""
    if folds and folds[0].held_out:
        groups = source.groups
        assert groups is not None
        site_of = groups.astype(str).to_numpy()
        return {s: np.flatnonzero(site_of == s) for f in folds for s in f.held_out}
    return {f.name: f.test for f in folds}


# ---------------------------------------------------------------------- leaderboard
@dataclass
class Leaderboard:
    """The outcome of :func:`evaluate_candidates`: every candidate's held-out scores.

    Attributes
    ----------
    method : str
        How the source was split (see :func:`source_folds`).
    folds : list of dict
        ``name``, ``held_out`` sites, ``n_train``, ``n_test`` per fold.
    units : list of dict
        The held-out sites (or folds) scored: ``name``, ``n``, ``positives``, ``scored``
        (False when either outcome has fewer than :data:`MIN_PER_CLASS` records).
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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphxferError(f"malformed selection leaderboard: {exc!r}") from exc


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
    cands = _resolve_candidates(candidates, len(used))
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
    return Leaderboard(
        method=method,
        folds=[f.to_dict() for f in folds],
        units=unit_info,
        results=results,
        n_source=len(source),
        n_used=len(used),
        random_state=fit_seed,
        seconds=time.perf_counter() - start,
    )


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
    params = dict(best.params)
    n_train = [int(f["n_train"]) for f in board.folds if f.get("n_train")]
    if best.encoder == "linear" and "weight_decay" in params and n_train:
        # the linear encoder's L2 penalty is per record (mean-loss units): the strength
        # validated on folds of ~n_train records corresponds to weight_decay * n_train in
        # total, which on the whole source is this per-record value
        params["weight_decay"] = float(params["weight_decay"]) * np.mean(n_train) / len(source)
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


# ---------------------------------------------------------------------- helpers
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


def _subsample(source: Cohort, max_rows: int | None, seed: int) -> Cohort:
    """At most ``max_rows`` records, stratified by site and outcome, persons kept whole."""
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
