"""Candidate encoders for the selection on the source: the registry's encoders, their default
grids and checked, JSON-ready candidates.

The default candidates come from the encoder registries (:mod:`graphxfer.registry`):
every registered encoder with a grid in :data:`CANDIDATE_GRIDS` contributes that grid, and in
the ``"thorough"`` set every other registered encoder contributes one candidate with its
default parameters. Any registered encoder can be passed as a :class:`Candidate`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphxfer.exceptions import GraphxferError
from graphxfer.registry import encoder_kinds

__all__ = [
    "CANDIDATE_GRIDS",
    "CANDIDATE_SETS",
    "LARGE_BATCH",
    "LARGE_EPOCHS",
    "LARGE_SOURCE",
    "SITE_OPTION",
    "Candidate",
    "default_candidates",
    "registered_encoders",
    "resolve_candidates",
]

CANDIDATE_SETS = ("fast", "thorough")
"""Named default candidate sets: ``"fast"`` (seconds per candidate on CPU) and ``"thorough"``."""

LARGE_SOURCE = 2_000
"""Above this many records the default grids use larger batches and fewer epochs."""
LARGE_BATCH = 256
LARGE_EPOCHS = 30

# supervised pretraining fits a linear encoder's head exactly (L-BFGS, L2 = weight_decay in
# mean-loss units, see tabular.pretrain): one stochastic epoch only starts it
_LINEAR = {"lr": 1e-2, "batch_size": 64, "epochs": 1}
_MLP = {"lr": 3e-3, "batch_size": 64, "epochs": 50, "patience": 5}
_FT = {"lr": 1e-3, "batch_size": 64, "epochs": 50, "patience": 5}
_SAGE = {"lr": 3e-3, "k": 10, "epochs": 50, "patience": 5}
CANDIDATE_GRIDS: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {
    "linear": {
        "fast": [
            ("supervised", {"weight_decay": wd, **_LINEAR, "site_intercepts": True})
            for wd in (0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4)
        ],
        "thorough": [
            ("supervised", {"weight_decay": wd, **_LINEAR, **sites})
            for sites in ({"site_intercepts": True}, {})
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
entry here to give a new encoder a tuned grid. The linear candidates fit one intercept per
source site (``site_intercepts``, see :func:`graphxfer.pretrain`; dropped for a single-site
source); the thorough set also holds the pooled fits."""

_RESERVED = ("random_state", "progress", "device")
_TABULAR_FIXED = ("data", "columns", "y", "encoder", "objective", "groups")
SITE_OPTION = "site_intercepts"
"""The candidate parameter that fits one intercept per source site (tabular candidates)."""
_GRAPH_FIXED = ("source", "encoder", "objective")


def registered_encoders() -> dict[str, str]:
    """Every registered encoder name and its kind (``"tabular"`` or ``"graph"``), sorted.

    The names are those of :func:`graphxfer.registry.encoder_kinds`; graph encoders are
    registered when :mod:`graphxfer.graphs` is importable (PyG installed).
    """
    return encoder_kinds()


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

    @property
    def site_intercepts(self) -> bool:
        """Whether the candidate fits one intercept per source site."""
        return bool(self.params.get(SITE_OPTION, False))

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


def resolve_candidates(
    candidates: str | Iterable[Candidate | Mapping[str, Any]], n_rows: int
) -> list[Candidate]:
    """Candidates from a named default set or a list, each checked against the registry.

    Parameters
    ----------
    candidates : "fast", "thorough" or list of Candidate or dict
        A named set (:func:`default_candidates`) or explicit candidates.
    n_rows : int
        Records the candidates will be trained on (see :func:`default_candidates`).

    Returns
    -------
    list of Candidate

    Raises
    ------
    GraphxferError
        No candidate, repeated candidates, an unknown encoder, an objective that trains no
        outcome head, or parameters the encoder's pretraining does not accept.
    """
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
    if kind == "tabular":
        accepted = sorted([*accepted, SITE_OPTION])
    unknown = sorted(set(cand.params) - set(accepted))
    if unknown:
        raise GraphxferError(
            f"candidate {cand.label!r}: unknown parameters {unknown} for a {kind} encoder; "
            f"accepted: {accepted}"
        )
