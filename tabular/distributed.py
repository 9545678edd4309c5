"""DistributedDataParallel pretraining: process groups, batch sharding and the DDP training loop.

Launch one process per device with ``torchrun`` (or ``graphxfer pretrain --nproc-per-node N``)
and call :func:`tabular.pretrain` or :func:`tabular.pretrain_stream` in every process: once
``torch.distributed`` is initialised with more than one process, both train with
``torch.nn.parallel.DistributedDataParallel``:

* every process builds the same network from the same seed (DDP also broadcasts rank 0's
  weights when it wraps the model), so all replicas start identical;
* :func:`tabular.pretrain` (data in memory) draws the same global batch order in every process
  and each process computes the loss of its own share of each global batch
  (:func:`shard_bounds`); :func:`tabular.pretrain_stream` reads its own share of the files;
* gradients are averaged across processes by DDP's all-reduce, after each share's loss has been
  weighted by its share of the global batch, so one step equals one step of single-process
  training on the whole global batch for losses that are means over rows (``"supervised"``,
  and ``"masked"`` up to its per-entry normalisation);
* validation losses are summed across processes before early stopping decides, so every
  process stops at the same epoch and restores the same weights.

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (:func:`default_backend`).

Objectives that compare rows of a batch (``"contrastive"``) see only their process's share of
each batch as negatives; TabNet's ghost batch normalisation normalises each share separately.
Both differ from single-process training by design of data parallelism, not by error.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tabular.exceptions import PretrainingError
from tabular.loop import EpochResult, run_epochs

__all__ = [
    "DistributedInfo",
    "LossModule",
    "all_reduce_sum",
    "broadcast_object",
    "broadcast_tensor",
    "default_backend",
    "distributed_info",
    "init_from_env",
    "shard_bounds",
    "train_ddp",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in the process group.

    Attributes
    ----------
    rank : int
        Global rank (0 when not distributed).
    world_size : int
        Number of processes (1 when not distributed).
    local_rank : int
        Rank on this machine (``LOCAL_RANK`` set by ``torchrun``; 0 otherwise).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether training is data-parallel over more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that saves and reports)."""
        return self.rank == 0


def distributed_info() -> DistributedInfo:
    """The current process group, or a single-process description when there is none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistributedInfo()
    return DistributedInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def default_backend(device: str | torch.device = "auto") -> str:
    """``"nccl"`` for CUDA (``"auto"`` with CUDA present), ``"gloo"`` otherwise."""
    if isinstance(device, str) and device == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(backend: str | None = None, *, device: str | torch.device = "auto") -> bool:
    """Join the process group described by the ``torchrun`` environment variables.

    Does nothing (and returns ``False``) when ``WORLD_SIZE`` is unset or 1, or when a group
    is already initialised. With CUDA, the process is bound to ``cuda:LOCAL_RANK`` first.

    Parameters
    ----------
    backend : str, optional
        ``"gloo"`` or ``"nccl"``; default :func:`default_backend` of ``device``.
    device : str or torch.device, default="auto"

    Returns
    -------
    bool
        Whether this call initialised a process group (the caller then destroys it).
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return False
    backend = backend or default_backend(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def shard_bounds(n_rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a global batch of ``n_rows`` that ``rank`` computes.

    Shares differ by at most one row (``numpy.array_split`` sizes).

    Examples
    --------
    >>> [shard_bounds(10, 3, r) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n_rows, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def all_reduce_sum(values: Sequence[float], device: torch.device | None = None) -> list[float]:
    """Sum ``values`` over all processes (identity without a process group)."""
    info = distributed_info()
    if not info.active:
        return [float(v) for v in values]
    import torch.distributed as dist

    dev = device if device is not None else _collective_device()
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as held by rank ``src``, in every process (identity without a process group).

    Only for small, picklable, trusted objects exchanged between the processes of one job
    (featurizer state, counts, summaries); it travels through ``torch.distributed``.
    """
    info = distributed_info()
    if not info.active:
        return obj
    import torch.distributed as dist

    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def broadcast_tensor(tensor: torch.Tensor | None, src: int = 0) -> torch.Tensor:
    """``tensor`` as held by rank ``src``, on the CPU of every process.

    The other processes pass ``None`` (or anything: it is ignored); shape and dtype travel
    first, then the values through one ``torch.distributed.broadcast``. Without a process
    group ``tensor`` is returned as is.

    Raises
    ------
    PretrainingError
        ``src`` holds no tensor.
    """
    info = distributed_info()
    mine = tensor if info.rank == src else None
    if info.rank == src and not isinstance(mine, torch.Tensor):
        raise PretrainingError(f"rank {src} must pass a tensor to broadcast_tensor")
    if not info.active:
        return mine  # type: ignore[return-value]
    import torch.distributed as dist

    shape, dtype = broadcast_object(None if mine is None else (mine.shape, mine.dtype), src=src)
    dev = _collective_device()
    if mine is not None:
        buffer = mine.detach().to(dev).contiguous()
    else:
        buffer = torch.empty(shape, dtype=dtype, device=dev)
    dist.broadcast(buffer, src=src)
    return buffer.cpu()


def _collective_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class LossModule(nn.Module):
    """The network and its objective as one module whose forward pass is the loss.

    DistributedDataParallel synchronises gradients of the module it wraps when that module's
    ``forward`` runs, so the objective's heads and the encoder are wrapped together.
    """

    def __init__(self, network: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.objective = objective

    def forward(
        self,
        numeric: torch.Tensor,
        missing: torch.Tensor,
        categorical: torch.Tensor,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        return self.objective.loss(self.network, (numeric, missing, categorical), y, generator)  # type: ignore[operator]


def wrap_ddp(network: nn.Module, objective: nn.Module) -> nn.Module:
    """``DistributedDataParallel(LossModule(network, objective))``.

    ``find_unused_parameters`` is on unless the objective is known to use every parameter in
    every step: the masked objectives skip the head of a categorical column when no value of
    that column is hidden in a batch.
    """
    from torch.nn.parallel import DistributedDataParallel

    from tabular.objectives import ContrastiveCorruption, Supervised

    uses_all = type(objective) in (Supervised, ContrastiveCorruption)
    return DistributedDataParallel(
        LossModule(network, objective), find_unused_parameters=not uses_all
    )


@contextlib.contextmanager
def _rank_seeded(seed: int, rank: int, device: torch.device) -> Iterator[None]:
    """Dropout draws differ between processes (each sees other rows) but stay reproducible."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.manual_seed((seed + 7919 * (rank + 1)) % (2**63 - 1))
        yield


def train_ddp(
    network: Any,
    obj: Any,
    tensors: tuple[torch.Tensor, ...],
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    dev: torch.device,
    *,
    generator: torch.Generator,
    val_seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    progress: bool,
    label: str,
) -> tuple[list[dict[str, Any]], int]:
    """The data-parallel counterpart of :func:`tabular.pretrain`'s training loop.

    Same arguments and result as the single-process loop. ``generator`` draws the global
    batch order (identical in every process, as every process seeds it alike); the objective's
    random masks come from a per-process generator. A global batch whose smallest share would
    be under the objective's ``min_batch`` rows is skipped by every process.
    """
    info = distributed_info()
    if not info.active:
        raise PretrainingError("train_ddp needs an initialised process group of 2+ processes")
    model = wrap_ddp(network, obj)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    mask_gen = torch.Generator().manual_seed((val_seed + 104729 * (info.rank + 1)) % (2**63 - 1))

    def epoch_fn(epoch: int, advance: Any) -> EpochResult:
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        total, rows = _sharded_pass(
            model, obj, tensors, order, dev, batch_size, mask_gen, optimizer
        )
        train_loss = _global_mean(total, rows)
        val_loss: float | None = None
        if len(val_idx):
            model.eval()
            val_gen = torch.Generator().manual_seed(val_seed + info.rank)
            with torch.no_grad():
                total, rows = _sharded_pass(
                    model, obj, tensors, val_idx, dev, batch_size, val_gen, None
                )
            loss = _global_mean(total, rows)
            val_loss = None if math.isnan(loss) else loss
        return EpochResult(train_loss=train_loss, val_loss=val_loss)

    with _rank_seeded(val_seed, info.rank, dev):
        return run_epochs(
            epoch_fn,
            epochs=epochs,
            patience=patience,
            modules=(network, obj),
            desc=f"{label} x{info.world_size}",
            progress=progress and info.is_main,
        )


def _sharded_pass(
    model: nn.Module,
    obj: Any,
    tensors: tuple[torch.Tensor, ...],
    order: torch.Tensor,
    dev: torch.device,
    batch_size: int,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[float, int]:
    """One pass over ``order`` in global batches; this process computes its share of each.

    Returns this process's ``(sum of row losses, rows)``. With ``optimizer`` every global batch
    is one synchronised step, and every process takes the same number of steps.
    """
    info = distributed_info()
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        global_rows = min(batch_size, len(order) - start)
        if global_rows // info.world_size < obj.min_batch:
            continue  # some share would be too small: every process skips this batch
        lo, hi = shard_bounds(global_rows, info.world_size, info.rank)
        idx = order[start + lo : start + hi]
        part = tuple(t[idx].to(dev, non_blocking=True) for t in tensors)
        y = part[3] if len(part) > 3 else None
        rows = hi - lo
        if optimizer is None:
            loss = obj.loss(model.module.network, part[:3], y, generator)  # type: ignore[union-attr]
        else:
            loss = model(*part[:3], y, generator)
        if not torch.isfinite(loss):
            raise PretrainingError(
                f"the pretraining loss is not finite ({loss.item()}) in process {info.rank}; "
                "lower lr or check the data for extreme values"
            )
        if optimizer is not None:
            # DDP averages gradients over processes; weighting each share by its size makes
            # the average the gradient of the mean loss over the whole global batch
            weight = rows * info.world_size / global_rows
            optimizer.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimizer.step()
        total += float(loss.detach()) * rows
        count += rows
    return total, count


def _global_mean(total: float, rows: int) -> float:
    summed, n = all_reduce_sum([total, rows])
    return summed / n if n else math.nan
