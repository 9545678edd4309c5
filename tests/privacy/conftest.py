"""Fixtures for the privacy tests: tiny fine-tunable models and synthetic per-record data."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and threads stall on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyNet(nn.Module):
    """A FineTunable MLP: ``blocks`` then ``head``."""

    def __init__(self, d_in: int = 8, hidden: int = 16, n_blocks: int = 2) -> None:
        super().__init__()
        dims = [d_in] + [hidden] * n_blocks
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(dims)
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


@pytest.fixture
def make_net() -> Callable[..., TinyNet]:
    """Build a TinyNet with reproducible weights (without touching the global RNG state)."""

    def build(seed: int = 0, **kwargs: int) -> TinyNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TinyNet(**kwargs)

    return build


@pytest.fixture
def make_data() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Binary classification data ``(X, y)`` with a noisy linear signal."""

    def build(n: int = 200, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        X = torch.randn(n, d, generator=gen)
        logits = 2.0 * X[:, 0] - X[:, 1]
        y = (torch.rand(n, generator=gen) < torch.sigmoid(logits)).float()
        return X, y

    return build


@pytest.fixture
def snapshot() -> Callable[[nn.Module], dict[str, torch.Tensor]]:
    """Detached copies of every parameter of a module."""

    def take(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.named_parameters()}

    return take
