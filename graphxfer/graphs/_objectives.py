"""The pretraining objectives of :func:`~graphxfer.graphs.pretrain_graph` (described in
:mod:`graphxfer.graphs.pretrain`), each a module around the network with its extra parts and a
loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from graphxfer.graphs._utils import check_choice
from graphxfer.graphs.encoders import GNNEncoder

__all__ = ["OBJECTIVES", "Supervised", "Task", "TaskLoss", "make_task"]


class Task(nn.Module):
    """A pretraining objective: the network plus its extra modules and a loss."""

    extra_hops = 0  # hops sampled beyond the encoder's layers

    def loss(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class Supervised(Task):
    def __init__(self, net: GNNEncoder) -> None:
        super().__init__()
        self.net = net
        self.head = nn.Linear(net.hidden, 1)

    def loss(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        z = self.net(batch.x, batch.edge_index)[: batch.batch_size]
        logits = self.head(z).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, batch.y[: batch.batch_size])


class _GraphMAE(Task):
    extra_hops = 1

    def __init__(self, net: GNNEncoder, mask_rate: float, gamma: float = 2.0) -> None:
        super().__init__()
        self.net = net
        self.mask_rate = mask_rate
        self.gamma = gamma
        self.mask_token = nn.Parameter(torch.zeros(1, net.in_channels))
        self.to_decoder = nn.Linear(net.hidden, net.hidden, bias=False)
        self.decoder = net.make_decoder(net.hidden, net.in_channels)

    def loss(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        n, seeds = batch.num_nodes, batch.batch_size
        mask = torch.rand(n, generator=generator) < self.mask_rate
        if not bool(mask[:seeds].any()):
            mask[0] = True
        mask = mask.to(batch.x.device)
        x_in = torch.where(mask[:, None], self.mask_token, batch.x)
        h = self.to_decoder(self.net(x_in, batch.edge_index))
        h = h.masked_fill(mask[:, None], 0.0)
        recon = self.decoder(h, batch.edge_index)
        chosen = mask.clone()
        chosen[seeds:] = False
        cos = F.cosine_similarity(recon[chosen], batch.x[chosen], dim=1, eps=1e-8)
        return (1.0 - cos).pow(self.gamma).mean()


class _SeedEncoder(nn.Module):
    def __init__(self, net: GNNEncoder) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, seeds: int) -> torch.Tensor:
        return self.net(x, edge_index)[:seeds]


class _Corruption:
    """Shuffle node features (rows) with the current generator."""

    def __init__(self) -> None:
        self.generator: torch.Generator | None = None

    def __call__(
        self, x: torch.Tensor, edge_index: torch.Tensor, seeds: int
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        perm = torch.randperm(x.shape[0], generator=self.generator).to(x.device)
        return x[perm], edge_index, seeds


def _summary(z: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return torch.sigmoid(z.mean(dim=0))


class _DGI(Task):
    def __init__(self, net: GNNEncoder) -> None:
        super().__init__()
        from torch_geometric.nn import DeepGraphInfomax

        self.net = net
        self.corruption = _Corruption()
        self.dgi = DeepGraphInfomax(
            net.hidden, encoder=_SeedEncoder(net), summary=_summary, corruption=self.corruption
        )

    def loss(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        self.corruption.generator = generator
        pos, neg, summary = self.dgi(batch.x, batch.edge_index, batch.batch_size)
        return self.dgi.loss(pos, neg, summary)


class TaskLoss(nn.Module):
    """A task whose forward pass is its loss (what DistributedDataParallel wraps)."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        return self.task.loss(batch, generator)


_TASKS: dict[str, Callable[[GNNEncoder, float], Task]] = {
    "supervised": lambda net, mask_rate: Supervised(net),
    "graphmae": lambda net, mask_rate: _GraphMAE(net, mask_rate),
    "dgi": lambda net, mask_rate: _DGI(net),
}

OBJECTIVES = tuple(_TASKS)
"""The pretraining objectives of graph encoders."""


def make_task(objective: str, net: GNNEncoder, *, mask_rate: float) -> Task:
    """The untrained task of ``objective`` (one of :data:`OBJECTIVES`) around ``net``."""
    return _TASKS[check_choice(objective, "objective", OBJECTIVES)](net, mask_rate)
