"""One self-contained HTML report of a fitted model on a cohort."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphxfer._io import atomic_write_text
from graphxfer.cohort import Cohort
from graphxfer.explain._announce import duration_text as _duration
from graphxfer.explain._model import link_of, positive_proba
from graphxfer.explain.explain import ExplanationInfo, explain_details
from graphxfer.explain.export import export_explanations
from graphxfer.release import read_evaluation
from graphxfer.report import sections as _builtin_sections  # noqa: F401  (registers them)
from graphxfer.report.context import DEFAULT_RISK_BANDS, Record, ReportContext
from graphxfer.report.context import risk_bands as parse_risk_bands
from graphxfer.report.exceptions import ReportError
from graphxfer.report.registry import SECTIONS
from graphxfer.report.summary import fit_summary
from graphxfer.schema import canonical_label

__all__ = ["DEFAULT_RECORDS", "LONG_EXPLANATION_S", "render", "report"]

logger = logging.getLogger(__name__)

DEFAULT_RECORDS = 3
"""Without ``records``, this many highest-risk and this many lowest-risk records are shown."""

LONG_EXPLANATION_S = 10.0
"""An explanation expected to take longer than this many seconds is announced with its estimate."""

_OUTPUT_GAP = 0.05
"""A given explanation whose outputs (base value + attributions, as probabilities) miss the
model's predictions by more than this, in the median over records, explains another model."""


def report(
    model: Any,
    cohort: Cohort,
    path: str | os.PathLike[str] = "report.html",
    *,
    records: Sequence[int | str] | None = None,
    explanation: Any = None,
    evaluation: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    show_ids: bool = False,
    risk_bands: Sequence[Sequence[Any]] = DEFAULT_RISK_BANDS,
    title: str | None = None,
    progress: bool = True,
    method: str = "auto",
    n_global: int = 200,
    n_background: int = 100,
    max_evals: int | None = None,
    random_state: int | None = 0,
) -> Path:
    """Write a self-contained HTML report of ``model`` on ``cohort``, with its explanations.

    The report is one HTML file (no scripts, no external resources; plots are embedded PNG
    images; a Content-Security-Policy forbids loading anything) with these sections: checks
    at a glance (negative-transfer check, calibration, shift from the source), cohort summary,
    model card (what the model releases: the fit's summary, the same lines ``graphxfer demo``
    prints (:func:`graphxfer.report.summary.fit_summary`), source cohort, encoder, strategy
    and hyper-parameters, target size, privacy guarantee and ledger, negative-transfer check
    or private transfer guard, the explanations' reference data, alignment, package versions —
    each part says "not available" when the card lacks it), "Computed on private records —
    not covered by ε" (metrics with intervals and the privacy audit from the evaluation, and
    the calibration and the shift from the source of the reported cohort, with warnings),
    global importance (SHAP beeswarm and bar plots) and one part per selected record
    (prediction, risk band, waterfall plot). Columns flagged as shifted from the source are
    marked as possible site artefacts wherever their attributions appear. Sections registered
    with :func:`register_section` follow.

    Next to it, ``<stem>-explanations.csv`` and ``<stem>-explanations.json`` hold the
    predictions and attributions of every explained record (see
    :func:`graphxfer.explain.export_explanations`). All files are written atomically.

    Parameters
    ----------
    model : fitted model
        ``predict_proba`` over the original columns; ``model_card()`` when available.
    cohort : Cohort
        The records to report on; with a target column, the calibration plot compares
        predictions with outcomes.
    path : str or path-like, default="report.html"
    records : sequence of int or str, optional
        Records that get their own part: integers are row positions, strings are ids (the
        cohort's id column). By default the 3 highest-risk and 3 lowest-risk records.
    explanation : shap.Explanation, optional
        Explanations of every row of ``cohort``, in order (from
        :func:`graphxfer.explain.explain` of this model): reused as they are. They must have
        the model's input columns, the cohort's values and the model's outputs, or a
        :class:`ReportError` says what differs. Computed when not given, for a sample of
        ``n_global`` rows plus the selected records; an explanation expected to take more than
        :data:`LONG_EXPLANATION_S` seconds (measured on its first record) is announced with its
        estimate on standard error when ``progress`` is on.
    evaluation : dict, path or None
        Metrics and audit computed on private records: a record of ``model.evaluation()`` or
        the path of an evaluation file (``model.save_evaluation(path)``). By default
        ``model.evaluation()`` when the model has one.
    show_ids : bool, default=False
        Show identifiers. By default records are labelled "record 1" ... and no id appears in
        the report or the exported files.
    risk_bands : sequence of (lower, upper, label)
        Contiguous bands of predicted probability covering [0, 1]; by default
        ``((0.0, 0.2, "low"), (0.2, 0.5, "medium"), (0.5, 1.0, "high"))``.
    title : str, optional
        Defaults to the model card's title.
    progress : bool, default=True
        Show the explainer's progress bar on long runs when standard error is a terminal (as
        tqdm's ``disable=None``), and announce a long explanation's time estimate.
    method : str, default="auto"
        Explanation method when ``explanation`` is not given (see
        :func:`graphxfer.explain.explain`).
    n_global : int, default=200
        At most this many records (a seeded sample) are explained for the global plots.
    n_background, max_evals :
        Background rows and evaluation budget of the explainer (see
        :func:`graphxfer.explain.explain`); lower them for speed on slow models.
    random_state : int or None, default=0
        Seeds the sample and the explainer.

    Returns
    -------
    Path
        The HTML file.
    """
    if not isinstance(cohort, Cohort):
        raise ReportError(f"cohort must be a graphxfer Cohort, got {type(cohort).__name__}")
    if isinstance(n_global, bool) or not isinstance(n_global, (int, np.integer)) or n_global < 1:
        raise ReportError(f"n_global={n_global!r} must be a positive integer")
    path = Path(path)
    if path.is_dir():
        raise ReportError(f"{str(path)!r} is a folder; give the path of the HTML file to write")
    bands = parse_risk_bands(risk_bands)
    translate = getattr(model, "transform_features", None)
    frame = translate(cohort) if translate is not None else cohort.X
    predictions = positive_proba(model, frame)
    selected = _select(records, cohort, predictions)

    card = model.model_card() if callable(getattr(model, "model_card", None)) else None
    if card is not None and not isinstance(card, dict):
        raise ReportError(f"model.model_card() must return a dict, got {type(card).__name__}")
    summary = fit_summary(model, card or {})
    reference = summary["reference"]
    if explanation is None:
        rows = _explained_rows(len(cohort), n_global, selected, random_state)
        explanation, info = _explain(
            model,
            frame.iloc[rows],
            method=method,
            n_background=n_background,
            max_evals=max_evals,
            random_state=random_state,
            progress=bool(progress),
        )
        how = f"{info.description}; method {info.method!r}"
        background = f"{info.background} ({info.n_background} rows)"
        if info.method == "tree":
            background = "the training data as recorded in the trees (path-dependent TreeSHAP)"
        elif reference is not None and info.n_background:
            background = f"{info.n_background} rows of the model's background_: {reference['text']}"
    else:
        rows = np.arange(len(cohort))
        _check_explanation(
            explanation, model, cohort if translate is None else frame, frame, predictions
        )
        how = "supplied with the report request"
        background = "chosen when the explanation was computed; " + (
            f"graphxfer.explain uses by default the model's background_: {reference['text']}"
            if reference is not None
            else "the model has no background_ of its own"
        )

    position_to_row = {int(pos): i for i, pos in enumerate(rows)}
    ids = cohort.ids
    chosen = tuple(
        Record(pos, _label(k, pos, cohort, show_ids), position_to_row[pos])
        for k, pos in enumerate(selected, start=1)
    )
    evaluation = _evaluation(model, evaluation)
    if title is None:
        title = str(card["title"]) if card and card.get("title") else "Model report"
    ctx = ReportContext(
        model=model,
        cohort=cohort,
        card=card,
        predictions=predictions,
        bands=bands,
        explanation=explanation,
        explained_rows=rows,
        records=chosen,
        show_ids=show_ids,
        method=how,
        background=background,
        title=str(title),
        evaluation=evaluation,
        frame=frame,
        summary=summary,
    )
    html = render(ctx)
    export_ids = None
    if show_ids and ids is not None:
        export_ids = ids.to_numpy(dtype=object)[rows]
    export_explanations(
        explanation,
        predictions[rows],
        path.with_name(path.stem + "-explanations"),
        ids=export_ids,
    )
    atomic_write_text(path, html)
    return path


def render(ctx: ReportContext) -> str:
    """The report's HTML for a context: every registered section, in order."""
    from graphxfer import __version__

    sections = [
        {"name": s.name, "title": s.title, "blocks": s.build(ctx)} for s in SECTIONS.values()
    ]
    cohort = ctx.cohort
    subtitle = (
        f"Cohort {cohort.name or 'unnamed'}: {len(cohort):,} records. "
        f"Written by graphxfer {__version__}."
    )
    return (
        _environment()
        .get_template("report.html.j2")
        .render(title=ctx.title, subtitle=subtitle, sections=sections)
    )


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(  # autoescape on: column names and values are user data
        autoescape=True,
        loader=PackageLoader("graphxfer.report", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _evaluation(model: Any, evaluation: Any) -> dict[str, Any] | None:
    if evaluation is None:
        own = getattr(model, "evaluation", None)
        record = own() if callable(own) else None
        return None if record is None else dict(record)
    if isinstance(evaluation, (str, os.PathLike)):
        return read_evaluation(evaluation)
    if isinstance(evaluation, Mapping):
        return dict(evaluation)
    raise ReportError(
        f"evaluation must be an evaluation record (model.evaluation()), the path of an "
        f"evaluation file or None, got {type(evaluation).__name__}"
    )


def _select(records: Any, cohort: Cohort, predictions: np.ndarray) -> list[int]:
    n = len(cohort)
    if records is None:
        k = min(DEFAULT_RECORDS, n)
        high = np.argsort(-predictions, kind="stable")[:k]
        low = np.argsort(predictions, kind="stable")[:k]
        return list(dict.fromkeys(int(i) for i in [*high, *low]))
    if isinstance(records, (str, bytes)) or not isinstance(records, (Sequence, np.ndarray)):
        raise ReportError(
            f"records must be a list of row positions (int) or ids (str), got {records!r}"
        )
    ids = cohort.ids
    positions: list[int] = []
    for r in records:
        if isinstance(r, (bool, np.bool_)):
            raise ReportError(f"records holds {r!r}; give row positions (int) or ids (str)")
        if isinstance(r, (int, np.integer)):
            if not 0 <= int(r) < n:
                raise ReportError(f"record position {int(r)} is outside the cohort (0..{n - 1})")
            positions.append(int(r))
        elif isinstance(r, str):
            if ids is None:
                raise ReportError(
                    f"record {r!r} is an id but the cohort has no id column; give row positions"
                )
            matches = np.flatnonzero(ids.to_numpy(dtype=object) == canonical_label(r))
            if len(matches) == 0:
                raise ReportError(f"no record has id {r!r} in column {ids.name!r}")
            positions.extend(int(i) for i in matches)
        else:
            raise ReportError(f"records holds {r!r}; give row positions (int) or ids (str)")
    return list(dict.fromkeys(positions))


def _explained_rows(
    n: int, n_global: int, selected: list[int], random_state: int | None
) -> np.ndarray:
    if n <= n_global:
        return np.arange(n)
    sample = np.random.default_rng(random_state).choice(n, size=n_global, replace=False)
    return np.union1d(sample, np.asarray(selected, dtype=np.int64)).astype(np.int64)


def _explain(
    model: Any,
    frame: pd.DataFrame,
    *,
    method: str,
    n_background: int,
    max_evals: int | None,
    random_state: int | None,
    progress: bool,
) -> tuple[Any, ExplanationInfo]:
    """Explain ``frame``; a long run is announced with an estimate measured on one row.

    The first row is explained on its own (it pays one-time costs such as SHAP's just-in-time
    compilation), the second is timed, and the estimate for the rest is announced (standard
    error, when ``progress``) when it exceeds :data:`LONG_EXPLANATION_S`. All parts use the
    same seed, so they share one background sample. The progress bar shows only on a terminal.
    """
    if random_state is None:  # one draw, shared by every part (same background)
        random_state = int(np.random.default_rng().integers(2**31 - 1))
    options: dict[str, Any] = {
        "n_background": n_background,
        "max_evals": max_evals,
        "random_state": random_state,
        "stacklevel": 4,
    }
    if len(frame) <= 2:
        return explain_details(model, frame, method, progress=False, **options)
    parts = [explain_details(model, frame.iloc[:1], method, progress=False, **options)[0]]
    start = time.perf_counter()
    second, info = explain_details(model, frame.iloc[1:2], method, progress=False, **options)
    parts.append(second)
    estimate = (time.perf_counter() - start) * (len(frame) - 2)
    if estimate > LONG_EXPLANATION_S:
        message = (
            f"Explaining {len(frame):,} records (method {info.method!r}): about "
            f"{_duration(estimate)} (measured on one record)"
        )
        logger.info(message)
        if progress:
            print(message, file=sys.stderr, flush=True)
    show = progress and _on_terminal()
    rest, info = explain_details(
        model, frame.iloc[2:], method, progress=show, announce=False, **options
    )
    parts.append(rest)
    return _stacked(parts), info


def _on_terminal() -> bool:
    """Whether standard error (where progress bars go) is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed
        return False


def _stacked(parts: Sequence[Any]) -> Any:
    """One explanation of the rows of ``parts``, in order."""
    import shap

    shown = None
    if all(part.display_data is not None for part in parts):
        shown = np.concatenate([np.asarray(part.display_data, dtype=object) for part in parts])
    first = parts[0]
    return shap.Explanation(
        values=np.concatenate([part.values for part in parts]),
        base_values=np.concatenate([np.ravel(part.base_values) for part in parts]),
        data=np.concatenate([part.data for part in parts]),
        display_data=shown,
        feature_names=list(first.feature_names),
        output_names=first.output_names,
        compute_time=sum(part.compute_time or 0.0 for part in parts),
    )


def _check_explanation(
    explanation: Any, model: Any, data: Any, frame: pd.DataFrame, predictions: np.ndarray
) -> None:
    """A given explanation must explain these records (same rows, in order), with the model's
    input columns, and reproduce the model's outputs; a clear error says what differs."""
    from graphxfer.explain._codec import FeatureCodec, model_columns

    n = len(frame)
    values = np.asarray(getattr(explanation, "values", None))
    if values.ndim != 2 or values.shape[0] != n:
        raise ReportError(
            f"the explanation has shape {values.shape}; the report needs one row per cohort "
            f"record ({n}): explain(model, cohort) or leave explanation=None"
        )
    try:
        link = link_of(explanation)
        # the explanation may have been computed from the Cohort or from its feature frame,
        # which can state different kinds (a binary column's labels, say): either one will do
        views = [model_columns(model, data)]
        if data is not frame:
            views.append(model_columns(model, frame))
    except Exception as exc:
        raise ReportError(str(exc)) from exc
    names = [str(c) for c in (explanation.feature_names or [])]
    expected = [c.name for c in views[0]]
    if names != expected or values.shape[1] != len(expected):
        raise ReportError(
            f"the explanation's columns {names[:15]} are not the model's input columns "
            f"{expected[:15]}: it explains another model; explain(model, cohort) with this "
            "model or leave explanation=None"
        )
    shown = explanation.display_data is not None
    given = np.asarray(explanation.display_data if shown else explanation.data, dtype=object)
    if given.shape != (n, len(expected)):
        raise ReportError(
            f"the explanation's values have shape {given.shape}; expected {(n, len(expected))}"
        )
    wanted: list[tuple[np.ndarray, list[bool]]] = []
    for columns in views:
        try:
            codec = FeatureCodec.build(columns, [frame])
            if shown:
                wanted.append((codec.display(frame), [False] * len(expected)))
            else:  # without display values, compare the numeric columns only
                coded = [v is not None for v in codec.vocabularies]
                wanted.append((codec.encode(frame).astype(object), coded))
        except Exception as exc:
            raise ReportError(str(exc)) from exc
    for j, name in enumerate(expected):
        differs = [
            np.zeros(n, dtype=bool) if skip[j] else ~_same_values(given[:, j], view[:, j])
            for view, skip in wanted
        ]
        if all(d.any() for d in differs):
            i = int(np.flatnonzero(differs[0])[0])
            raise ReportError(
                f"the explanation does not explain these records: in row {i}, column "
                f"{name!r} is {_shown(given[i, j])} in the explanation and "
                f"{_shown(wanted[0][0][i, j])} in the cohort ({int(differs[0].sum())} of {n} "
                "rows differ in this column); pass the explanation of exactly these records, "
                "in this order, or leave explanation=None"
            )
    outputs = np.ravel(explanation.base_values) + values.sum(axis=1)
    if link == "logit":  # compare as probabilities
        outputs = 1.0 / (1.0 + np.exp(-np.clip(outputs, -500, 500)))
    gap = float(np.median(np.abs(outputs - predictions)))
    if not gap <= _OUTPUT_GAP:
        raise ReportError(
            f"the explanation's outputs (base value + attributions) miss the model's predicted "
            f"probabilities by {gap:.3g} in the median over records (more than {_OUTPUT_GAP:g}): "
            "it explains another model (or another fit of it); explain(model, cohort) with this "
            "model or leave explanation=None"
        )


def _same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cell by cell: both missing, equal numbers, or equal labels."""
    left, right = pd.Series(a, dtype=object), pd.Series(b, dtype=object)
    missing_l, missing_r = left.isna().to_numpy(), right.isna().to_numpy()
    num_l = pd.to_numeric(left, errors="coerce").to_numpy(dtype=np.float64)
    num_r = pd.to_numeric(right, errors="coerce").to_numpy(dtype=np.float64)
    numeric = ~np.isnan(num_l) & ~np.isnan(num_r)
    close = np.zeros(len(left), dtype=bool)
    close[numeric] = np.isclose(num_l[numeric], num_r[numeric], rtol=1e-7, atol=1e-9)
    labels = (left.astype(str) == right.astype(str)).to_numpy()
    both = ~missing_l & ~missing_r
    return (missing_l & missing_r) | (both & numeric & close) | (both & ~numeric & labels)


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    return repr(value)


def _label(k: int, position: int, cohort: Cohort, show_ids: bool) -> str:
    if not show_ids:
        return f"record {k}"
    ids = cohort.ids
    if ids is None:
        return f"row {position}"
    return f"{ids.name} {ids.iloc[position]}"
