"""What a report section is built from."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.report.exceptions import ReportError

__all__ = ["DEFAULT_RISK_BANDS", "Record", "ReportContext", "RiskBand", "risk_bands"]

DEFAULT_RISK_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 0.2, "low"),
    (0.2, 0.5, "medium"),
    (0.5, 1.0, "high"),
)


@dataclass(frozen=True)
class RiskBand:
    """Predicted probabilities in ``[lower, upper)`` (the last band includes 1.0)."""

    lower: float
    upper: float
    label: str

    def __str__(self) -> str:
        return f"{self.label} ({self.lower:g}–{self.upper:g})"


def risk_bands(spec: Sequence[Sequence[Any]]) -> tuple[RiskBand, ...]:
    """Validate ``((lower, upper, label), ...)``: contiguous bands covering [0, 1]."""
    bands: list[RiskBand] = []
    try:
        for lower, upper, label in spec:
            bands.append(RiskBand(float(lower), float(upper), str(label)))
    except (TypeError, ValueError) as exc:
        raise ReportError(
            f"risk_bands must be a sequence of (lower, upper, label) triples, got {spec!r}"
        ) from exc
    if not bands:
        raise ReportError("risk_bands is empty; give at least one (0.0, 1.0, label) band")
    if bands[0].lower != 0.0 or bands[-1].upper != 1.0:
        raise ReportError(
            f"risk_bands must start at 0.0 and end at 1.0, got {bands[0].lower:g} to "
            f"{bands[-1].upper:g}"
        )
    for a, b in itertools.pairwise(bands):
        if a.upper != b.lower:
            raise ReportError(
                f"risk_bands must be contiguous: band {a.label!r} ends at {a.upper:g} but "
                f"{b.label!r} starts at {b.lower:g}"
            )
    for band in bands:
        if not band.lower < band.upper:
            raise ReportError(f"risk band {band.label!r} is empty ({band.lower:g}–{band.upper:g})")
    labels = [b.label for b in bands]
    if len(set(labels)) != len(labels) or "" in labels:
        raise ReportError(f"risk band labels must be distinct and non-empty, got {labels}")
    return tuple(bands)


@dataclass(frozen=True)
class Record:
    """A record selected for its own section."""

    position: int
    """Row position in the cohort."""
    label: str
    """How the report names it: ``record 1`` ... or, with ``show_ids=True``, its id."""
    row: int
    """Row of the explanation that explains it."""


@dataclass(frozen=True)
class ReportContext:
    """Everything the sections of one report are built from.

    Attributes
    ----------
    model : fitted model
    cohort : Cohort
        The reported cohort.
    card : dict or None
        ``model.model_card()``, or None when the model has none.
    predictions : ndarray of shape (len(cohort),)
        Predicted probability of the positive class of every record.
    bands : tuple of RiskBand
    explanation : shap.Explanation
        Explanations of the rows ``explained_rows`` of the cohort, in that order.
    explained_rows : ndarray of int
    records : tuple of Record
        The records that get their own section.
    show_ids : bool
        Whether identifiers may appear in the report.
    method : str
        How the explanation was computed (for the reader).
    background : str
        What the explanation's reference (background) data was.
    title : str
    evaluation : dict or None
        Measurements on private records, outside epsilon (``model.evaluation()`` or an
        evaluation file, see :func:`graphxfer.release.read_evaluation`).
    frame : DataFrame or None
        The cohort's records in the model's own columns (``model.transform_features``); by
        default the cohort's features.
    summary : dict or None
        The fit's released facts (:func:`graphxfer.report.summary.fit_summary`), shared with
        the console; computed from the model when not given.
    """

    model: Any
    cohort: Cohort
    card: dict[str, Any] | None
    predictions: np.ndarray
    bands: tuple[RiskBand, ...]
    explanation: Any
    explained_rows: np.ndarray
    records: tuple[Record, ...]
    show_ids: bool
    method: str
    background: str
    title: str
    evaluation: dict[str, Any] | None = None
    frame: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None

    @functools.cached_property
    def fit(self) -> dict[str, Any]:
        """The fit's released facts (:func:`graphxfer.report.summary.fit_summary`)."""
        from graphxfer.report.summary import fit_summary

        if self.summary is not None:
            return self.summary
        return fit_summary(self.model, self.card or {})

    @functools.cached_property
    def calibration(self) -> dict[str, Any] | None:
        """:func:`~graphxfer.report.checks.calibration_check` of the predictions against the
        cohort's outcomes; ``None`` without outcomes."""
        from graphxfer.report.checks import calibration_check

        if self.cohort is None or not self.cohort.has_target or len(self.cohort) == 0:
            return None
        return calibration_check(self.cohort.y, self.predictions)

    @functools.cached_property
    def shift(self) -> dict[str, Any]:
        """:func:`~graphxfer.report.checks.shift_check` of the reported records."""
        from graphxfer.report.checks import shift_check

        frame = self.frame if self.frame is not None else self.cohort.X
        return shift_check(self.model, frame)

    @functools.cached_property
    def own_columns(self) -> dict[str, str]:
        """Explained (model) column -> the reported cohort's own column that holds it under
        another name, in other units or with other codes (the fit's ``mapping``, ``convert``
        and ``recode``, applied by ``model.adapter_``). The explanation sections show these
        columns by the cohort's name and with the cohort's own values."""
        adapter = getattr(self.model, "adapter_", None)
        if adapter is None or not getattr(adapter, "translates", False):
            return {}
        inverse = {str(source): str(own) for own, source in (adapter.mapping or {}).items()}
        translated = {str(c) for c in (adapter.convert or {})} | {
            str(c) for c in (adapter.recode or {})
        }
        present = {str(c) for c in self.cohort.X.columns}
        own: dict[str, str] = {}
        for name in map(str, self.explanation.feature_names or []):
            user = inverse.get(name, name)
            if user in present and (user != name or name in translated):
                own[name] = user
        return own

    @functools.cached_property
    def shown(self) -> Any:
        """:attr:`explanation` as the reader's cohort records it: the columns of
        :attr:`own_columns` named as in the cohort, with the cohort's own values (its units
        and codes), for the tables and plots. Attributions are unchanged."""
        import shap

        exp = self.explanation
        own = self.own_columns
        if not own:
            return exp
        names = [str(n) for n in exp.feature_names]
        base = exp.display_data if exp.display_data is not None else exp.data
        display = np.array(base, dtype=object, copy=True)
        X = self.cohort.X
        for j, name in enumerate(names):
            if name in own:
                column = X[own[name]].iloc[np.asarray(self.explained_rows, dtype=np.int64)]
                display[:, j] = column.astype(object).to_numpy()
        return shap.Explanation(
            values=np.asarray(exp.values, dtype=np.float64),
            base_values=np.asarray(exp.base_values, dtype=np.float64),
            data=np.asarray(exp.data, dtype=np.float64),
            display_data=display,
            feature_names=[own.get(n, n) for n in names],
            output_names=exp.output_names,
        )

    @property
    def flagged(self) -> dict[str, str]:
        """Columns flagged as shifted from the source (possible site artefacts) -> why."""
        return dict(self.shift["flagged"])

    def band_indices(self, probabilities: np.ndarray) -> np.ndarray:
        """Index into :attr:`bands` of each predicted probability."""
        edges = np.asarray([band.upper for band in self.bands[:-1]], dtype=np.float64)
        return np.searchsorted(edges, np.asarray(probabilities, dtype=np.float64), side="right")

    def band_of(self, probability: float) -> RiskBand:
        """The risk band of one predicted probability."""
        return self.bands[int(self.band_indices(np.asarray([probability]))[0])]
