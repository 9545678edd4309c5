"""Input handling shared by pretraining, encoders and baselines.

Everything here accepts duck-typed inputs: a plain data frame, or a cohort-like object with an
``X`` data frame, a ``y`` array and ``schema.features`` (``graphxfer.Cohort`` is one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tabular.exceptions import TabularError

__all__ = [
    "as_frame",
    "column_dict",
    "infer_column",
    "outcome",
    "resolve_columns",
    "schema_features",
]

_COLUMN_KEYS = ("name", "kind", "lower", "upper", "categories", "levels")


def as_frame(data: Any, *, what: str = "data") -> pd.DataFrame:
    """The feature frame of ``data``: the frame itself, or ``data.X`` for a cohort-like object."""
    if isinstance(data, pd.DataFrame):
        return data
    X = getattr(data, "X", None)
    if isinstance(X, pd.DataFrame):
        return X
    raise TabularError(
        f"{what} must be a pandas DataFrame or a cohort-like object with an `X` DataFrame, "
        f"got {type(data).__name__}"
    )


def outcome(data: Any) -> np.ndarray | None:
    """The 0/1 outcome of a cohort-like object, or ``None`` when it has none."""
    if isinstance(data, pd.DataFrame):
        return None
    try:
        y = data.y
    except (AttributeError, KeyError, ValueError):  # a cohort without a target column
        return None
    return None if y is None else np.asarray(y)


def schema_features(data: Any) -> list[Any] | None:
    """``data.schema.features`` when ``data`` is cohort-like, else ``None``."""
    schema = getattr(data, "schema", None)
    features = getattr(schema, "features", None)
    return list(features) if features is not None else None


def column_dict(column: Any) -> dict[str, Any]:
    """A JSON-ready dict describing a column-like object or dict (``name``, ``kind``, ...)."""
    if isinstance(column, dict):
        get = column.get
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(column, key, default)

    name = get("name")
    if name is None:
        raise TabularError(f"a column description has no name: {column!r}")
    out: dict[str, Any] = {"name": str(name), "kind": str(get("kind", "numeric"))}
    for key in _COLUMN_KEYS[2:]:
        value = get(key)
        if value is not None:
            out[key] = [str(v) for v in value] if isinstance(value, (list, tuple)) else value
    for key in ("lower", "upper"):
        if key in out:
            out[key] = float(out[key])
    return out


def infer_column(X: pd.DataFrame, name: str) -> dict[str, Any]:
    """Describe column ``name`` of ``X`` from its dtype.

    Booleans become ``binary``, other numbers ``numeric``, everything else ``categorical``
    (its vocabulary is then taken from the source data by the featurizer).
    """
    if name not in X.columns:
        raise TabularError(f"column {name!r} is not in the data; columns are {list(X.columns)}")
    series = X[name]
    if pd.api.types.is_bool_dtype(series):
        return {"name": name, "kind": "binary"}
    if pd.api.types.is_numeric_dtype(series):
        return {"name": name, "kind": "numeric"}
    return {"name": name, "kind": "categorical"}


def resolve_columns(
    data: Any, X: pd.DataFrame, columns: Iterable[Any] | None
) -> list[dict[str, Any]]:
    """The feature columns to use, as dicts.

    ``columns`` may hold column-like objects, dicts, or plain names (whose kind is inferred
    from the dtype). Without ``columns``, a cohort-like ``data`` gives ``data.schema.features``
    and a data frame gives all of its columns, inferred.
    """
    if columns is None:
        features = schema_features(data)
        if features is not None:
            return [column_dict(c) for c in features]
        return [infer_column(X, str(c)) for c in X.columns]
    if isinstance(columns, str):
        raise TabularError("columns must be a list of columns or names, not a single string")
    out = [infer_column(X, c) if isinstance(c, str) else column_dict(c) for c in columns]
    if not out:
        raise TabularError("columns is empty: give at least one feature column")
    return out
