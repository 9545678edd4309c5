"""Which rows each process reads, which rows validate, and how rows are mixed into batches.

* :func:`row_hash` puts every row position at a fixed uniform number: rows below the
  validation share form the validation split, in every epoch and every process, without a
  stored list of rows.
* :class:`ShardPlan` deals the rows of each epoch to the processes of a ``torchrun`` job:
  Parquet row groups in a new random order every epoch when there are enough of them,
  otherwise every ``world_size``-th row.
* :class:`ShuffleBuffer` mixes featurised rows across chunks and cuts them into mini-batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabular.featurizer import FeatureBatch
from tabular.sources import TableSource

__all__ = ["ShardPlan", "ShuffleBuffer", "count_below", "row_hash"]

_HASH_BLOCK = 1 << 20


def row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in ``[0, 1)`` per row position, fixed by ``seed`` (SplitMix64).

    Rows whose hash falls below the validation share form the validation split, in every
    epoch and every process, without storing a list of rows.
    """
    z = np.asarray(rows, dtype=np.uint64) + np.uint64(seed % (2**64))
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def count_below(start: int, stop: int, seed: int, threshold: float, world: int) -> np.ndarray:
    """Per process (row position modulo ``world``): rows in ``[start, stop)`` hashed below."""
    out = np.zeros(world, dtype=np.int64)
    if threshold <= 0:
        return out
    for lo in range(start, stop, _HASH_BLOCK):
        rows = np.arange(lo, min(lo + _HASH_BLOCK, stop), dtype=np.int64)
        below = rows[row_hash(rows, seed) < threshold]
        out += np.bincount(below % world, minlength=world)
    return out


class ShuffleBuffer:
    """Mixes featurised rows across chunks and cuts them into mini-batches.

    Holds at most ``capacity`` rows plus one chunk; each time it overflows it is shuffled and
    the overflow leaves as full batches, so a row waits a random number of chunks.
    """

    def __init__(self, capacity: int, batch_size: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self.rng = rng
        self.parts: list[tuple[FeatureBatch, np.ndarray | None]] = []
        self.rows = 0

    def add(
        self, batch: FeatureBatch, y: np.ndarray | None
    ) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        if len(batch):
            self.parts.append((batch, y))
            self.rows += len(batch)
        if self.rows > self.capacity:
            n_out = -(-(self.rows - self.capacity) // self.batch_size) * self.batch_size
            yield from self._emit(min(n_out, self.rows - self.rows % self.batch_size))

    def flush(self, *, partial: bool) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        n_out = self.rows if partial else self.rows - self.rows % self.batch_size
        yield from self._emit(n_out)
        self.parts, self.rows = [], 0

    def _emit(self, n_out: int) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        if n_out <= 0:
            return
        pool = FeatureBatch.concat([b for b, _ in self.parts])
        ys = [y for _, y in self.parts]
        y_pool: np.ndarray | None = None
        if ys[0] is not None:
            y_pool = np.concatenate([y for y in ys if y is not None])
        perm = self.rng.permutation(len(pool))
        out, keep = perm[:n_out], perm[n_out:]
        self.parts = [(pool.take(keep), None if y_pool is None else y_pool[keep])]
        self.rows = len(keep)
        for lo in range(0, n_out, self.batch_size):
            idx = out[lo : lo + self.batch_size]
            yield pool.take(idx), None if y_pool is None else y_pool[idx]


@dataclass
class ShardPlan:
    """Which rows each process reads in each epoch, and how many of them it trains on."""

    source: TableSource
    world: int
    mode: (
        str  # "single", "pieces" (row groups dealt to processes) or "rows" (row position mod world)
    )
    seed: int
    train_rows: int
    piece_train: np.ndarray | None  # training rows per piece ("pieces" mode)
    rank_train: np.ndarray | None  # training rows per process ("rows" mode)

    @classmethod
    def build(cls, source: TableSource, world: int, seed: int, threshold: float) -> ShardPlan:
        n = int(source.n_rows or 0)
        pieces = source.pieces
        if world == 1:
            val = int(count_below(0, n, seed, threshold, 1)[0])
            return cls(source, world, "single", seed, n - val, None, None)
        if pieces is not None and len(pieces) >= 2 * world:
            train = np.array(
                [
                    p.n_rows
                    - int(count_below(p.offset, p.offset + p.n_rows, seed, threshold, 1)[0])
                    for p in pieces
                ],
                dtype=np.int64,
            )
            return cls(source, world, "pieces", seed, int(train.sum()), train, None)
        per_rank = _mod_counts(n, world) - count_below(0, n, seed, threshold, world)
        return cls(source, world, "rows", seed, int(per_rank.sum()), None, per_rank)

    def _order(self, epoch: int) -> np.ndarray:
        assert self.piece_train is not None
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.piece_train))

    def steps_per_epoch(self, local_batch: int) -> int:
        """Steps every process can take in every epoch (the smallest shard decides)."""
        if self.mode == "rows":
            assert self.rank_train is not None
            return int(self.rank_train.min()) // local_batch
        assert self.piece_train is not None
        # a process reads every world-th piece of a random order: at worst the smallest ones
        n_each = len(self.piece_train) // self.world
        return int(np.sort(self.piece_train)[:n_each].sum()) // local_batch

    def read(self, epoch: int, rank: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        pieces = self.source.pieces
        if self.mode == "pieces":
            assert pieces is not None
            order = self._order(epoch)
            yield from self.source.read([pieces[i] for i in order[rank :: self.world]])
        elif pieces is not None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(pieces))
            yield from self.source.read([pieces[i] for i in order])
        else:
            yield from self.source.read()

    def mine(self, rows: np.ndarray, rank: int) -> np.ndarray:
        if self.mode == "rows":
            return rows % self.world == rank
        return np.ones(len(rows), dtype=bool)


def _mod_counts(n: int, world: int) -> np.ndarray:
    base, extra = divmod(n, world)
    return np.array([base + (1 if r < extra else 0) for r in range(world)], dtype=np.int64)
