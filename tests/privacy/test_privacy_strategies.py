"""Fine-tuning strategies: registry, what each one trains, one budget for LP-FT."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from privacy import (
    FineTunable,
    PrivacyConfig,
    PrivacyConfigError,
    RegistryError,
    Strategy,
    StrategyError,
    TrainConfig,
    available_strategies,
    compute_epsilon,
    fine_tune,
    get_strategy,
    register_strategy,
)
from privacy.accounting import calibrate_noise

CFG = {"accountant": "rdp", "epochs": 2, "batch_size": 10, "learning_rate": 0.05}


def changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    return {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}


def test_registry_lists_the_strategies_and_refuses_duplicates() -> None:
    assert {"linear-probe", "full", "partial", "lp-ft"} <= set(available_strategies())

    class Other(Strategy):
        name = "linear-probe"

        def phases(self, model, *, epochs):
            return []

    with pytest.raises(RegistryError, match="already registered"):
        register_strategy(Other)
    with pytest.raises(RegistryError, match="unknown strategy"):
        get_strategy("head-only")
    with pytest.raises(PrivacyConfigError, match="does not accept"):
        get_strategy("full", n_blocks=2)
    with pytest.raises(PrivacyConfigError, match="n_blocks"):
        get_strategy("partial", n_blocks=0)


def test_model_protocol(make_net) -> None:
    model: FineTunable = make_net()  # TinyNet satisfies the protocol (checked by mypy)
    assert [ph.name for ph in get_strategy("lp-ft").phases(model, epochs=2)] == [
        "linear-probe",
        "full",
    ]
    with pytest.raises(StrategyError, match="FineTunable"):
        get_strategy("linear-probe").phases(nn.Linear(3, 1), epochs=2)
    with pytest.raises(StrategyError, match="blocks"):
        get_strategy("partial").phases(nn.Sequential(), epochs=2)


def test_private_linear_probe_changes_only_the_head(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net()
    before = snapshot(net)
    result = fine_tune(
        net,
        X,
        y,
        strategy="linear-probe",
        config=PrivacyConfig(epsilon=1.0, **CFG),
        random_state=0,
        progress=False,
        device="cpu",
    )
    assert changed(before, net) == {"head.weight", "head.bias"}
    assert all(p.requires_grad for p in net.parameters())
    assert result.private and len(result.phases) == 1
    assert result.ledger.entries[0].purpose == "fine-tune:linear-probe"
    assert result.epsilon == pytest.approx(result.phases[0].epsilon)


def test_partial_trains_the_last_blocks_and_the_head(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net(n_blocks=3)
    before = snapshot(net)
    fine_tune(
        net,
        X,
        y,
        strategy=get_strategy("partial", n_blocks=2),
        train_config=TrainConfig(epochs=1),
        random_state=0,
        progress=False,
        device="cpu",
    )
    assert changed(before, net) == {
        f"{prefix}.{kind}"
        for prefix in ("blocks.1.0", "blocks.2.0", "head")
        for kind in ("weight", "bias")
    }
    with pytest.raises(StrategyError, match="n_blocks=4"):
        get_strategy("partial", n_blocks=4).phases(net, epochs=2)


def test_full_trains_everything_without_privacy(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net()
    before = snapshot(net)
    result = fine_tune(net, X, y, strategy="full", random_state=0, progress=False, device="cpu")
    assert changed(before, net) == set(before)
    assert not result.private and result.ledger is None and result.epsilon is None
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_lp_ft_shares_one_budget(make_net, make_data, snapshot) -> None:
    n, eps = 200, 1.0
    X, y = make_data(n=n)
    net = make_net()
    before = snapshot(net)
    cfg = PrivacyConfig(epsilon=eps, **{**CFG, "epochs": 4})
    result = fine_tune(
        net,
        X,
        y,
        strategy="lp-ft",
        config=cfg,
        data_id="site-A",
        random_state=0,
        progress=False,
        device="cpu",
    )
    lp, ft = result.phases
    assert (lp.trainable, len(ft.trainable)) == (("head.bias", "head.weight"), len(before))
    assert changed(before, net) == set(before)
    assert lp.noise_multiplier == ft.noise_multiplier
    q, steps_each = 1 / math.ceil(n / 10), 2 * math.ceil(n / 10)
    assert (lp.steps, ft.steps) == (steps_each, steps_each)
    # one noise multiplier calibrated over the steps of both phases
    assert lp.noise_multiplier == calibrate_noise(
        epsilon=eps, delta=1e-5, sample_rate=q, steps=2 * steps_each, accountant="rdp"
    )
    entries = result.ledger.entries
    assert [e.purpose for e in entries] == ["fine-tune:lp-ft:linear-probe", "fine-tune:lp-ft:full"]
    total = result.ledger.total_spent("site-A")
    assert total.epsilon == pytest.approx(result.epsilon)
    assert total.epsilon == pytest.approx(
        compute_epsilon([(lp.noise_multiplier, q, 2 * steps_each)], delta=1e-5, accountant="rdp")
    )
    assert max(lp.epsilon, ft.epsilon) < total.epsilon <= eps
    assert total.epsilon > 0.9 * eps


def test_lp_ft_needs_two_epochs_and_configs_are_exclusive(make_net, make_data) -> None:
    X, y = make_data(n=100)
    with pytest.raises(StrategyError, match="at least 2 epochs"):
        fine_tune(
            make_net(),
            X,
            y,
            strategy="lp-ft",
            train_config=TrainConfig(epochs=1),
            progress=False,
            device="cpu",
        )
    with pytest.raises(PrivacyConfigError, match="either config"):
        fine_tune(
            make_net(),
            X,
            y,
            config=PrivacyConfig(epsilon=1.0),
            train_config=TrainConfig(),
            progress=False,
            device="cpu",
        )
