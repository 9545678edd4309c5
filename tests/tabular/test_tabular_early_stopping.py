"""Early stopping shared by in-memory, distributed and streaming pretraining."""

from __future__ import annotations

import torch

from tabular.loop import EarlyStopping


def test_stops_after_patience_and_restores_the_best_weights() -> None:
    net = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert not stopper.step(1, 0.5, net)
    with torch.no_grad():
        net.weight.fill_(2.0)
    assert not stopper.step(2, 0.7, net)  # worse: one stale epoch
    assert stopper.step(3, 0.6, net)  # still worse than 0.5: patience reached
    stopper.restore(net)
    assert stopper.best_epoch == 1 and stopper.best_loss == 0.5
    assert torch.equal(net.weight, torch.ones_like(net.weight))


def test_without_validation_every_epoch_is_best_and_nothing_is_restored() -> None:
    net = torch.nn.Linear(2, 1)
    before = net.weight.detach().clone()
    stopper = EarlyStopping(patience=1)
    assert not any(stopper.step(e, None, net) for e in range(1, 5))
    assert stopper.best_epoch == 4
    stopper.restore(net)
    assert torch.equal(net.weight, before)
