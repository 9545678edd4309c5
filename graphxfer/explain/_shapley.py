"""Shapley values over a weighted background, for many records per model call.

Both estimators mask whole original columns: a column in the coalition takes the record's
value, the others take a background row's. The value of a coalition ``S`` for record ``x`` is
the weighted mean ``v(S) = sum_r w_r f(x_S, b_r)`` over background rows ``b_r`` (interventional
Shapley values with an independent masker, as ``shap.maskers.Independent`` gives with equal
weights).

The model is reached through a *row function* ``f(records, rows, take)`` that evaluates, for
every ``k``, record ``records[k]`` with the columns ``take[k]`` from that record and the others
from background row ``rows[k]`` (see :mod:`graphxfer.explain._rows`). No masked row is
evaluated twice within a call: a step of a permutation that leaves the masked row unchanged
(the toggled column holds the same value in the record and the background row) reuses the
previous output; the rows every permutation shares (a background row alone, the record alone)
are evaluated once; and identical masked rows of different records are evaluated once.
"""

from __future__ import annotations

from collections.abc import Callable
from math import factorial
from typing import Any

import numpy as np

from graphxfer.explain._codec import column_codes
from graphxfer.explain.exceptions import ExplanationError

__all__ = ["RowFunction", "differences", "exact_shapley", "permutation_shapley"]

RowFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``f(records [R] int, rows [R] int, take [R, m] bool) -> [R] float64`` (see module doc)."""

_CHUNK_CELLS = 1 << 20
"""Records are processed in chunks of about this many (record, permutation, background row,
step) cells, or (record, coalition) cells for the exact method: it bounds the memory used."""

_EXACT_ROWS = 1 << 18
"""The exact estimator evaluates the model on batches of about this many masked rows."""


def differences(matrix: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``[n, b, m]``: whether record ``i`` and background row ``r`` differ in column ``j``.

    Two missing values (NaN) are equal: the model sees the same input for both.
    """
    x, b = matrix[:, None, :], background[None, :, :]
    return ~((x == b) | (np.isnan(x) & np.isnan(b)))


def permutation_shapley(
    f: RowFunction,
    matrix: np.ndarray,
    background: np.ndarray,
    draws: np.ndarray,
    weights: np.ndarray,
    *,
    rng: np.random.Generator,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values from antithetic permutations, ``([n, m], [n])``.

    For each record, ``P = len(draws)`` random orderings of the columns; each is walked
    forward (adding the columns one by one to the empty coalition) and backward (removing them
    in the same order from the full coalition), and each column is credited with the change of
    ``v`` when it joins or leaves, averaged over the ``2 P`` walks (the estimator of
    ``shap.explainers.Permutation``). Exact for models without interactions above second
    order; additive by construction: base value + attributions equals the record's output.

    Permutation ``p`` masks with the background rows ``draws[p]`` weighted by ``weights[p]``
    (a fixed background repeats the same rows for every ``p``); the base value is the mean
    over ``p`` of ``sum_q weights[p, q] f(b_{draws[p, q]})``, the same for every record.

    Parameters
    ----------
    f : RowFunction
    matrix : ndarray of shape (n, m)
        The records (codec view: numbers, category codes, NaN for missing).
    background : ndarray of shape (b, m)
        The background rows, in the same view.
    draws : ndarray of shape (P, k), int
        Background rows used by each permutation.
    weights : ndarray of shape (P, k)
        Their weights; each row sums to 1.
    rng : numpy Generator
        Draws the orderings (all of them first, so that chunking never changes them).
    progress : tqdm bar, optional
        Advanced by the number of records done.
    """
    if draws.ndim != 2 or weights.shape != draws.shape or len(draws) < 1:
        raise ExplanationError("internal: one row of background draws and weights per permutation")
    P, k = draws.shape
    n, m = matrix.shape
    perms = rng.permuted(np.broadcast_to(np.arange(m), (n, P, m)), axis=2)
    f = _Deduplicated(f, matrix, background)
    b = len(background)
    f_background = f(np.zeros(b, np.int64), np.arange(b), np.zeros((b, m), dtype=bool))
    f_records = f(np.arange(n), np.zeros(n, np.int64), np.ones((n, m), dtype=bool))
    base = float((weights * f_background[draws]).sum(axis=1).mean())
    values = np.empty((n, m), dtype=np.float64)
    chunk = max(1, _CHUNK_CELLS // (P * k * (2 * m + 1)))
    differ = differences(matrix, background)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        values[start:stop] = _permutation_chunk(
            f, differ[start:stop], perms[start:stop], draws, weights, f_background,
            f_records[start:stop], start,
        )  # fmt: skip
        if progress is not None:
            progress.update(stop - start)
    return values, np.full(n, base)


def _permutation_chunk(
    f: RowFunction,
    differ: np.ndarray,
    perms: np.ndarray,
    draws: np.ndarray,
    weights: np.ndarray,
    f_background: np.ndarray,
    f_records: np.ndarray,
    offset: int,
) -> np.ndarray:
    c, _, m = differ.shape
    P, k = draws.shape
    steps = 2 * m + 1
    # Step s of a walk: 0 = all background; 1..m add perms[0..m-1]; m+1..2m remove them in
    # the same order (2m = all background again). toggled[..., s - 1] is step s's column.
    toggled = np.concatenate([perms, perms], axis=2)  # [c, P, 2m]
    changed = np.take_along_axis(
        differ[:, draws, :], toggled[:, :, None, :], axis=3
    )  # [c, P, k, 2m]: whether step s (1..2m) changes the masked row
    evaluate = np.zeros((c, P, k, steps), dtype=bool)
    evaluate[..., 1:-1] = changed[..., :-1]
    evaluate[..., m] = False  # the record alone: f_records
    known = evaluate.copy()
    known[..., [0, m, 2 * m]] = True
    # an unchanged step reuses the output of the last step that changed the masked row
    source = np.maximum.accumulate(np.where(known, np.arange(steps), 0), axis=3)
    out = np.empty((c, P, k, steps), dtype=np.float64)
    out[..., 0] = out[..., 2 * m] = f_background[draws][None]
    out[..., m] = f_records[:, None, None]
    rank = np.argsort(perms, axis=2)  # rank[i, p, j]: position of column j in the walk
    i, p, q, s = np.nonzero(evaluate)
    if i.size:
        position = rank[i, p]  # [R, m]
        take = np.where((s <= m)[:, None], position < s[:, None], position >= (s - m)[:, None])
        out[i, p, q, s] = f(i + offset, draws[p, q], take)
    out = np.take_along_axis(out, source, axis=3)
    v = np.einsum("cpks,pk->cps", out, weights)  # the coalition values along each walk
    gain = (v[..., 1 : m + 1] - v[..., :m]) + (v[..., m : 2 * m] - v[..., m + 1 :])
    credited = np.take_along_axis(gain, rank, axis=2)  # gain of each column, by column
    return credited.sum(axis=1) / (2 * P)


def exact_shapley(
    f: RowFunction,
    matrix: np.ndarray,
    background: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray,
    *,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley values over all ``2**m`` coalitions, ``([n, m], [n])``.

    ``phi_j = sum over S without j of |S|! (m - |S| - 1)! / m! * (v(S + j) - v(S))``. Only
    the coalitions that give distinct masked rows are evaluated: for a record and a background
    row, the subsets of the columns where they differ.

    Parameters
    ----------
    f : RowFunction
    matrix, background : ndarray of shape (n, m), (b, m)
    rows : ndarray of shape (k,), int
        Background rows used.
    weights : ndarray of shape (k,)
        Their weights, summing to 1.
    progress : tqdm bar, optional
    """
    n, m = matrix.shape
    f = _Deduplicated(f, matrix, background)
    coalitions = np.arange(1 << m, dtype=np.int64)
    bits = np.left_shift(1, np.arange(m, dtype=np.int64))
    sizes = np.zeros(coalitions.size, dtype=np.int64)
    for bit in bits:
        sizes += (coalitions & bit) != 0
    shapley_weight = np.array(
        [factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)]
    )
    # the columns where record i and background row rows[q] differ, as a bit mask
    masks = differences(matrix, background[rows]) @ bits  # [n, k]
    phi = np.empty((n, m), dtype=np.float64)
    base = np.empty(n, dtype=np.float64)
    chunk = max(1, _CHUNK_CELLS // coalitions.size)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        values = _coalition_values(f, masks[start:stop], rows, weights, coalitions, bits, start)
        for j, bit in enumerate(bits):
            without = coalitions[(coalitions & bit) == 0]
            gain = values[:, without | bit] - values[:, without]
            phi[start:stop, j] = gain @ shapley_weight[sizes[without]]
        base[start:stop] = values[:, 0]
        if progress is not None:
            progress.update(stop - start)
    return phi, base


def _coalition_values(
    f: RowFunction,
    masks: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray,
    coalitions: np.ndarray,
    bits: np.ndarray,
    offset: int,
) -> np.ndarray:
    """``v(S)`` for every coalition ``S`` of each record, ``[c, 2**m]``."""
    c, k = masks.shape
    values = np.zeros((c, coalitions.size), dtype=np.float64)
    pending: list[tuple[int, int, np.ndarray]] = []  # (record, background position, subsets)
    queued = 0

    def flush() -> None:
        subsets = np.concatenate([s for _, _, s in pending])
        records = np.concatenate([np.full(s.size, i) for i, _, s in pending])
        positions = np.concatenate([np.full(s.size, q) for _, q, s in pending])
        outputs = f(records + offset, rows[positions], (subsets[:, None] & bits) != 0)
        start = 0
        table = np.zeros(coalitions.size, dtype=np.float64)
        for i, q, s in pending:
            table[s] = outputs[start : start + s.size]
            start += s.size
            # a coalition's masked row depends only on its columns where the two differ
            values[i] += weights[q] * table[coalitions & masks[i, q]]
        pending.clear()

    for i in range(c):
        for q in range(k):
            subsets = coalitions[(coalitions & ~masks[i, q]) == 0]
            pending.append((i, q, subsets))
            queued += subsets.size
            if queued >= _EXACT_ROWS:
                flush()
                queued = 0
    if pending:
        flush()
    return values


class _Deduplicated:
    """A row function that evaluates each distinct masked row of a call once.

    Masked rows are compared through per-column value codes: a 64-bit hash of the codes
    groups them, and every row is then checked against its group's first row, so a hash
    collision costs an evaluation, never a wrong output.
    """

    def __init__(self, f: RowFunction, matrix: np.ndarray, background: np.ndarray) -> None:
        self.f = f
        codes = column_codes(np.concatenate([matrix, background]))
        self.record_codes, self.row_codes = codes[: len(matrix)], codes[len(matrix) :]
        salt = _hash_salt(matrix.shape[1])
        self.record_hash = self.record_codes.astype(np.uint64) * salt
        self.row_hash = self.row_codes.astype(np.uint64) * salt

    def __call__(self, records: np.ndarray, rows: np.ndarray, take: np.ndarray) -> np.ndarray:
        n = len(records)
        if n < 2:
            return self.f(records, rows, take)
        key = np.zeros(n, dtype=np.uint64)
        for j in range(take.shape[1]):
            key += np.where(take[:, j], self.record_hash[records, j], self.row_hash[rows, j])
        _, first, group = np.unique(key, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        head = first[group]  # the first row with the same hash
        same = np.ones(n, dtype=bool)
        for j in range(take.shape[1]):
            own = np.where(take[:, j], self.record_codes[records, j], self.row_codes[rows, j])
            same &= own == own[head]
        evaluated = np.flatnonzero(same & (head == np.arange(n)) | ~same)
        out = np.empty(n, dtype=np.float64)
        out[evaluated] = self.f(records[evaluated], rows[evaluated], take[evaluated])
        reuse = same & (head != np.arange(n))
        out[reuse] = out[head[reuse]]
        return out


def _hash_salt(m: int) -> np.ndarray:
    """Odd 64-bit multipliers of the column codes in the masked-row hash."""
    salt = np.random.default_rng(0).integers(0, 2**63, size=m, dtype=np.int64)
    return salt.astype(np.uint64) * np.uint64(2) + np.uint64(1)
