"""One self-contained HTML report of a fitted model on a cohort."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphxfer._io import atomic_write_text
from graphxfer.cohort import Cohort
from graphxfer.explain._model import link_of, positive_proba
from graphxfer.explain.explain import explain_details
from graphxfer.explain.export import export_explanations
from graphxfer.release import read_evaluation
from graphxfer.report import sections as _builtin_sections  # noqa: F401  (registers them)
from graphxfer.report.context import DEFAULT_RISK_BANDS, Record, ReportContext
from graphxfer.report.context import risk_bands as parse_risk_bands
from graphxfer.report.exceptions import ReportError
from graphxfer.report.registry import SECTIONS
from graphxfer.schema import canonical_label

__all__ = ["DEFAULT_RECORDS", "render", "report"]

DEFAULT_RECORDS = 3
"""Without ``records``, this many highest-risk and this many lowest-risk records are shown."""


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
    images; a Content-Security-Policy forbids loading anything) with these sections: cohort
    summary, model card (what the model releases: source cohort, encoder, strategy, target
    size, privacy guarantee and ledger, negative-transfer check, alignment, package versions —
    each part says "not available" when the card lacks it), "Computed on private records —
    not covered by ε" (metrics with intervals and the privacy audit from the evaluation, and
    the calibration on the reported cohort), global importance (SHAP beeswarm and bar plots)
    and one part per selected record (prediction, risk band, waterfall plot). Sections
    registered with :func:`register_section` follow.

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
        Explanations of every row of ``cohort`` (from :func:`graphxfer.explain.explain`);
        computed when not given, for a sample of ``n_global`` rows plus the selected records.
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
        Show the explainer's progress bar on long runs.
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

    if explanation is None:
        rows = _explained_rows(len(cohort), n_global, selected, random_state)
        explanation, info = explain_details(
            model,
            frame.iloc[rows],
            method,
            n_background=n_background,
            max_evals=max_evals,
            random_state=random_state,
            progress=progress,
            stacklevel=3,
        )
        how = f"{info.description}; method {info.method!r}"
        background = f"{info.background} ({info.n_background} rows)"
        if info.method == "tree":
            background = "the training data as recorded in the trees (path-dependent TreeSHAP)"
    else:
        rows = np.arange(len(cohort))
        _check_explanation(explanation, len(cohort))
        how, background = "supplied with the report request", "not recorded"

    position_to_row = {int(pos): i for i, pos in enumerate(rows)}
    ids = cohort.ids
    chosen = tuple(
        Record(pos, _label(k, pos, cohort, show_ids), position_to_row[pos])
        for k, pos in enumerate(selected, start=1)
    )
    card = model.model_card() if callable(getattr(model, "model_card", None)) else None
    evaluation = _evaluation(model, evaluation)
    if card is not None and not isinstance(card, dict):
        raise ReportError(f"model.model_card() must return a dict, got {type(card).__name__}")
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


def _check_explanation(explanation: Any, n: int) -> None:
    values = np.asarray(getattr(explanation, "values", None))
    if values.ndim != 2 or values.shape[0] != n:
        raise ReportError(
            f"the explanation has shape {values.shape}; the report needs one row per cohort "
            f"record ({n}): explain(model, cohort) or leave explanation=None"
        )
    try:
        link_of(explanation)
    except Exception as exc:
        raise ReportError(str(exc)) from exc


def _label(k: int, position: int, cohort: Cohort, show_ids: bool) -> str:
    if not show_ids:
        return f"record {k}"
    ids = cohort.ids
    if ids is None:
        return f"row {position}"
    return f"{ids.name} {ids.iloc[position]}"
