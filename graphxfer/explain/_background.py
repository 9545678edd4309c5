"""How the background rows are spent: split among permutations, summarised, or used whole.

The Shapley methods average the model over background rows for every coalition, so their cost
grows with the number of rows. Three ways to spend them (``summary=`` of
:func:`graphxfer.explain.explain`):

``"split"`` (the default; the permutation method)
    The rows are dealt out among the permutations in a random order: each permutation masks
    with its own share of about ``n_rows / n_permutations`` rows, and every row is used
    (equally often when the rows outnumber the permutations). Each share is a uniform sample
    of the rows, so the estimate is unbiased for the all-rows estimate with the same
    permutations, and the base value is the all-rows mean; the cost is that of a single
    permutation over all rows. The other methods use all rows.
``"kmeans"``
    The rows are replaced, for every method, by ``n_summary`` weighted representatives:
    k-means clusters of the rows (numbers standardised, categories one-hot, missing values
    flagged), each represented by its medoid (a real row, so the model only sees values it
    could meet) weighted by the cluster's share of the rows. Deterministic and cheap, but a
    biased summary (see the documentation for measured differences).
``"none"``
    Every permutation (or coalition) averages over all rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain.exceptions import ExplanationError

__all__ = ["SUMMARIES", "Summary", "Weighted", "kmeans_summary", "split_rows"]

Summary = Literal["split", "kmeans", "none"]
SUMMARIES: tuple[str, ...] = ("split", "kmeans", "none")


@dataclass(frozen=True)
class Weighted:
    """Background rows (positions in the background) and their weights (summing to 1).

    Shapes: ``rows`` ``[k]``, ``weights`` ``[k]``.
    """

    rows: np.ndarray
    weights: np.ndarray

    @classmethod
    def uniform(cls, n: int) -> Weighted:
        """All ``n`` rows with equal weights."""
        return cls(np.arange(n), np.full(n, 1.0 / n))


def split_rows(n_rows: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_permutations, k]`` row positions: the rows dealt out among the permutations.

    ``k = ceil(n_rows / n_permutations)``: the rows are taken in a random order, ``k`` per
    permutation, starting over when they run out, so every row is used
    ``floor`` or ``ceil`` of ``n_permutations * k / n_rows`` times and each position is a
    uniform draw.
    """
    k = -(-n_rows // n_permutations)
    order = rng.permutation(n_rows)
    return order[np.arange(n_permutations * k) % n_rows].reshape(n_permutations, k)


def kmeans_summary(
    codec: FeatureCodec, matrix: np.ndarray, n_summary: int, seed: int | None
) -> Weighted:
    """``n_summary`` weighted medoids of the background rows ``matrix`` (codec view).

    Rows are clustered with k-means on standardised numbers (0 where missing, plus a missing
    flag) and one-hot categories (missing as its own category, scaled by ``1/sqrt(2)`` so that
    two different categories are as far apart as one standard deviation). Each cluster is
    represented by the row nearest its centre, weighted by the cluster's share of the rows.
    With at most ``n_summary`` distinct rows, the distinct rows with their shares.
    """
    from sklearn.cluster import KMeans

    n = len(matrix)
    if n_summary < 1:
        raise ExplanationError(f"n_summary={n_summary!r} must be a positive integer")
    features = _cluster_features(codec, matrix)
    distinct, first, counts = np.unique(features, axis=0, return_index=True, return_counts=True)
    if len(distinct) <= n_summary:
        order = np.argsort(first)
        return Weighted(first[order], counts[order] / n)
    km = KMeans(n_clusters=n_summary, n_init=4, random_state=seed).fit(features)
    labels = km.labels_
    rows = np.empty(n_summary, dtype=np.int64)
    for c in range(n_summary):
        members = np.flatnonzero(labels == c)
        gaps = ((features[members] - km.cluster_centers_[c]) ** 2).sum(axis=1)
        rows[c] = members[np.argmin(gaps)]
    weights = np.bincount(labels, minlength=n_summary) / n
    order = np.argsort(rows)
    return Weighted(rows[order], weights[order])


def _cluster_features(codec: FeatureCodec, matrix: np.ndarray) -> np.ndarray:
    parts: list[np.ndarray] = []
    for j, vocabulary in enumerate(codec.vocabularies):
        column = matrix[:, j]
        missing = np.isnan(column)
        if vocabulary is None:
            present = column[~missing]
            centre = float(present.mean()) if present.size else 0.0
            scale = float(present.std()) if present.size else 0.0
            scale = scale if scale > 0 else 1.0
            parts.append(np.where(missing, 0.0, (column - centre) / scale)[:, None])
            parts.append(missing[:, None].astype(np.float64))
        else:
            codes = np.where(missing, -1.0, column)
            levels = np.unique(codes)
            parts.append((codes[:, None] == levels[None, :]) / np.sqrt(2.0))
    return np.concatenate(parts, axis=1)
