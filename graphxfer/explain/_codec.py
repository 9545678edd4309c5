"""A numeric view of the model's original input columns, so that SHAP maskers can work on it.

SHAP's maskers replace entries of a numeric matrix. :class:`FeatureCodec` turns the original
columns into such a matrix (numeric and binary columns as they are, categorical and ordinal
columns as integer codes into a vocabulary, missing values as NaN) and back into a data frame
of original values, so a masker always replaces a whole original column and the model only ever
sees values it could meet in real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.explain.exceptions import ExplanationError
from graphxfer.schema import Column, Schema, canonical_label

__all__ = [
    "FeatureCodec",
    "as_frame",
    "column_codes",
    "distinct_rows",
    "labels_of",
    "model_columns",
    "require_columns",
]

_CODED = ("categorical", "ordinal")


def as_frame(data: Any, what: str = "data") -> pd.DataFrame:
    """The feature frame of a Cohort, or a DataFrame as it is."""
    if isinstance(data, Cohort):
        return data.X
    if isinstance(data, pd.DataFrame):
        return data
    raise ExplanationError(
        f"{what} must be a graphxfer Cohort or a pandas DataFrame of the model's input columns, "
        f"got {type(data).__name__}"
    )


def model_columns(model: Any, data: Any) -> list[Column]:
    """The model's input columns, with their kinds and vocabularies where the model states them.

    In order of preference: ``model.feature_schema_`` (a Schema or a list of Columns),
    ``model.feature_names_in_`` (kinds from the schema of ``data`` when it is a Cohort, else
    inferred from the values), the feature columns of a Cohort, or every column of a DataFrame.
    """
    schema = getattr(model, "feature_schema_", None)
    if schema is not None:
        if isinstance(schema, Schema):
            columns = schema.features
        elif isinstance(schema, Sequence) and all(isinstance(c, Column) for c in schema):
            columns = list(schema)
        else:
            raise ExplanationError(
                f"model.feature_schema_ must be a graphxfer Schema or a list of Columns, got "
                f"{type(schema).__name__}"
            )
        if not columns:
            raise ExplanationError("model.feature_schema_ names no feature columns")
        return columns
    names = getattr(model, "feature_names_in_", None)
    frame = as_frame(data)
    if names is not None:
        names = [str(n) for n in names]
        require_columns(frame, names)
        known = {c.name: c for c in data.schema.features} if isinstance(data, Cohort) else {}
        return [known[n] if n in known else _infer_column(frame[n], n) for n in names]
    if isinstance(data, Cohort):
        return data.schema.features
    return [_infer_column(frame[n], str(n)) for n in frame.columns]


def _infer_column(series: pd.Series, name: str) -> Column:
    if pd.api.types.is_bool_dtype(series):
        return Column(name, "binary")
    if pd.api.types.is_numeric_dtype(series):
        return Column(name, "numeric")
    return Column(name, "categorical")


def require_columns(frame: pd.DataFrame, names: Sequence[str]) -> None:
    absent = [n for n in names if n not in frame.columns]
    if absent:
        raise ExplanationError(
            f"the data lacks the model's input column(s) {absent[:10]}; "
            f"data columns are {list(map(str, frame.columns))[:20]}. Pass the columns the model "
            "was fitted on (a Cohort aligned to the source schema, or a DataFrame with them)"
        )


@dataclass(frozen=True)
class FeatureCodec:
    """Encode original columns as a float matrix and decode such a matrix back.

    Attributes
    ----------
    names : tuple of str
        The model's input columns, in order.
    kinds : tuple of str
        Kind of each column (``numeric``, ``binary``, ``categorical``, ``ordinal``).
    vocabularies : tuple
        For coded (categorical, ordinal) columns the labels whose positions are the codes;
        ``None`` for the others.
    binary_labels : tuple
        ``[negative, positive]`` labels of binary columns that declare them, for display.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...] | None, ...]
    binary_labels: tuple[tuple[str, str] | None, ...]

    @classmethod
    def build(cls, columns: Sequence[Column], frames: Sequence[pd.DataFrame]) -> FeatureCodec:
        """A codec for ``columns`` whose vocabularies also cover every label in ``frames``.

        A declared vocabulary keeps its order; labels seen only in the data are appended in
        sorted order, so every value of the data has a code.
        """
        names = tuple(c.name for c in columns)
        if len(set(names)) != len(names):
            raise ExplanationError(f"the model's input columns repeat: {list(names)}")
        for frame in frames:
            require_columns(frame, names)
        vocabularies: list[tuple[str, ...] | None] = []
        binary_labels: list[tuple[str, str] | None] = []
        for col in columns:
            labels = None
            if col.kind in _CODED:
                known = list(col.vocabulary or [])
                seen: set[str] = set()
                for frame in frames:
                    seen.update(labels_of(frame[col.name]).dropna().tolist())
                extra = sorted(seen - set(known))
                labels = tuple(known + extra)
            vocabularies.append(labels)
            cats = col.categories if col.kind == "binary" else None
            binary_labels.append((cats[0], cats[1]) if cats is not None else None)
        return cls(names, tuple(c.kind for c in columns), tuple(vocabularies), tuple(binary_labels))

    @property
    def n_features(self) -> int:
        """Number of original columns."""
        return len(self.names)

    @property
    def categorical(self) -> list[str]:
        """Names of the coded (categorical and ordinal) columns."""
        return [n for n, v in zip(self.names, self.vocabularies) if v is not None]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 matrix ``[n, n_features]`` of ``frame``'s columns (codes for categories).

        Shapes: ``frame`` ``[n, *]`` -> ``[n, n_features]``.
        """
        require_columns(frame, self.names)
        out = np.empty((len(frame), self.n_features), dtype=np.float64)
        for j, (name, vocab) in enumerate(zip(self.names, self.vocabularies)):
            series = frame[name]
            if vocab is None:
                values = pd.to_numeric(series, errors="coerce")
                bad = values.isna() & series.notna()
                if bad.any():
                    raise ExplanationError(
                        f"column {name!r} is numeric for the model but holds non-numeric values "
                        f"{series[bad].astype(str).unique()[:5].tolist()}"
                    )
                out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                labels = labels_of(series)
                codes = labels.map({label: float(i) for i, label in enumerate(vocab)})
                unknown = labels.notna() & codes.isna()
                if unknown.any():
                    raise ExplanationError(
                        f"column {name!r} holds categories {sorted(set(labels[unknown]))[:5]} "
                        "that the explanation's vocabulary lacks; build it from this data"
                    )
                out[:, j] = codes.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """The data frame of original values (categories as strings, dtype object) of a matrix.

        Shapes: ``[n, n_features]`` -> DataFrame ``[n, n_features]``.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ExplanationError(
                f"expected a matrix with {self.n_features} columns, got shape {matrix.shape}"
            )
        columns: dict[str, pd.Series] = {}
        for j, (name, vocab) in enumerate(zip(self.names, self.vocabularies)):
            column = matrix[:, j]
            if vocab is None:
                columns[name] = pd.Series(column, copy=False)
                continue
            labels = np.full(len(column), np.nan, dtype=object)
            present = ~np.isnan(column)
            labels[present] = np.asarray(vocab, dtype=object)[column[present].astype(np.int64)]
            columns[name] = pd.Series(labels, dtype=object)
        return pd.DataFrame(columns)

    def display(self, frame: pd.DataFrame) -> np.ndarray:
        """Original values for display: numbers, category labels and binary labels, NaN missing.

        Shapes: ``frame`` ``[n, *]`` -> object array ``[n, n_features]``.
        """
        out = np.empty((len(frame), self.n_features), dtype=object)
        for j, (name, vocab, pair) in enumerate(
            zip(self.names, self.vocabularies, self.binary_labels)
        ):
            series = frame[name]
            if vocab is not None:
                values = labels_of(series)
            else:
                values = pd.to_numeric(series, errors="coerce").astype("float64")
                if pair is not None:
                    values = values.map(
                        lambda v, pair=pair: pair[int(v)] if v in (0.0, 1.0) else v
                    ).astype(object)
            out[:, j] = values.to_numpy(dtype=object)
        return out


def labels_of(series: pd.Series) -> pd.Series:
    """Canonical string labels of a coded column (NaN where missing)."""
    return series.astype(object).map(canonical_label).astype(object)


def column_codes(matrix: np.ndarray) -> np.ndarray:
    """Integer codes of the values of each column of a codec matrix: equal values (two
    missing values included) share a code. Shapes: ``[n, m]`` -> ``[n, m]``."""
    codes = np.empty(matrix.shape, dtype=np.int64)
    for j in range(matrix.shape[1]):
        codes[:, j] = np.unique(matrix[:, j], return_inverse=True)[1].reshape(-1)
    return codes


def distinct_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the distinct rows of a codec matrix first appear (in that order), and for every
    row the position of its distinct row among them; missing values are equal.

    Shapes: ``[n, m]`` -> ``[d]``, ``[n]``.
    """
    if len(matrix) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(
        column_codes(matrix), axis=0, return_index=True, return_inverse=True
    )
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.reshape(-1)]
