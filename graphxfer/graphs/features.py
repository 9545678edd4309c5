"""Dense node features: one fixed-width float vector per record, from the featurizer's output.

The graph side needs a plain vector space, both for the similarity graph (Euclidean nearest
neighbours) and as the input of the message-passing layers. :class:`DenseFeatures` lays out,
for every record,

* the standardised numeric values (``0`` where missing: the source mean),
* one missing indicator per numeric column (``1`` where missing),
* for every categorical column, a scaled one-hot block over the ``max_categories`` categories
  most frequent in the *source*, plus one "other" slot for rarer, unknown or target-only
  categories; a missing category is the all-zero block.

One-hot entries are ``1/sqrt(2)``, so two records that differ in one category are at distance
1, the same as a one-standard-deviation difference in one numeric column or an observed-versus-
missing difference in one missing indicator. The Euclidean distance in this space is the
*missing-aware distance* of the similarity graph: a missing numeric value sits at the source
mean and is one unit away from any observed value through its indicator.

Everything is fitted on the source records only (category frequencies), so transforming target
records leaks nothing about other target records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphxfer.exceptions import GraphError, NotFittedError

__all__ = ["DenseFeatures"]

_FORMAT = 1
_ONE_HOT = 1.0 / math.sqrt(2.0)


class DenseFeatures:
    """Map a :class:`tabular.FeatureBatch` to a dense float32 matrix (see the module docstring).

    Parameters
    ----------
    max_categories : int, default=16
        Per categorical column, how many of the most frequent source categories get their own
        one-hot slot; the rest share an "other" slot.

    Attributes
    ----------
    n_numeric_ : int
        Number of numeric (and ordinal) columns.
    kept_ : list of list of int
        Per categorical column, the featurizer indices (2..) that have their own slot.
    feature_names_ : list of str
        Name of every output column (when the column names were given to :meth:`fit`).

    Examples
    --------
    >>> import numpy as np
    >>> from tabular import FeatureBatch
    >>> batch = FeatureBatch(
    ...     np.array([[0.5], [0.0]], dtype=np.float32),
    ...     np.array([[False], [True]]),
    ...     np.array([[2], [3]]),
    ... )
    >>> dense = DenseFeatures().fit(batch, numeric_names=["age"], categorical_names=["cp"])
    >>> dense.feature_names_
    ['age', 'age__missing', 'cp=2', 'cp=3', 'cp=<other>']
    >>> dense.transform(batch).shape
    (2, 5)
    """

    def __init__(self, *, max_categories: int = 16) -> None:
        self.max_categories = max_categories

    def fit(
        self,
        batch: Any,
        *,
        numeric_names: Sequence[str] | None = None,
        categorical_names: Sequence[str] | None = None,
    ) -> DenseFeatures:
        """Choose the one-hot slots from the source records ``batch`` (a ``FeatureBatch``)."""
        if not isinstance(self.max_categories, int) or self.max_categories < 0:
            raise GraphError(f"max_categories must be an integer >= 0, got {self.max_categories!r}")
        numeric, _, categorical = _parts(batch)
        if numeric.shape[0] == 0:
            raise GraphError("cannot fit dense features on zero source records")
        p, q = numeric.shape[1], categorical.shape[1]
        num_names = (
            list(numeric_names) if numeric_names is not None else [f"x{j}" for j in range(p)]
        )
        cat_names = (
            list(categorical_names)
            if categorical_names is not None
            else [f"c{j}" for j in range(q)]
        )
        if len(num_names) != p or len(cat_names) != q:
            raise GraphError(
                f"got {len(num_names)} numeric and {len(cat_names)} categorical names for a batch "
                f"with {p} numeric and {q} categorical columns"
            )
        kept: list[list[int]] = []
        for j in range(q):
            col = categorical[:, j]
            values, counts = np.unique(col[col >= 2], return_counts=True)
            order = np.lexsort((values, -counts))[: self.max_categories]
            kept.append(sorted(int(v) for v in values[order]))
        self.n_numeric_ = p
        self.kept_ = kept
        names = [*num_names, *(f"{n}__missing" for n in num_names)]
        for name, slots in zip(cat_names, kept):
            names += [f"{name}={i}" for i in slots] + [f"{name}=<other>"]
        self.feature_names_ = names
        return self

    @property
    def n_features_(self) -> int:
        """Width of the dense vectors."""
        self._check_fitted()
        return 2 * self.n_numeric_ + sum(len(k) + 1 for k in self.kept_)

    def transform(self, batch: Any) -> np.ndarray:
        """The dense float32 matrix of ``batch``; row ``i`` depends on record ``i`` only."""
        self._check_fitted()
        numeric, missing, categorical = _parts(batch)
        n = numeric.shape[0]
        if numeric.shape[1] != self.n_numeric_ or categorical.shape[1] != len(self.kept_):
            raise GraphError(
                f"the batch has {numeric.shape[1]} numeric and {categorical.shape[1]} categorical "
                f"columns; these dense features were fitted on {self.n_numeric_} and "
                f"{len(self.kept_)}: use the encoder's own featurizer"
            )
        blocks = [
            np.where(missing, 0.0, numeric).astype(np.float32),
            missing.astype(np.float32),
        ]
        for j, slots in enumerate(self.kept_):
            col = categorical[:, j]
            width = len(slots) + 1
            block = np.zeros((n, width), dtype=np.float32)
            slot = np.full(n, width - 1, dtype=np.int64)
            if slots:
                kept = np.asarray(slots, dtype=np.int64)
                pos = np.minimum(np.searchsorted(kept, col), len(slots) - 1)
                slot = np.where(kept[pos] == col, pos, slot)
            present = col != 0
            block[np.flatnonzero(present), slot[present]] = _ONE_HOT
            blocks.append(block)
        out = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), dtype=np.float32)
        if not np.isfinite(out).all():
            raise GraphError("featurized values hold NaN or inf; check the featurizer's input")
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "kept_"):
            raise NotFittedError("these DenseFeatures are not fitted; call fit(source_batch)")

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "max_categories": self.max_categories,
            "n_numeric": self.n_numeric_,
            "kept": [list(k) for k in self.kept_],
            "feature_names": list(self.feature_names_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DenseFeatures:
        """Rebuild from :meth:`state_dict` output."""
        try:
            if state["format"] != _FORMAT:
                raise GraphError(f"unknown dense-feature format {state['format']!r}")
            obj = cls(max_categories=int(state["max_categories"]))
            obj.n_numeric_ = int(state["n_numeric"])
            obj.kept_ = [[int(i) for i in k] for k in state["kept"]]
            obj.feature_names_ = [str(n) for n in state["feature_names"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphError(f"malformed dense-feature state: {exc!r}") from exc
        if len(obj.feature_names_) != obj.n_features_:
            raise GraphError("malformed dense-feature state: names do not match the layout")
        return obj


def _parts(batch: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        numeric = np.asarray(batch.numeric, dtype=np.float32)
        missing = np.asarray(batch.missing, dtype=bool)
        categorical = np.asarray(batch.categorical, dtype=np.int64)
    except AttributeError as exc:
        raise GraphError(
            f"expected a FeatureBatch (numeric, missing, categorical), got {type(batch).__name__}"
        ) from exc
    if numeric.ndim != 2 or missing.shape != numeric.shape or categorical.ndim != 2:
        raise GraphError(
            f"malformed FeatureBatch: numeric {numeric.shape}, missing {missing.shape}, "
            f"categorical {categorical.shape}"
        )
    if categorical.shape[0] != numeric.shape[0]:
        raise GraphError("malformed FeatureBatch: numeric and categorical row counts differ")
    if (categorical < 0).any():
        raise GraphError("malformed FeatureBatch: negative category indices")
    return numeric, missing, categorical
