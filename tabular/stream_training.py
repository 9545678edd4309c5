"""The streaming trainer: one epoch of :func:`tabular.pretrain_stream` per call.

:class:`StreamEpoch` plugs a stream of Parquet or CSV chunks into the shared epoch loop
(:func:`tabular.loop.run_epochs`): it reads this process's shard of the epoch
(:class:`~tabular.sharding.ShardPlan`), featurises and shuffles the rows
(:class:`~tabular.sharding.ShuffleBuffer`), takes one optimisation step per mini-batch and
computes the validation loss, summed over the processes of a ``torchrun`` job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from tabular.distributed import all_reduce_sum
from tabular.exceptions import PretrainingError
from tabular.featurizer import FeatureBatch, Featurizer
from tabular.loop import EpochResult
from tabular.sharding import ShardPlan, ShuffleBuffer, row_hash
from tabular.sources import Transform, apply_transform, chunk_outcome

__all__ = ["StreamEpoch"]


class StreamEpoch:
    """One epoch of streaming pretraining per call, for :func:`tabular.loop.run_epochs`.

    Reads this process's shard of the epoch, featurises and shuffles it, takes one step per
    mini-batch, then computes the validation loss. The validation rows (at most ``val_cap``
    per process) are collected during the first epoch and kept, featurised, for the others.
    """

    def __init__(
        self,
        *,
        network: Any,
        obj: Any,
        model: Any,
        optimizer: Any,
        featurizer: Featurizer,
        plan: ShardPlan,
        rank: int,
        dev: Any,
        local_batch: int,
        steps: int | None,
        threshold: float,
        split_seed: int,
        val_cap: int,
        val_seed: int,
        shuffle_rows: int,
        transform: Transform | None,
        target: str | None,
        mask_gen: Any,
        rng: np.random.Generator,
    ) -> None:
        self.network, self.obj, self.model, self.optimizer = network, obj, model, optimizer
        self.featurizer, self.plan, self.rank, self.dev = featurizer, plan, rank, dev
        self.local_batch, self.steps = local_batch, steps
        self.threshold, self.split_seed = threshold, split_seed
        self.val_cap, self.val_seed = val_cap, val_seed
        self.shuffle_rows, self.transform, self.target = shuffle_rows, transform, target
        self.mask_gen, self.rng = mask_gen, rng
        self.val_parts: list[tuple[FeatureBatch, np.ndarray | None]] = []
        self.val_data: tuple[FeatureBatch, np.ndarray | None] | None = None
        #: validation rows over all processes
        self.n_validation = 0

    def __call__(self, epoch: int, advance: Callable[[int], None]) -> EpochResult:
        collect = epoch == 1 and self.threshold > 0
        total, done_rows = self._train(epoch, collect, advance)
        summed = all_reduce_sum([total, done_rows])
        train_loss = summed[0] / summed[1] if summed[1] else math.nan
        if not math.isfinite(train_loss):
            raise PretrainingError(f"the pretraining loss is not finite ({train_loss}); lower lr")
        if collect:
            self.val_data = _concat(self.val_parts)
            self.val_parts = []
        val_loss = None
        held = 0 if self.val_data is None else len(self.val_data[0])
        self.n_validation = int(all_reduce_sum([held])[0])
        if self.n_validation:
            val_loss = _validate(
                self.network, self.obj, self.val_data, self.dev, self.local_batch, self.val_seed
            )
        return EpochResult(train_loss=train_loss, val_loss=val_loss, rows=int(summed[1]))

    def _train(
        self, epoch: int, collect: bool, advance: Callable[[int], None]
    ) -> tuple[float, int]:
        """One pass over this process's shard; returns ``(sum of batch losses x rows, rows)``."""
        self.network.train()
        self.obj.train()
        plan, steps, featurizer = self.plan, self.steps, self.featurizer
        buffer = ShuffleBuffer(self.shuffle_rows, self.local_batch, self.rng)
        total, done_rows, n_steps = 0.0, 0, 0

        def take(fb: FeatureBatch, y: np.ndarray | None) -> None:
            nonlocal total, done_rows, n_steps
            loss = _step(
                self.network, self.obj, self.model, self.optimizer, fb, y, self.dev, self.mask_gen
            )
            total += loss * len(fb)
            done_rows += len(fb)
            n_steps += 1
            advance(1)

        for frame_rows, frame in plan.read(epoch, self.rank):
            frame = apply_transform(self.transform, frame.reset_index(drop=True))
            is_val = None
            if self.threshold > 0:
                is_val = row_hash(frame_rows, self.split_seed) < self.threshold
            mine = plan.mine(frame_rows, self.rank)
            keep = mine if is_val is None else mine & ~is_val
            if collect and is_val is not None:
                held = sum(len(b) for b, _ in self.val_parts)
                pick = np.flatnonzero(mine & is_val)[: max(self.val_cap - held, 0)]
                if len(pick):
                    part = frame.iloc[pick]
                    self.val_parts.append((featurizer.transform(part), _y(part, self.target)))
            train = frame.iloc[np.flatnonzero(keep)] if not keep.all() else frame
            for fb, y in buffer.add(featurizer.transform(train), _y(train, self.target)):
                if steps is not None and n_steps >= steps:
                    break
                take(fb, y)
            if steps is not None and n_steps >= steps:
                break
        for fb, y in buffer.flush(partial=steps is None):
            if steps is not None and n_steps >= steps:
                break
            if len(fb) < self.obj.min_batch:
                continue
            take(fb, y)
        if steps is not None and n_steps < steps:
            raise PretrainingError(
                f"process {self.rank} ran out of rows after {n_steps} of {steps} steps; "
                "the files changed while training?"
            )
        return total, done_rows


def _y(frame: pd.DataFrame, target: str | None) -> np.ndarray | None:
    return None if target is None else chunk_outcome(frame, target)


def _concat(
    parts: list[tuple[FeatureBatch, np.ndarray | None]],
) -> tuple[FeatureBatch, np.ndarray | None] | None:
    if not parts:
        return None
    ys = [y for _, y in parts]
    y = None if ys[0] is None else np.concatenate([v for v in ys if v is not None])
    return FeatureBatch.concat([b for b, _ in parts]), y


def _tensors(fb: FeatureBatch, y: np.ndarray | None, dev: Any) -> tuple[Any, ...]:
    parts = fb.to_tensors(dev)
    return parts, None if y is None else torch.as_tensor(y, device=dev)


def _step(
    network: Any,
    obj: Any,
    model: Any,
    optimizer: Any,
    fb: FeatureBatch,
    y: np.ndarray | None,
    dev: Any,
    generator: Any,
) -> float:
    batch, yt = _tensors(fb, y, dev)
    loss = (
        model(*batch, yt, generator)
        if model is not None
        else obj.loss(network, batch, yt, generator)
    )
    if not torch.isfinite(loss):
        raise PretrainingError(
            f"the pretraining loss is not finite ({loss.item()}); lower lr or check the data "
            "for extreme values"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _validate(
    network: Any,
    obj: Any,
    data: tuple[FeatureBatch, np.ndarray | None] | None,
    dev: Any,
    batch_size: int,
    seed: int,
) -> float | None:
    network.eval()
    obj.eval()
    total, rows = 0.0, 0
    if data is not None:
        fb, y = data
        gen = torch.Generator().manual_seed(seed)  # the same masks every epoch
        with torch.no_grad():
            for lo in range(0, len(fb), batch_size):
                idx = np.arange(lo, min(lo + batch_size, len(fb)))
                if len(idx) < obj.min_batch:
                    continue
                batch, yt = _tensors(fb.take(idx), None if y is None else y[idx], dev)
                total += float(obj.loss(network, batch, yt, gen)) * len(idx)
                rows += len(idx)
    summed = all_reduce_sum([total, rows])
    return summed[0] / summed[1] if summed[1] else None
