"""Person-level DP-SGD: the rows of one person are sampled, summed and clipped together."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn

import privacy.person_level as person_level
from privacy import PrivacyConfig, PrivacyConfigError, TooFewRecordsError, train_private
from privacy.training import clip_and_sum_per_person

# Opacus notes that are expected with the small, fast settings used here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning"),
]

CFG = {"accountant": "rdp", "epochs": 2, "batch_size": 10, "learning_rate": 0.05}


def naive_clip_and_sum(grads, person_ids, n_persons, c):
    """Reference: one person at a time, in plain Python."""
    out = [torch.zeros_like(g[0]) for g in grads]
    norms = []
    for p in range(n_persons):
        rows = person_ids == p
        summed = [g[rows].sum(dim=0) for g in grads]
        norm = torch.sqrt(sum((s**2).sum() for s in summed))
        norms.append(norm)
        factor = min(1.0, c / (float(norm) + 1e-6))
        for o, s in zip(out, summed):
            o += factor * s
    return out, torch.stack(norms)


def test_clip_and_sum_matches_the_naive_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    person_ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 1, 4])
    grads = [torch.randn(9, 3, 4, generator=gen) * 5, torch.randn(9, 3, generator=gen)]
    fast, fast_norms = clip_and_sum_per_person(grads, person_ids, 5, 1.5)
    slow, slow_norms = naive_clip_and_sum(grads, person_ids, 5, 1.5)
    for f, s in zip(fast, slow):
        torch.testing.assert_close(f, s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_norms, slow_norms, rtol=1e-5, atol=1e-5)


def test_each_person_contributes_at_most_c_before_noise() -> None:
    """Per-row gradients from Opacus, summed per person, clipped: every person <= C."""
    gen = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    x = torch.randn(12, 6, generator=gen) * 30  # large inputs: large gradients
    y = (torch.rand(12, generator=gen) < 0.5).float()
    person_ids = torch.tensor([0, 0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3])
    c = 0.5

    gsm = GradSampleModule(model, loss_reduction="mean")
    loss = nn.functional.binary_cross_entropy_with_logits(gsm(x).squeeze(1), y)
    loss.backward()
    grads = [p.grad_sample for p in model.parameters()]
    gsm.to_standard_module()

    # The per-row gradients are the gradients of each row's own loss: summing a person's
    # rows gives the gradient of that person's total loss (checked with plain autograd).
    for person in range(4):
        rows = person_ids == person
        model.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(
            model(x[rows]).squeeze(1), y[rows], reduction="sum"
        ).backward()
        for p, g in zip(model.parameters(), grads):
            torch.testing.assert_close(g[rows].sum(dim=0), p.grad, rtol=1e-4, atol=1e-4)

    _, norms = clip_and_sum_per_person(grads, person_ids, 4, c)
    assert (norms > c).all()  # every person needs clipping here
    for person in range(4):
        rows = person_ids == person
        alone, _ = clip_and_sum_per_person(
            [g[rows] for g in grads], torch.zeros(int(rows.sum()), dtype=torch.long), 1, c
        )
        contribution = torch.sqrt(sum((a**2).sum() for a in alone))
        assert float(contribution) <= c * (1 + 1e-5)


def test_training_clips_whole_persons_and_epsilon_matches_the_accountant(
    make_net, make_data, monkeypatch
) -> None:

    n_persons, rows_each = 100, 3
    X, y = make_data(n=n_persons * rows_each)
    persons = np.repeat(np.arange(n_persons), rows_each)
    np.random.default_rng(0).shuffle(persons)  # rows of a person are not adjacent

    seen: list[tuple[torch.Tensor, int, torch.Tensor]] = []

    def spy(grads, person_ids, n, c):
        summed, norms = clip_and_sum_per_person(grads, person_ids, n, c)
        seen.append((person_ids.clone(), n, norms))
        return summed, norms

    monkeypatch.setattr(person_level, "clip_and_sum_per_person", spy)
    cfg = PrivacyConfig(epsilon=1.0, max_physical_batch_size=7, **CFG)
    result = train_private(
        make_net(),
        X,
        y,
        config=cfg,
        person_index=persons,
        random_state=0,
        progress=False,
        device="cpu",
    )
    assert seen
    for person_ids, n, _ in seen:
        counts = torch.bincount(person_ids, minlength=n)
        assert (counts == rows_each).all()  # every sampled person arrives with all its rows
        assert len(person_ids) <= 7  # physical batches hold whole persons

    q = 10 / n_persons
    steps = int(2 / q)
    assert (result.unit, result.n_persons, result.n_rows) == ("person", 100, 300)
    assert result.sample_rate == q and result.steps == steps
    assert result.noise_multiplier == get_noise_multiplier(
        target_epsilon=1.0, target_delta=1e-5, sample_rate=q, steps=steps, accountant="rdp"
    )
    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, q, steps)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-12)
    entry = result.ledger_entry
    assert entry is not None
    assert (entry.mechanism, entry.unit, entry.n_records) == ("dp-sgd-person", "person", 100)


def test_persons_not_rows_are_counted_for_the_minimum(make_net, make_data) -> None:
    # 45 rows, 15 persons: enough rows, too few persons for the person-level minimum (20)
    X, y = make_data(n=45)
    persons = np.repeat(np.arange(15), 3)
    with pytest.raises(TooFewRecordsError, match="15 persons"):
        train_private(
            make_net(),
            X,
            y,
            config=PrivacyConfig(epsilon=1.0, **CFG),
            person_index=persons,
            progress=False,
            device="cpu",
        )


def test_ghost_clipping_cannot_group_rows(make_net, make_data) -> None:
    X, y = make_data(n=200)
    cfg = PrivacyConfig(epsilon=1.0, grad_sample_mode="ghost", **CFG)
    with pytest.raises(PrivacyConfigError, match="ghost"):
        train_private(
            make_net(),
            X,
            y,
            config=cfg,
            person_index=np.arange(200) // 2,
            progress=False,
            device="cpu",
        )


def test_distinct_person_ids_use_the_record_level_path(make_net, make_data) -> None:
    X, y = make_data(n=100)
    ids = np.array([f"p{i}" for i in range(100)])
    result = train_private(
        make_net(),
        X,
        y,
        config=PrivacyConfig(epsilon=1.0, **CFG),
        person_index=ids,
        random_state=0,
        progress=False,
        device="cpu",
    )
    assert result.unit == "record" and result.ledger_entry.mechanism == "dp-sgd"


@pytest.mark.parametrize("mode", ["functorch", "ew"])
def test_other_grad_sample_modes_work_per_person(make_net, make_data, mode) -> None:
    X, y = make_data(n=200)
    cfg = PrivacyConfig(epsilon=1.0, grad_sample_mode=mode, **CFG)
    result = train_private(
        make_net(),
        X,
        y,
        config=cfg,
        person_index=np.arange(200) // 2,
        random_state=0,
        progress=False,
        device="cpu",
    )
    assert result.unit == "person" and np.isfinite(result.history[-1]["loss"])
