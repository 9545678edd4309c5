"""Schema-driven preprocessing, fitted on the source cohort only.

The :class:`Featurizer` turns a data frame into three arrays per record: standardised numeric
values, a missing-value mask and category indices (``0`` = missing, ``1`` = unknown). Its state
comes from the data passed to :meth:`Featurizer.fit` (the *source* cohort, public to the target)
or from bounds and vocabularies declared in the schema. Transforming other data never changes
it, which is what keeps differentially private fine-tuning honest (no silent target statistics).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from tabular.exceptions import FeaturizerError, NotFittedError

__all__ = ["MISSING_INDEX", "UNKNOWN_INDEX", "ColumnLike", "FeatureBatch", "Featurizer"]

MISSING_INDEX = 0
UNKNOWN_INDEX = 1
_FORMAT = 1
_CATEGORICAL_KINDS = ("categorical", "binary")
_NUMERIC_KINDS = ("numeric", "ordinal")


@runtime_checkable
class ColumnLike(Protocol):
    """What the featurizer needs to know about a column (``graphxfer.Column`` satisfies it)."""

    name: str
    kind: str
    lower: float | None
    upper: float | None
    categories: list[str] | None
    levels: list[str] | None


@dataclass(frozen=True)
class FeatureBatch:
    """Featurised records.

    Attributes
    ----------
    numeric : ndarray of shape (n, n_numeric), float32
        Standardised numeric and ordinal values; 0 where missing.
    missing : ndarray of shape (n, n_numeric), bool
        True where the numeric value is missing.
    categorical : ndarray of shape (n, n_categorical), int64
        Category indices: 0 missing, 1 unknown, 2.. the vocabulary.
    """

    numeric: np.ndarray
    missing: np.ndarray
    categorical: np.ndarray

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def take(self, rows: np.ndarray | Sequence[int]) -> FeatureBatch:
        """The records at positions ``rows``."""
        idx = np.asarray(rows)
        return FeatureBatch(self.numeric[idx], self.missing[idx], self.categorical[idx])

    def to_tensors(self, device: Any = "cpu") -> tuple[Any, Any, Any]:
        """``(numeric, missing, categorical)`` as torch tensors on ``device``."""
        import torch

        return (
            torch.as_tensor(self.numeric, device=device),
            torch.as_tensor(self.missing, device=device),
            torch.as_tensor(self.categorical, device=device),
        )

    @staticmethod
    def concat(parts: Sequence[FeatureBatch]) -> FeatureBatch:
        """Stack batches row-wise."""
        return FeatureBatch(
            np.concatenate([p.numeric for p in parts]),
            np.concatenate([p.missing for p in parts]),
            np.concatenate([p.categorical for p in parts]),
        )


@dataclass
class _Spec:
    name: str
    kind: str
    lower: float | None = None
    upper: float | None = None
    vocabulary: list[str] | None = None  # declared categories (categorical/binary) or levels


def _spec(col: ColumnLike | dict[str, Any]) -> _Spec:
    get = col.get if isinstance(col, dict) else lambda k, d=None: getattr(col, k, d)
    name, kind = get("name"), get("kind", "numeric")
    if kind not in _CATEGORICAL_KINDS + _NUMERIC_KINDS:
        raise FeaturizerError(f"column {name!r}: unknown kind {kind!r}")
    if kind == "ordinal":
        vocab = get("levels")
        if not vocab:
            raise FeaturizerError(f"ordinal column {name!r} needs its ordered levels")
    elif kind == "binary":
        vocab = ["0", "1"]  # binary values arrive as 0.0 / 1.0
    else:
        vocab = get("categories")
    return _Spec(
        name=str(name),
        kind=str(kind),
        lower=get("lower"),
        upper=get("upper"),
        vocabulary=list(vocab) if vocab is not None else None,
    )


class Featurizer:
    """Schema-driven preprocessing with state from the source cohort only.

    Numeric columns are standardised with the source mean and standard deviation (or, for
    columns added with :meth:`extend`, with the centre and spread of their declared bounds);
    ordinal columns become their level index, standardised the same way; categorical and
    binary columns become indices into the source vocabulary (declared categories first,
    otherwise the categories observed in the source, by frequency).

    Parameters
    ----------
    clip : float, default=10.0
        Standardised values are clipped to ``[-clip, clip]``.
    min_frequency : int, default=1
        Observed categories seen fewer times in the source map to "unknown" (declared
        categories are always kept).

    Attributes
    ----------
    numeric_columns_ : list of str
        Numeric and ordinal columns, in order.
    categorical_columns_ : list of str
        Categorical and binary columns, in order.
    center_, scale_ : ndarray of shape (n_numeric,)
        Standardisation per numeric column.
    vocabularies_ : dict of str to list of str
        Vocabulary per categorical column (index 2 is the first entry).
    n_source_rows_ : int
        Number of rows the featurizer was fitted on.

    Examples
    --------
    >>> import pandas as pd
    >>> from tabular import Featurizer
    >>> cols = [{"name": "age", "kind": "numeric"}, {"name": "cp", "kind": "categorical"}]
    >>> src = pd.DataFrame({"age": [40.0, 60.0], "cp": ["a", "b"]})
    >>> fz = Featurizer().fit(src, cols)
    >>> fz.transform(pd.DataFrame({"age": [50.0], "cp": ["z"]})).categorical.tolist()
    [[1]]
    """

    def __init__(self, *, clip: float = 10.0, min_frequency: int = 1) -> None:
        self.clip = clip
        self.min_frequency = min_frequency

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, columns: Iterable[ColumnLike | dict[str, Any]]) -> Featurizer:
        """Fit on the source data ``X`` for the given feature ``columns``.

        Parameters
        ----------
        X : DataFrame
            Source records (canonical cohort values: numbers, 0/1 binaries, string labels).
        columns : iterable of column-like objects or dicts
            The feature columns (``name``, ``kind``, ``lower``, ``upper``, ``categories``,
            ``levels``), e.g. ``schema.features``.

        Returns
        -------
        self
        """
        self._start(columns)
        self.partial_fit(X)
        return self._finish()

    def partial_fit(self, X: pd.DataFrame) -> Featurizer:
        """Accumulate statistics from one chunk of source rows (streaming fit).

        Call :meth:`start_streaming` first and :meth:`finish_streaming` after the last chunk;
        :meth:`fit` does all three on one frame.
        """
        if not hasattr(self, "_acc"):
            raise FeaturizerError("call start_streaming(columns) before partial_fit")
        if not isinstance(X, pd.DataFrame):
            raise FeaturizerError(f"X must be a DataFrame, got {type(X).__name__}")
        acc = self._acc
        for spec in self._specs:
            if spec.name not in X.columns:
                raise FeaturizerError(
                    f"source data lacks column {spec.name!r}; the featurizer is fitted on the "
                    "source cohort, which must hold every feature of its schema"
                )
            col = X[spec.name]
            if spec.kind == "numeric":
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
                values = values[~np.isnan(values)]
                a = acc[spec.name]
                a["n"] += values.size
                a["sum"] += float(values.sum())
                a["sumsq"] += float(np.square(values).sum())
            elif spec.kind == "ordinal":
                idx = _ordinal_index(col, spec)
                idx = idx[~np.isnan(idx)]
                a = acc[spec.name]
                a["n"] += idx.size
                a["sum"] += float(idx.sum())
                a["sumsq"] += float(np.square(idx).sum())
            else:
                counts = _labels(col, spec).value_counts()
                a = acc[spec.name]
                for label, count in counts.items():
                    a[label] = a.get(label, 0) + int(count)
        self._acc_rows += len(X)
        return self

    def start_streaming(self, columns: Iterable[ColumnLike | dict[str, Any]]) -> Featurizer:
        """Begin a streaming fit over ``columns``; feed chunks with :meth:`partial_fit`."""
        self._start(columns)
        return self

    def finish_streaming(self) -> Featurizer:
        """Finalise a streaming fit."""
        return self._finish()

    def _start(self, columns: Iterable[ColumnLike | dict[str, Any]]) -> None:
        specs = [_spec(c) for c in columns]
        if not specs:
            raise FeaturizerError("no feature columns to fit")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise FeaturizerError(f"feature columns repeat: {names}")
        self._specs = specs
        self._acc: dict[str, dict[str, Any]] = {
            s.name: ({"n": 0, "sum": 0.0, "sumsq": 0.0} if s.kind in _NUMERIC_KINDS else {})
            for s in specs
        }
        self._acc_rows = 0

    def _finish(self) -> Featurizer:
        if not hasattr(self, "_acc"):
            raise FeaturizerError("nothing to finish: call start_streaming first")
        if self._acc_rows == 0:
            raise FeaturizerError("the source data has no rows")
        numeric, categorical = [], []
        center, scale, vocabularies, kinds = [], [], {}, {}
        levels: dict[str, list[str]] = {}
        bounds: dict[str, list[float | None]] = {}
        for spec in self._specs:
            acc = self._acc[spec.name]
            kinds[spec.name] = spec.kind
            if spec.kind in _NUMERIC_KINDS:
                if acc["n"] == 0:
                    raise FeaturizerError(
                        f"column {spec.name!r} has no observed value in the source data, so it "
                        "cannot be standardised; drop it from the source schema"
                    )
                mean = acc["sum"] / acc["n"]
                var = max(acc["sumsq"] / acc["n"] - mean * mean, 0.0)
                std = math.sqrt(var)
                numeric.append(spec.name)
                center.append(mean)
                scale.append(std if std > 1e-12 else 1.0)
                bounds[spec.name] = [spec.lower, spec.upper]
                if spec.kind == "ordinal":
                    levels[spec.name] = list(spec.vocabulary or [])
            else:
                categorical.append(spec.name)
                if spec.vocabulary is not None:
                    vocab = list(spec.vocabulary)
                else:
                    observed = sorted(
                        ((lab, n) for lab, n in acc.items() if n >= self.min_frequency),
                        key=lambda t: (-t[1], t[0]),
                    )
                    vocab = [lab for lab, _ in observed]
                vocabularies[spec.name] = vocab
        self.numeric_columns_ = numeric
        self.categorical_columns_ = categorical
        self.center_ = np.asarray(center, dtype=np.float64)
        self.scale_ = np.asarray(scale, dtype=np.float64)
        self.vocabularies_ = vocabularies
        self.levels_ = levels
        self.kinds_ = kinds
        self.bounds_ = bounds
        self.n_source_rows_ = int(self._acc_rows)
        self.origin_ = dict.fromkeys(numeric + categorical, "source")
        del self._acc, self._specs, self._acc_rows
        return self

    # ------------------------------------------------------------------ extension
    def extend(self, columns: Iterable[ColumnLike | dict[str, Any]]) -> Featurizer:
        """A copy that also handles columns the source lacks, using declared information only.

        Numeric columns need declared ``lower`` and ``upper`` bounds (centre = midpoint, scale =
        a quarter of the range); categorical columns need declared categories; ordinal columns
        their levels. No statistic of any data is used, so adding target-only columns costs no
        privacy budget.

        Raises
        ------
        FeaturizerError
            A numeric column without declared bounds, or a categorical column without a
            declared vocabulary. Declare them in the schema, or derive bounds with a DP
            mechanism (``privacy.dp_bounds``) and charge them to the ledger.
        """
        self._check_fitted()
        new = Featurizer.from_state(self.state_dict())
        center, scale = list(new.center_), list(new.scale_)
        for col in columns:
            spec = _spec(col)
            if spec.name in new.kinds_:
                raise FeaturizerError(f"column {spec.name!r} is already known to the featurizer")
            if spec.kind == "numeric":
                if spec.lower is None or spec.upper is None:
                    raise FeaturizerError(
                        f"target-only numeric column {spec.name!r} has no declared bounds; "
                        "scaling it from target data would leak it. Declare lower/upper in the "
                        "schema (public knowledge), or compute DP bounds with privacy.dp_bounds"
                    )
                lo, hi = float(spec.lower), float(spec.upper)
                center.append((lo + hi) / 2.0)
                scale.append((hi - lo) / 4.0 if hi > lo else 1.0)
                new.numeric_columns_.append(spec.name)
                new.bounds_[spec.name] = [lo, hi]
            elif spec.kind == "ordinal":
                k = len(spec.vocabulary or [])
                center.append((k - 1) / 2.0)
                scale.append(max(k - 1, 1) / 4.0)
                new.numeric_columns_.append(spec.name)
                new.levels_[spec.name] = list(spec.vocabulary or [])
                new.bounds_[spec.name] = [None, None]
            else:
                if spec.vocabulary is None:
                    raise FeaturizerError(
                        f"target-only categorical column {spec.name!r} has no declared "
                        "categories; list its vocabulary in the schema (taking it from target "
                        "data would leak which rare categories occur)"
                    )
                new.categorical_columns_.append(spec.name)
                new.vocabularies_[spec.name] = list(spec.vocabulary)
            new.kinds_[spec.name] = spec.kind
            new.origin_[spec.name] = "declared"
        new.center_ = np.asarray(center, dtype=np.float64)
        new.scale_ = np.asarray(scale, dtype=np.float64)
        return new

    # ------------------------------------------------------------------ transform
    def transform(self, X: pd.DataFrame) -> FeatureBatch:
        """Featurise ``X``. Columns absent from ``X`` are missing for every record.

        Never changes the featurizer's state.
        """
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise FeaturizerError(f"X must be a DataFrame, got {type(X).__name__}")
        n = len(X)
        numeric = np.zeros((n, len(self.numeric_columns_)), dtype=np.float32)
        missing = np.ones((n, len(self.numeric_columns_)), dtype=bool)
        for j, name in enumerate(self.numeric_columns_):
            if name not in X.columns:
                continue
            if self.kinds_[name] == "ordinal":
                spec = _Spec(name, "ordinal", vocabulary=self.levels_[name])
                values = _ordinal_index(X[name], spec)
            else:
                values = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=np.float64)
            miss = np.isnan(values)
            z = (values - self.center_[j]) / self.scale_[j]
            z = np.clip(np.nan_to_num(z, nan=0.0), -self.clip, self.clip)
            numeric[:, j] = z
            missing[:, j] = miss
        categorical = np.zeros((n, len(self.categorical_columns_)), dtype=np.int64)
        for j, name in enumerate(self.categorical_columns_):
            if name not in X.columns:
                continue
            vocab = self.vocabularies_[name]
            labels = _labels(X[name], _Spec(name, self.kinds_[name]))
            codes = pd.Index(vocab, dtype=object).get_indexer(labels.to_numpy(dtype=object))
            idx = np.where(codes >= 0, codes + 2, UNKNOWN_INDEX)
            idx = np.where(labels.isna().to_numpy(), MISSING_INDEX, idx)
            categorical[:, j] = idx
        return FeatureBatch(numeric, missing, categorical)

    def inverse_numeric(self, name: str, z: np.ndarray) -> np.ndarray:
        """Map standardised values of numeric column ``name`` back to original units."""
        self._check_fitted()
        j = self.numeric_columns_.index(name)
        return np.asarray(z, dtype=np.float64) * self.scale_[j] + self.center_[j]

    # ------------------------------------------------------------------ state
    @property
    def feature_names_in_(self) -> list[str]:
        """All columns the featurizer handles: numeric first, then categorical."""
        self._check_fitted()
        return [*self.numeric_columns_, *self.categorical_columns_]

    @property
    def cardinalities_(self) -> list[int]:
        """Number of indices per categorical column (vocabulary + missing + unknown)."""
        self._check_fitted()
        return [len(self.vocabularies_[c]) + 2 for c in self.categorical_columns_]

    def _check_fitted(self) -> None:
        if not hasattr(self, "center_"):
            raise NotFittedError(
                "this Featurizer is not fitted yet; call fit(source_data, columns)"
            )

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state (no arrays of records, only per-column statistics)."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "params": {"clip": self.clip, "min_frequency": self.min_frequency},
            "numeric_columns": list(self.numeric_columns_),
            "categorical_columns": list(self.categorical_columns_),
            "center": [float(v) for v in self.center_],
            "scale": [float(v) for v in self.scale_],
            "vocabularies": {k: list(v) for k, v in self.vocabularies_.items()},
            "levels": {k: list(v) for k, v in self.levels_.items()},
            "kinds": dict(self.kinds_),
            "bounds": {k: list(v) for k, v in self.bounds_.items()},
            "origin": dict(self.origin_),
            "n_source_rows": self.n_source_rows_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Featurizer:
        """Rebuild a fitted featurizer from :meth:`state_dict` output."""
        try:
            if state["format"] != _FORMAT:
                raise FeaturizerError(f"unknown featurizer format {state['format']!r}")
            obj = cls(**state["params"])
            obj.numeric_columns_ = list(state["numeric_columns"])
            obj.categorical_columns_ = list(state["categorical_columns"])
            obj.center_ = np.asarray(state["center"], dtype=np.float64)
            obj.scale_ = np.asarray(state["scale"], dtype=np.float64)
            obj.vocabularies_ = {k: list(v) for k, v in state["vocabularies"].items()}
            obj.levels_ = {k: list(v) for k, v in state["levels"].items()}
            obj.kinds_ = dict(state["kinds"])
            obj.bounds_ = {k: list(v) for k, v in state["bounds"].items()}
            obj.origin_ = dict(state["origin"])
            obj.n_source_rows_ = int(state["n_source_rows"])
        except (KeyError, TypeError) as exc:
            raise FeaturizerError(f"malformed featurizer state: missing or bad {exc}") from exc
        if len(obj.center_) != len(obj.numeric_columns_) or len(obj.scale_) != len(
            obj.numeric_columns_
        ):
            raise FeaturizerError("malformed featurizer state: statistics do not match columns")
        if not (np.isfinite(obj.center_).all() and np.isfinite(obj.scale_).all()):
            raise FeaturizerError("malformed featurizer state: non-finite statistics")
        return obj


def _labels(col: pd.Series, spec: _Spec) -> pd.Series:
    """Canonical string labels of a categorical/binary column (NaN stays NaN).

    Each distinct value is converted once (a hash pass over the rows), not once per row.
    """
    if spec.kind == "binary":
        col = pd.to_numeric(col, errors="coerce")
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [_label(u) for u in uniques]
    table[-1] = np.nan
    return pd.Series(table[codes], index=col.index, dtype=object)


def _label(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _ordinal_index(col: pd.Series, spec: _Spec) -> np.ndarray:
    levels = spec.vocabulary or []
    labels = _labels(col, spec)
    codes = pd.Index(levels, dtype=object).get_indexer(labels.to_numpy(dtype=object))
    codes = codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes
