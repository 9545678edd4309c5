"""Small torch helpers: device choice, scoped seeding, column keys, batch iteration."""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Iterator

import numpy as np
import torch

from tabular.exceptions import TabularError

__all__ = [
    "column_key",
    "iter_batches",
    "resolve_device",
    "seed_from",
    "seeded",
    "state_to_cpu",
]

_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def column_key(name: str) -> str:
    """A module-dict key for column ``name``: readable, free of dots, unique per name.

    The key is the name with unsafe characters replaced by ``_``, shortened, plus a short hash
    of the exact name so that two names that sanitise alike never share parameters.
    """
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"c_{_UNSAFE.sub('_', name)[:40]}_{digest}"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when present, else CPU; anything else is passed to torch."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TabularError(f"device={device!r} is not a torch device: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TabularError(f"device={device!r} was requested but CUDA is not available")
    return resolved


def seed_from(random_state: int | np.random.Generator | None) -> int:
    """A 63-bit integer seed drawn from ``random_state`` (fresh entropy when ``None``)."""
    rng = np.random.default_rng(random_state)
    return int(rng.integers(0, 2**63 - 1))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's default generators seeded by ``seed``, then restore them.

    Parameter initialisation and dropout draw from torch's default generators, which take no
    ``generator`` argument. Forking them for the duration of the block makes those draws
    reproducible while leaving the caller's random stream exactly as it was.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.manual_seed(seed)
        yield


def iter_batches(
    tensors: tuple[torch.Tensor, ...],
    order: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield the rows ``order[i : i + batch_size]`` of each tensor, moved to ``device``."""
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx].to(device, non_blocking=True) for t in tensors)


def state_to_cpu(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``module.state_dict()`` (safe to keep or to save)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


class EarlyStopping:
    """Best-epoch tracking on a validation loss, with patience and restoration of the best weights.

    Shared by in-memory, distributed and streaming pretraining. Without a validation loss
    (``None``) every epoch counts as the best and training never stops early.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = 0
        self.stale = 0
        self._best_state: tuple[dict[str, torch.Tensor], ...] | None = None

    def step(self, epoch: int, val_loss: float | None, *modules: torch.nn.Module) -> bool:
        """Record one epoch; return True when training should stop."""
        if val_loss is None:
            self.best_epoch = epoch
            return False
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.stale = val_loss, epoch, 0
            self._best_state = tuple(state_to_cpu(m) for m in modules)
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self, *modules: torch.nn.Module) -> None:
        """Load the weights of the best epoch (if one was recorded) into ``modules``."""
        if self._best_state is not None:
            for module, state in zip(modules, self._best_state, strict=True):
                module.load_state_dict(state)
