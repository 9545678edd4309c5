"""The batched Shapley estimators against naive references.

The estimators skip masked rows that repeat (unchanged steps, rows shared by every walk,
identical rows of different records) and take weighted, per-permutation backgrounds: each of
these shortcuts is checked against a plain implementation that evaluates every row.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from graphxfer.explain import _shapley
from graphxfer.explain._shapley import exact_shapley, permutation_shapley

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


def model(rows: np.ndarray) -> np.ndarray:
    """Interactions up to third order; NaN (missing) has its own effect."""
    x = np.nan_to_num(rows, nan=-1.5)
    z = x[:, 0] * x[:, 1] * x[:, 2] + np.tanh(x[:, 3] - x[:, 4]) + 0.5 * x[:, 5] * (x[:, 0] > 0)
    return 1.0 / (1.0 + np.exp(-z))


def pairwise(rows: np.ndarray) -> np.ndarray:
    """Interactions of second order at most."""
    return rows[:, 0] * rows[:, 1] - 2 * rows[:, 2] * rows[:, 3] + np.sin(rows[:, 4]) + rows[:, 5]


def data(n: int, seed: int) -> np.ndarray:
    """Six columns: three continuous, three with few values (repeats), a few missing."""
    rng = np.random.default_rng(seed)
    out = np.column_stack([rng.normal(size=(n, 3)), rng.integers(0, 3, size=(n, 3)).astype(float)])
    out[rng.random(out.shape) < 0.05] = np.nan
    return out


class Counting:
    """A row function over ``matrix`` and ``background``, counting the rows it evaluates."""

    def __init__(self, f, matrix: np.ndarray, background: np.ndarray) -> None:
        self.f, self.matrix, self.background = f, matrix, background
        self.rows = 0

    def __call__(self, records, rows, take) -> np.ndarray:
        self.rows += len(records)
        return self.f(np.where(take, self.matrix[records], self.background[rows]))


def naive_permutation(f, matrix, background, draws, weights, perms) -> tuple[np.ndarray, float]:
    """The antithetic permutation estimator, evaluating every masked row of every step."""
    n, m = matrix.shape
    P = len(draws)
    phi = np.zeros((n, m))
    for i in range(n):
        for p in range(P):
            order = perms[i, p]
            masks = [np.isin(np.arange(m), order[:s]) for s in range(m + 1)]
            masks += [np.isin(np.arange(m), order[t:]) for t in range(1, m + 1)]
            v = []
            for mask in masks:
                rows = np.where(mask, matrix[i], background[draws[p]])
                v.append(float(f(rows) @ weights[p]))
            for t, column in enumerate(order):
                phi[i, column] += (v[t + 1] - v[t]) + (v[m + t] - v[m + t + 1])
    base = np.mean([f(background[draws[p]]) @ weights[p] for p in range(P)])
    return phi / (2 * P), float(base)


def naive_exact(f, x: np.ndarray, background: np.ndarray, weights: np.ndarray) -> np.ndarray:
    m = len(x)

    def value(subset: tuple[int, ...]) -> float:
        rows = background.copy()
        rows[:, list(subset)] = x[list(subset)]
        return float(f(rows) @ weights)

    phi = np.zeros(m)
    for j in range(m):
        others = [k for k in range(m) if k != j]
        for size in range(m):
            w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                phi[j] += w * (value((*subset, j)) - value(subset))
    return phi


def orderings(seed: int, n: int, P: int, m: int) -> np.ndarray:
    """The orderings the estimator draws first from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.broadcast_to(np.arange(m), (n, P, m)), axis=2)


@pytest.mark.parametrize("per_permutation", [False, True])
def test_permutation_matches_the_naive_estimator(per_permutation: bool) -> None:
    matrix, background = data(12, 0), data(9, 1)
    matrix[5] = matrix[2]  # a repeated record
    P = 4
    rng = np.random.default_rng(7)
    if per_permutation:  # each permutation its own weighted rows
        draws = np.stack([rng.choice(9, size=3, replace=False) for _ in range(P)])
        weights = rng.random((P, 3))
        weights /= weights.sum(axis=1, keepdims=True)
    else:
        draws = np.tile(np.arange(9), (P, 1))
        weights = np.full((P, 9), 1 / 9)
    f = Counting(model, matrix, background)
    values, base = permutation_shapley(
        f, matrix, background, draws, weights, rng=np.random.default_rng(3)
    )
    expected, expected_base = naive_permutation(
        model, matrix, background, draws, weights, orderings(3, 12, P, 6)
    )
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(base, expected_base, rtol=0, atol=1e-12)
    # additive: base value + attributions = the record's own output
    np.testing.assert_allclose(base + values.sum(axis=1), model(matrix), rtol=0, atol=1e-12)
    # repeats were skipped: fewer rows than the naive 12 records x P walks x k rows x 2m steps
    assert f.rows < 0.8 * 12 * P * draws.shape[1] * 12


def test_permutation_is_exact_up_to_pairwise_interactions() -> None:
    matrix, background = data(6, 2), data(8, 3)
    weights = np.random.default_rng(0).random(8)
    weights /= weights.sum()
    values, _ = permutation_shapley(
        Counting(pairwise, matrix, background), matrix, background,
        np.tile(np.arange(8), (3, 1)), np.tile(weights, (3, 1)), rng=np.random.default_rng(0),
    )  # fmt: skip
    for i in range(6):
        np.testing.assert_allclose(
            values[i], naive_exact(pairwise, matrix[i], background, weights), atol=1e-12
        )


def test_exact_matches_the_definition_with_weights() -> None:
    matrix, background = data(5, 4), data(7, 5)
    matrix[3] = background[2]  # a record equal to a background row
    rows = np.array([0, 2, 3, 6])
    weights = np.array([0.1, 0.4, 0.3, 0.2])
    f = Counting(model, matrix, background)
    values, base = exact_shapley(f, matrix, background, rows, weights)
    for i in range(5):
        expected = naive_exact(model, matrix[i], background[rows], weights)
        np.testing.assert_allclose(values[i], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(base, model(background[rows]) @ weights, rtol=0, atol=1e-12)
    assert f.rows < 5 * 4 * 2**6  # only coalitions that change the masked row


def test_a_weight_is_a_repeated_row() -> None:
    matrix, background = data(4, 6), data(3, 7)
    repeated = background[[0, 0, 1, 2, 2, 2]]
    plain, _ = exact_shapley(
        Counting(model, matrix, repeated), matrix, repeated, np.arange(6), np.full(6, 1 / 6)
    )
    weighted, _ = exact_shapley(
        Counting(model, matrix, background), matrix, background,
        np.arange(3), np.array([2, 1, 3]) / 6,
    )  # fmt: skip
    np.testing.assert_allclose(weighted, plain, rtol=0, atol=1e-12)


def test_identical_masked_rows_are_evaluated_once_even_when_hashes_collide(monkeypatch) -> None:
    matrix, background = data(10, 8), data(4, 9)
    rng = np.random.default_rng(1)
    records, rows = rng.integers(0, 10, 400), rng.integers(0, 4, 400)
    take = rng.random((400, 6)) < 0.3
    expected = model(np.where(take, matrix[records], background[rows]))
    f = Counting(model, matrix, background)
    out = _shapley._Deduplicated(f, matrix, background)(records, rows, take)
    np.testing.assert_array_equal(out, expected)
    distinct = len(np.unique(np.where(take, matrix[records], background[rows]), axis=0))
    assert f.rows <= distinct + 1  # NaN rows may not compare equal in np.unique
    # every row hashing alike: the check against the group's first row keeps outputs right
    monkeypatch.setattr(_shapley, "_hash_salt", lambda m: np.zeros(m, dtype=np.uint64))
    f = Counting(model, matrix, background)
    out = _shapley._Deduplicated(f, matrix, background)(records, rows, take)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.slow  # shap's explainers compile with numba on first use
def test_agrees_with_shap_where_both_are_exact() -> None:
    """On a model with pairwise interactions, shap's Exact explainer and ours coincide."""
    import shap

    matrix, background = np.nan_to_num(data(5, 10)), np.nan_to_num(data(20, 11))
    ours, base = permutation_shapley(
        Counting(pairwise, matrix, background), matrix, background,
        np.tile(np.arange(20), (2, 1)), np.full((2, 20), 1 / 20), rng=np.random.default_rng(0),
    )  # fmt: skip
    masker = shap.maskers.Independent(background, max_samples=20)
    theirs = shap.explainers.Exact(pairwise, masker)(matrix)
    np.testing.assert_allclose(ours, theirs.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(base, theirs.base_values, rtol=0, atol=1e-10)
