"""Explanations as a table, and as CSV and JSON files."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphxfer._io import atomic_write_text, write_csv_atomic
from graphxfer.explain.exceptions import ExplanationError

__all__ = ["EXPORT_FORMAT", "explanation_frame", "export_explanations"]

EXPORT_FORMAT = 1
"""Version of the JSON layout written by :func:`export_explanations`."""


def explanation_frame(
    explanation: Any, predictions: Any, ids: Sequence[Any] | pd.Series | None = None
) -> pd.DataFrame:
    """One row per explained record: prediction, base value, attributions and original values.

    Parameters
    ----------
    explanation : shap.Explanation
        A two-dimensional explanation ``[n, n_features]``, as :func:`explain` returns.
    predictions : array-like of shape (n,)
        The predicted probability of the positive class of each record.
    ids : sequence of shape (n,), optional
        Record identifiers, written as the first column ``id``. Leave them out to keep
        identifiers out of the table.

    Returns
    -------
    DataFrame
        Columns ``id`` (when given), ``prediction``, ``scale`` (the explained output, from
        ``output_names``), ``base_value``, ``output`` (base value + sum of attributions), then
        ``shap:<column>`` for each attribution and ``value:<column>`` for each original value.

    Examples
    --------
    >>> import numpy as np, shap
    >>> exp = shap.Explanation(np.array([[0.1, -0.2]]), base_values=np.array([0.5]),
    ...                        data=np.array([[1.0, 0.0]]), feature_names=["a", "b"],
    ...                        output_names="probability of the positive class")
    >>> explanation_frame(exp, [0.4]).columns.tolist()
    ['prediction', 'scale', 'base_value', 'output', 'shap:a', 'shap:b', 'value:a', 'value:b']
    """
    values, base, names, shown, scale = _parts(explanation)
    n = len(values)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if len(predictions) != n:
        raise ExplanationError(
            f"{len(predictions)} predictions for an explanation of {n} records; pass one "
            "predicted probability per explained record"
        )
    columns: dict[str, Any] = {}
    if ids is not None:
        ids = list(ids)
        if len(ids) != n:
            raise ExplanationError(f"{len(ids)} ids for an explanation of {n} records")
        columns["id"] = pd.Series(ids, dtype=object)
    columns["prediction"] = predictions
    columns["scale"] = np.full(n, scale, dtype=object)
    columns["base_value"] = base
    columns["output"] = base + values.sum(axis=1)
    for j, name in enumerate(names):
        columns[f"shap:{name}"] = values[:, j]
    for j, name in enumerate(names):
        columns[f"value:{name}"] = pd.Series(shown[:, j], dtype=object)
    return pd.DataFrame(columns)


def export_explanations(
    explanation: Any,
    predictions: Any,
    path_prefix: str | os.PathLike[str],
    *,
    ids: Sequence[Any] | pd.Series | None = None,
) -> tuple[Path, Path]:
    """Write explanations to ``<path_prefix>.csv`` and ``<path_prefix>.json``, atomically.

    The CSV holds :func:`explanation_frame`, safe to open in a spreadsheet: text cells are
    quoted, and those starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    get a leading ``'`` so that they are never run as formulas (numbers stay numbers). The
    JSON holds the same values, unescaped, per record::

        {"format": 1, "scale": ..., "feature_names": [...],
         "records": [{"id": ..., "prediction": ..., "base_value": ..., "output": ...,
                      "attributions": {column: value}, "values": {column: original value}}]}

    ``id`` appears only when ``ids`` is given; missing values are ``null``.

    Returns
    -------
    (csv_path, json_path) : tuple of Path
    """
    frame = explanation_frame(explanation, predictions, ids)
    _, _, names, _, scale = _parts(explanation)
    prefix = Path(path_prefix)
    csv_path = prefix.with_name(prefix.name + ".csv")
    json_path = prefix.with_name(prefix.name + ".json")
    records = []
    for row in frame.to_dict(orient="records"):
        record: dict[str, Any] = {}
        if ids is not None:
            record["id"] = _plain(row["id"])
        for key in ("prediction", "base_value", "output"):
            record[key] = _plain(row[key])
        record["attributions"] = {n: _plain(row[f"shap:{n}"]) for n in names}
        record["values"] = {n: _plain(row[f"value:{n}"]) for n in names}
        records.append(record)
    document = {
        "format": EXPORT_FORMAT,
        "scale": scale,
        "feature_names": list(names),
        "records": records,
    }
    write_csv_atomic(csv_path, frame)
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)
    atomic_write_text(json_path, text + "\n")
    return csv_path, json_path


def _parts(explanation: Any) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, str]:
    values = np.asarray(getattr(explanation, "values", None), dtype=np.float64)
    if values.ndim != 2:
        raise ExplanationError(
            f"expected a two-dimensional explanation [records, features], got shape "
            f"{values.shape}; select one output first"
        )
    n, m = values.shape
    base = np.broadcast_to(np.asarray(explanation.base_values, dtype=np.float64), (n,)).copy()
    names = explanation.feature_names
    names = [f"feature {j}" for j in range(m)] if names is None else [str(x) for x in names]
    shown = explanation.display_data if explanation.display_data is not None else explanation.data
    shown = np.empty((n, m), dtype=object) if shown is None else np.asarray(shown, dtype=object)
    scale = explanation.output_names
    return values, base, names, shown.reshape(n, m), str(scale) if scale is not None else ""


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: Python numbers and strings, None for missing."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
