"""Anchored fine-tuning (proximal pull toward reference weights) and private selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from privacy import PrivacyConfig, TrainConfig, fine_tune
from privacy.anchor import Anchor, AnchorGroup
from privacy.exceptions import PrivacyConfigError
from privacy.selection import exponential_mechanism, selection_probabilities


class _Probe(nn.Module):
    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.head = nn.Linear(d, 1)
        self.blocks: list[nn.Module] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x).reshape(-1)


def test_proximal_step_is_the_exact_minimiser_of_the_penalised_quadratic() -> None:
    torch.manual_seed(0)
    m = _Probe(3)
    ref = torch.randn(4)
    a = torch.randn(4, 4)
    precision = a @ a.T + torch.eye(4)
    anchor = Anchor([AnchorGroup(("head.weight", "head.bias"), ref, precision)], strength=0.7)
    theta = torch.cat([m.head.weight.detach().reshape(-1), m.head.bias.detach()]).double()
    lr = 0.3
    anchor.proximal(m, lr)()
    after = torch.cat([m.head.weight.detach().reshape(-1), m.head.bias.detach()]).double()
    # argmin_x 0.7/2 (x-ref)^T P (x-ref) + |x - theta|^2 / (2 lr)
    expected = torch.linalg.solve(
        torch.eye(4, dtype=torch.float64) / lr + 0.7 * precision.double(),
        theta / lr + 0.7 * precision.double() @ ref.double(),
    )
    assert torch.allclose(after, expected, atol=1e-5)


def test_anchor_validates_shapes_and_duplicates() -> None:
    with pytest.raises(PrivacyConfigError, match="precision has shape"):
        Anchor([AnchorGroup(("w",), torch.zeros(3), torch.eye(2))], strength=1.0)
    with pytest.raises(PrivacyConfigError, match="anchored twice"):
        Anchor([AnchorGroup(("w",), torch.zeros(1)), AnchorGroup(("w",), torch.zeros(1))], 1.0)
    with pytest.raises(PrivacyConfigError, match=">= 0"):
        Anchor([], strength=-1.0)
    m = _Probe(2)
    with pytest.raises(PrivacyConfigError, match="not parameters"):
        Anchor([AnchorGroup(("nope",), torch.zeros(1))], 1.0).proximal(m, 0.1)


def _data(n: int = 80, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).float()
    return x, y


def test_strong_anchor_keeps_dp_fine_tuning_at_the_reference() -> None:
    x, y = _data()
    m = _Probe(3)
    ref = {n: p.detach().clone() for n, p in m.named_parameters()}
    anchor = Anchor.l2sp(m, strength=1e6)
    cfg = PrivacyConfig(
        epsilon=1.0, epochs=3, batch_size=20, learning_rate=0.5, optimizer="sgd", accountant="rdp"
    )
    fine_tune(m, (x,), y, strategy="linear-probe", config=cfg, anchor=anchor, progress=False)
    for n, p in m.named_parameters():
        assert torch.allclose(p.detach(), ref[n], atol=1e-4)


def test_anchor_pulls_a_noisy_fit_toward_the_reference() -> None:
    x, y = _data()
    cfg = PrivacyConfig(
        epsilon=0.5, epochs=5, batch_size=20, learning_rate=1.0, optimizer="sgd", accountant="rdp"
    )
    dist = {}
    for strength in (0.0, 5.0):
        total = 0.0
        for rep in range(3):
            torch.manual_seed(rep)
            m = _Probe(3)
            ref = torch.cat([p.detach().reshape(-1).clone() for p in m.parameters()])
            anchor = Anchor.l2sp(m, strength=strength)
            fine_tune(
                m, (x,), y, strategy="linear-probe", config=cfg, anchor=anchor, progress=False
            )
            now = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
            total += float((now - ref).norm())
        dist[strength] = total
    assert dist[5.0] < 0.5 * dist[0.0]


def test_anchor_in_non_private_training() -> None:
    x, y = _data()
    m = _Probe(3)
    anchor = Anchor.l2sp(m, strength=1e6)
    before = m.head.weight.detach().clone()
    cfg = TrainConfig(epochs=3, batch_size=16, learning_rate=0.5, optimizer="sgd")
    fine_tune(m, (x,), y, strategy="linear-probe", train_config=cfg, anchor=anchor, progress=False)
    assert torch.allclose(m.head.weight.detach(), before, atol=1e-4)
    assert float(anchor.penalty(m)) < 1e-3


def test_selection_probabilities_follow_the_exponential_mechanism() -> None:
    p = selection_probabilities([0.0, 1.0], epsilon=2.0, sensitivity=1.0)
    assert p[1] / p[0] == pytest.approx(np.exp(1.0))  # exp(eps * du / (2 * sensitivity))
    p = selection_probabilities([0.0, 1.0], epsilon=2.0, sensitivity=1.0, monotone=True)
    assert p[1] / p[0] == pytest.approx(np.exp(2.0))
    p = selection_probabilities([0.0, 0.0, 0.0], epsilon=1.0, sensitivity=1.0, prior=[1, 0, 3])
    assert p.tolist() == pytest.approx([0.25, 0.0, 0.75])


def test_selection_rejects_bad_input() -> None:
    with pytest.raises(PrivacyConfigError):
        selection_probabilities([], epsilon=1.0, sensitivity=1.0)
    with pytest.raises(PrivacyConfigError):
        selection_probabilities([1.0], epsilon=0.0, sensitivity=1.0)
    with pytest.raises(PrivacyConfigError):
        selection_probabilities([1.0, 2.0], epsilon=1.0, sensitivity=1.0, prior=[0, 0])


def test_exponential_mechanism_draws_with_the_stated_frequencies() -> None:
    utilities = [0.0, 1.0, 2.0]
    expected = selection_probabilities(utilities, epsilon=1.0, sensitivity=1.0)
    draws = np.bincount(
        [exponential_mechanism(utilities, epsilon=1.0, sensitivity=1.0) for _ in range(4000)],
        minlength=3,
    )
    # 4000 draws: each frequency within 4 standard errors of its probability
    se = np.sqrt(expected * (1 - expected) / 4000)
    assert np.all(np.abs(draws / 4000 - expected) < 4 * se + 1e-9)
