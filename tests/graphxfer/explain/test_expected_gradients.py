"""The batched expected-gradients estimator behind ``method="gradient"``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphxfer.explain._torch import expected_gradients
from graphxfer.explain.exceptions import ExplanationError


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(40, 5, generator=gen), torch.randn(7, 5, generator=gen)


def test_linear_model_gets_weight_times_distance_to_the_background_mean() -> None:
    background, inputs = _data()
    head = torch.nn.Linear(5, 1)
    phi = expected_gradients(head, background, inputs, samples=4000, seed=0)
    w = head.weight.detach().numpy().ravel()
    expected = w * (inputs.numpy() - background.numpy().mean(axis=0))
    # the gradient is exact; only the draw of background rows is random
    np.testing.assert_allclose(phi, expected, atol=0.08)


def test_matches_shap_gradient_explainer_in_expectation() -> None:
    import shap

    background, inputs = _data(1)
    gen = torch.Generator().manual_seed(2)
    head = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    for p in head.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen))
    ours = expected_gradients(head, background, inputs, samples=3000, seed=0)
    theirs = shap.GradientExplainer(head, background).shap_values(inputs, nsamples=3000, rseed=0)
    theirs = np.asarray(theirs).reshape(ours.shape)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() < 0.06 * scale
    # both approximately complete: attributions sum to f(x) - E f(background)
    with torch.no_grad():
        gap = (head(inputs) - head(background).mean()).numpy().ravel()
    np.testing.assert_allclose(ours.sum(axis=1), gap, atol=0.08 * np.abs(gap).max())


def _relu_net(seed: int) -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


@pytest.mark.parametrize("net_seed", [0, 1, 2])
def test_batching_leaves_the_estimate(net_seed: int) -> None:
    background, inputs = _data()
    head = _relu_net(net_seed)
    # 80 samples: every one of the 40 background rows twice
    one = expected_gradients(head, background, inputs, samples=80, seed=3, batch_rows=80)
    many = expected_gradients(head, background, inputs, samples=80, seed=3, batch_rows=10_000)
    again = expected_gradients(head, background, inputs, samples=80, seed=3, batch_rows=10_000)
    assert one.shape == many.shape == (7, 5)
    np.testing.assert_array_equal(many, again)  # seeded: reproducible
    # one record per pass or all records in one pass: the same estimate up to sampling error
    reference = expected_gradients(head, background, inputs, samples=20_000, seed=4)
    scale = np.abs(reference).mean()
    for estimate in (one, many):
        assert np.abs(estimate - reference).mean() < 0.25 * scale  # worst seen: 0.2


def test_needs_a_sample() -> None:
    background, inputs = _data()
    with pytest.raises(ExplanationError, match="at least 1 sample"):
        expected_gradients(torch.nn.Linear(5, 1), background, inputs, samples=0)


def test_balanced_draws_use_every_background_row_evenly() -> None:
    from graphxfer.explain._torch import _balanced_rows

    gen = torch.Generator().manual_seed(0)
    rows = _balanced_rows(4, 250, 100, gen)
    assert rows.shape == (4, 250)
    for r in range(4):
        counts = torch.bincount(rows[r], minlength=100)
        assert int(counts.min()) >= 2 and int(counts.max()) <= 3  # 250 = 2 rounds + 50


def _shap_and_ours(head, background, inputs, shap_samples: int) -> tuple[float, float]:
    """Mean absolute error (3 seeds) of ours at 100 samples and shap at ``shap_samples``."""
    import shap

    converged = expected_gradients(head, background, inputs, samples=10_000, seed=1)
    ours, theirs = [], []
    for seed in range(3):
        mine = expected_gradients(head, background, inputs, samples=100, seed=seed)
        raw = shap.GradientExplainer(head, background).shap_values(
            inputs, nsamples=shap_samples, rseed=seed
        )
        ours.append(np.abs(mine - converged).mean())
        theirs.append(np.abs(np.asarray(raw).reshape(mine.shape) - converged).mean())
    return float(np.mean(ours)), float(np.mean(theirs))


@pytest.mark.parametrize("steep", [False, True])
def test_balanced_draws_are_more_precise_than_independent_ones(steep: bool) -> None:
    """100 balanced draws (each background row once) against shap's independent draws."""
    gen = torch.Generator().manual_seed(5)
    background, inputs = torch.randn(100, 8, generator=gen), torch.randn(60, 8, generator=gen)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        head = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1), torch.nn.Sigmoid()
        )
    if steep:  # large weights: sharp transitions along the path, the hard case
        for p in head.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen))
        ours, shap_100 = _shap_and_ours(head, background, inputs, 100)
        assert ours < 0.85 * shap_100  # same number of draws: balanced wins
    else:  # a smooth model: balanced draws beat twice as many independent ones
        ours, shap_200 = _shap_and_ours(head, background, inputs, 200)
        assert ours < 0.5 * shap_200


def test_systematic_draws_follow_the_weights() -> None:
    from graphxfer.explain._torch import _systematic_rows

    gen = torch.Generator().manual_seed(0)
    weights = np.array([0.5, 0.25, 0.25])
    rows = _systematic_rows(6, 8, weights, gen)
    for r in range(6):  # 8 draws: exactly 4, 2 and 2
        assert torch.bincount(rows[r], minlength=3).tolist() == [4, 2, 2]
    rows = _systematic_rows(50, 10, weights, gen)
    counts = torch.stack([torch.bincount(r, minlength=3) for r in rows])
    assert set(counts[:, 0].tolist()) == {5} and set(counts[:, 1].tolist()) <= {2, 3}


def test_weighted_background_of_a_linear_model_is_its_weighted_mean() -> None:
    background, inputs = _data()
    weights = np.full(40, 1 / 80)
    weights[:20] = 3 / 80  # 120 draws: the first 20 rows three times, the others once
    head = torch.nn.Linear(5, 1)
    phi = expected_gradients(head, background, inputs, samples=80, seed=0, weights=weights)
    w = head.weight.detach().numpy().ravel()
    expected = w * (inputs.numpy() - weights @ background.numpy())
    np.testing.assert_allclose(phi, expected, rtol=0, atol=1e-5)
