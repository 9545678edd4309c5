"""What a fitted model releases, and what stays with the evaluation of private records.

One rule, applied here and nowhere else: under differential privacy, every number computed
from the target's training records is either part of an accounted DP release (its epsilon is
in the privacy ledger) or it is not released. Column names, the declared schema, the user's
own options (mapping, recoding, conversions) and the number of persons n are public; Opacus'
accounting treats n as public too. :func:`released_state` builds the released view of a fit:
the model file's metadata, the model card, reports and the command line all read it. Without
privacy nothing is withheld.

Metrics and audits computed on private records (``add_metrics``, ``audit``) are not covered by
epsilon. They never enter the model file: :func:`evaluation_record` gathers them into a
separate evaluation file (:func:`write_evaluation`), marked as outside epsilon, and reports
show them in their own section.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphxfer._io import atomic_write_text
from graphxfer.exceptions import (
    GraphxferError,
    IdentifierLikeColumnWarning,
    UnknownCategoryWarning,
)

__all__ = [
    "EVALUATION_FORMAT",
    "EVALUATION_NOTE",
    "EVALUATION_TITLE",
    "evaluation_record",
    "fit_privacy",
    "format_alignment",
    "model_card",
    "read_evaluation",
    "released_alignment",
    "released_state",
    "withheld_data_warnings",
    "write_evaluation",
]

EVALUATION_FORMAT = "graphxfer.evaluation"
_EVALUATION_VERSION = 1
EVALUATION_TITLE = "Computed on private records — not covered by ε"
EVALUATION_NOTE = (
    "Computed on private target records (held-out or training) without differential privacy: "
    "not covered by the model's epsilon, and not part of the model file. Share it only as the "
    "data-use agreement allows."
)

# Under privacy, the keys released from each part of a fit (everything else is withheld).
_PHASE_KEYS = (
    "private",
    "ledger_entry",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "epsilon",
    "delta",
    "unit",
    "n_persons",
    "trainable",
    "device",
)
_FINE_TUNE_KEYS = ("strategy", "private", "epsilon", "delta", "composition")
_WITHHELD = (
    "per-epoch training losses and row counts (fine_tune.phases[].history)",
    "wall-clock times of the training phases",
    "the number of training rows when persons repeat (n_rows; n_persons is public)",
    "the outcome's positive rate",
    "counts of recoded values and of categories mapped to '<unknown>' per column",
)


def released_alignment(report: Any, private: bool) -> dict[str, Any]:
    """The alignment report as released: under privacy without its counts.

    The columns matched, renamed, converted, coerced, missing and extra follow from the two schemas
    and the user's options; which columns were recoded follows from ``recode``. The number of
    values each recoding changed and the categories mapped to ``"<unknown>"`` are counts over
    the target records: ``None`` (withheld) under privacy.
    """
    out = report.to_dict()
    if private:
        out["recoded"] = {column: None for column in out["recoded"]}
        out["unknown_categories"] = None
    return out


def format_alignment(alignment: Mapping[str, Any]) -> str:
    """A released alignment (:func:`released_alignment`) as text, one line per kind."""

    def names(key: str) -> str:
        value = alignment.get(key) or []
        return f"({len(value)}): {', '.join(map(str, value)) or '-'}"

    renamed = alignment.get("renamed") or {}
    recoded = alignment.get("recoded") or {}
    converted = alignment.get("converted") or {}
    lines = ["Alignment report"]
    lines.append(f"  matched   {names('matched')}")
    ren = ", ".join(f"{a} -> {b}" for a, b in renamed.items())
    lines.append(f"  renamed   ({len(renamed)}): {ren or '-'}")
    rec = ", ".join(a if n is None else f"{a} ({n} values)" for a, n in recoded.items())
    lines.append(f"  recoded   ({len(recoded)}): {rec or '-'}")
    conv = ", ".join(f"{a} (x{f:g} {o:+g})" for a, (f, o) in converted.items())
    lines.append(f"  converted ({len(converted)}): {conv or '-'}")
    coerced = alignment.get("coerced") or {}
    kinds = ", ".join(f"{a} ({r.get('from')} -> {r.get('to')})" for a, r in coerced.items())
    lines.append(f"  coerced   ({len(coerced)}): {kinds or '-'}")
    lines.append(f"  missing   {names('missing')}")
    lines.append(f"  extra     {names('extra')}")
    unknown = alignment.get("unknown_categories")
    if unknown is None:
        lines.append("  counts of recoded values and unknown categories: withheld (private fit)")
    elif unknown:
        lines.append("  unknown categories: " + ", ".join(f"{a} ({n})" for a, n in unknown.items()))
    return "\n".join(lines)


def fit_privacy(model: Any) -> dict[str, Any] | None:
    """The guarantee of a private fit: its own composed epsilon and delta, its ledger entries,
    and the total spent so far on its data set (``data_id``); ``None`` without privacy."""
    ledger = getattr(model, "ledger_", None)
    if getattr(model, "privacy", None) is None or ledger is None:
        return None
    fit_ledger = getattr(model, "fit_ledger_", None) or ledger
    data_id = getattr(model, "data_id_", None)
    own = fit_ledger.total_spent()
    on_data = ledger.total_spent(data_id)
    norms = {e.max_grad_norm for e in fit_ledger.entries if e.max_grad_norm is not None}
    return {
        "epsilon": float(own.epsilon),
        "delta": float(own.delta),
        "accountant": model.privacy.accountant,
        "max_grad_norm": norms.pop() if len(norms) == 1 else model.privacy.max_grad_norm,
        "composition": own.method,
        "ledger": [e.to_dict() for e in fit_ledger.entries],
        "data_id": data_id,
        "spent_on_data": {
            "epsilon": float(on_data.epsilon),
            "delta": float(on_data.delta),
            "releases": on_data.n_entries,
            "composition": on_data.method,
        },
    }


def _fit_entry_positions(model: Any) -> list[int]:
    ledger, fit_ledger = model.ledger_, getattr(model, "fit_ledger_", None)
    if fit_ledger is None:
        return list(range(len(ledger)))
    n_fit = len(fit_ledger)
    return list(range(len(ledger) - n_fit, len(ledger)))


def _released_fine_tune(fine_tune: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: fine_tune[k] for k in _FINE_TUNE_KEYS if k in fine_tune}
    out["phases"] = [
        {k: phase[k] for k in _PHASE_KEYS if k in phase} for phase in fine_tune.get("phases", [])
    ]
    return out


def released_state(model: Any) -> dict[str, Any]:
    """The released view of a fitted :class:`~graphxfer.TransferClassifier`.

    Everything the model file holds besides the weights and the encoder; the model card,
    reports and the command line show nothing else about the fit.

    Under privacy it holds: the parameters, the declared feature schema, the target adapter
    (the source schema, the user's mapping, recoding and conversions, and the feature columns:
    nothing computed from the records), the alignment without
    its counts, the ledger of the target data set (``data_id``) with the positions of this
    fit's entries, the guarantee (:func:`fit_privacy`), the fine-tuning summary restricted to
    its calibration (noise multiplier, sample rate, steps, epsilon, delta, n), the public
    hyper-parameters and the transfer check (a DP selection under privacy). It withholds what
    ``withheld`` lists: losses, timings, row counts, the positive rate and alignment counts.

    Returns
    -------
    dict
        JSON-ready.
    """
    private = model.privacy is not None
    params = model.get_params()
    params["encoder"] = None
    params["ledger"] = None  # a ledger object or a local path: not part of the model
    if params.get("privacy") is not None:
        params["privacy"] = model.privacy.to_dict()
    ledger = getattr(model, "ledger_", None)
    summary = dict(model.training_summary_)
    fine_tune = dict(model.fine_tune_)
    if private:
        summary["n_rows"] = None
        summary["positive_rate"] = None
        fine_tune = _released_fine_tune(fine_tune)
    privacy = fit_privacy(model)
    if privacy is not None:
        privacy["fit_entries"] = _fit_entry_positions(model)
    hyper = getattr(model, "hyperparameters_", None)
    return {
        "private": private,
        "params": params,
        "adapter": model.adapter_.to_dict(),
        "feature_schema": model.feature_schema_.to_dict(),
        "alignment": released_alignment(model.alignment_report_, private),
        "ignored_columns": list(model.ignored_columns_),
        "ledger": None if ledger is None else ledger.to_dict(),
        "privacy": privacy,
        "fine_tune": fine_tune,
        "hyperparameters": None if hyper is None else dict(hyper),
        "transfer_check": model.transfer_check_,
        "training_summary": summary,
        "withheld": list(_WITHHELD) if private else [],
    }


def model_card(model: Any) -> dict[str, Any]:
    """The facts a report shows about a fitted :class:`~graphxfer.TransferClassifier`.

    Only what the fit releases (:func:`released_state`): under privacy nothing computed from
    the training records outside the ledger. Metrics and audits are not part of it (see
    :func:`evaluation_record`).
    """
    from graphxfer.modelfile import package_versions

    state = released_state(model)
    privacy = state["privacy"]
    if privacy is not None:
        privacy = {k: v for k, v in privacy.items() if k != "fit_entries"}
    encoder = model.encoder_
    source = dict(encoder.source_summary)
    source.pop("marginals", None)
    return {
        "title": f"{encoder.name} transferred to {model.training_summary_.get('name')}",
        "source": source,
        "encoder": {
            "name": encoder.name,
            "kind": encoder.kind,
            "pretraining_epochs": len(encoder.history),
        },
        "strategy": model.strategy,
        "hyperparameters": state["hyperparameters"],
        "target_size": state["training_summary"]["n_persons"],
        "privacy": privacy,
        "transfer_check": state["transfer_check"],
        "alignment": state["alignment"],
        "withheld": state["withheld"],
        "package_versions": package_versions(),
    }


# ---------------------------------------------------------------------- warnings during a fit
_DATA_WARNINGS: tuple[type[Warning], ...] = (UnknownCategoryWarning, IdentifierLikeColumnWarning)


@contextlib.contextmanager
def withheld_data_warnings(private: bool) -> Iterator[None]:
    """Under privacy, strip the counts, values and columns from warnings about the records.

    Validating a private cohort warns about unknown categories (with their counts and values)
    and identifier-like columns. Inside this block such warnings are replaced by one warning
    per kind that says only that it happened; the fitted ``alignment_report_`` (kept in
    memory, never released) holds the details for the data holder. Other warnings pass
    through unchanged.
    """
    if not private:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    kinds: list[type[Warning]] = []
    for w in caught:
        if issubclass(w.category, _DATA_WARNINGS):
            if w.category not in kinds:
                kinds.append(w.category)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    for kind in kinds:
        what = (
            "categories outside the source vocabulary were mapped to '<unknown>'"
            if issubclass(kind, UnknownCategoryWarning)
            else "a feature column looks like an identifier"
        )
        warnings.warn(
            f"the target records raised a data warning ({what}); under differential privacy "
            "its columns, counts and values are not shown. Inspect the data locally; the "
            "fitted alignment_report_ holds the counts in memory (they are never saved)",
            kind,
            stacklevel=5,  # this generator, contextlib, the fit's helper, fit, the caller
        )


# ---------------------------------------------------------------------- evaluation files
def evaluation_record(model: Any) -> dict[str, Any] | None:
    """The measurements of ``model`` on private records (``metrics_``, ``audit_``), marked as
    outside epsilon; ``None`` when nothing was measured."""
    metrics = [dict(m) for m in getattr(model, "metrics_", None) or []]
    audit = getattr(model, "audit_", None)
    if not metrics and audit is None:
        return None
    privacy = fit_privacy(model)
    summary = getattr(model, "training_summary_", {}) or {}
    return {
        "format": EVALUATION_FORMAT,
        "version": _EVALUATION_VERSION,
        "covered_by_epsilon": False,
        "note": EVALUATION_NOTE,
        "model": {
            "target": summary.get("name"),
            "strategy": getattr(model, "strategy", None),
            "private": privacy is not None,
            "epsilon": None if privacy is None else privacy["epsilon"],
            "data_id": None if privacy is None else privacy["data_id"],
        },
        "metrics": metrics,
        "audit": None if audit is None else dict(audit),
    }


def write_evaluation(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write an evaluation record as JSON, atomically; returns the path."""
    path = Path(path)
    if path.is_dir():
        raise GraphxferError(f"{str(path)!r} is a folder; give the path of the JSON file to write")
    _check_evaluation(record, str(path))
    text = json.dumps(dict(record), indent=2, allow_nan=False, default=_plain) + "\n"
    atomic_write_text(path, text)
    return path


def read_evaluation(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an evaluation file written by :func:`write_evaluation`."""
    file = Path(path)
    if not file.is_file():
        raise GraphxferError(f"evaluation file {str(file)!r} does not exist")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphxferError(f"evaluation file {str(file)!r} is not valid JSON ({exc})") from exc
    _check_evaluation(record, str(file))
    return dict(record)


def _check_evaluation(record: Any, where: str) -> None:
    if not isinstance(record, Mapping) or record.get("format") != EVALUATION_FORMAT:
        raise GraphxferError(
            f"{where}: not a graphxfer evaluation (expected format={EVALUATION_FORMAT!r}); "
            "write one with model.save_evaluation(path)"
        )
    if record.get("version") != _EVALUATION_VERSION:
        raise GraphxferError(
            f"{where}: evaluation version {record.get('version')!r} is not supported "
            f"(expected {_EVALUATION_VERSION})"
        )
    if record.get("covered_by_epsilon") is not False:
        raise GraphxferError(f"{where}: an evaluation must be marked covered_by_epsilon=false")
    metrics = record.get("metrics")
    if not isinstance(metrics, Sequence) or isinstance(metrics, str):
        raise GraphxferError(f"{where}: 'metrics' must be a list")
    if record.get("audit") is not None and not isinstance(record["audit"], Mapping):
        raise GraphxferError(f"{where}: 'audit' must be a mapping or null")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in metrics and audits become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
