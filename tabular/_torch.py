"""Small torch helpers: scoped seeding, column keys, batch iteration, CPU copies of weights."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "column_key",
    "iter_batches",
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
