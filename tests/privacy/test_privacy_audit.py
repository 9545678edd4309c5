"""Empirical audits: the lower bound is sound, and DP leaks measurably less."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from privacy import (
    AuditResult,
    InputDataError,
    PrivacyConfig,
    TrainConfig,
    canary_audit,
    empirical_epsilon_lower_bound,
    membership_inference_audit,
    train_non_private,
    train_private,
)


def test_bound_from_perfect_separation_is_limited_by_the_sample_size() -> None:
    eps, threshold, tpr, fpr = empirical_epsilon_lower_bound([1.0] * 100, [0.0] * 100)
    assert (tpr, fpr, threshold) == (1.0, 0.0, 1.0)
    assert 1.0 < eps < math.log(100)
    more, *_ = empirical_epsilon_lower_bound([1.0] * 1000, [0.0] * 1000)
    assert more > eps
    assert empirical_epsilon_lower_bound([0.0, 1.0] * 50, [0.0, 1.0] * 50)[0] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_bound_never_exceeds_the_epsilon_of_randomized_response(seed) -> None:
    """Randomized response is exactly eps-DP; its audit must stay below eps."""
    eps = 1.0
    rng = np.random.default_rng(seed)
    p = math.exp(eps) / (1 + math.exp(eps))
    members = (rng.random(4000) < p).astype(float)
    nonmembers = (rng.random(4000) < 1 - p).astype(float)
    bound, *_ = empirical_epsilon_lower_bound(members, nonmembers)
    assert 0.5 < bound <= eps


def test_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    m, k = rng.normal(0.3, 1, 80), rng.normal(0, 1, 60)
    proba_m, proba_k = 1 / (1 + np.exp(-m)), 1 / (1 + np.exp(-k))
    result = membership_inference_audit(proba_m, np.ones(80), proba_k, np.ones(60))
    scores = np.log(np.concatenate([proba_m, proba_k]))
    assert result.attack_auc == pytest.approx(
        roc_auc_score(np.r_[np.ones(80), np.zeros(60)], scores)
    )
    two_col = membership_inference_audit(
        np.c_[1 - proba_m, proba_m], np.ones(80), np.c_[1 - proba_k, proba_k], np.ones(60)
    )
    assert two_col.attack_auc == pytest.approx(result.attack_auc)
    with pytest.raises(InputDataError, match="labels"):
        membership_inference_audit(proba_m, np.ones(79), proba_k, np.ones(60))


def test_canary_audit_detects_memorization_and_passes_a_constant_model() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] > 0).astype(np.int64)

    def memorize(X_train, y_train):
        table = {tuple(np.round(x, 9)): int(t) for x, t in zip(X_train, y_train)}

        def predict(X_new):
            return np.array([table.get(tuple(np.round(x, 9)), 0.5) for x in X_new], dtype=float)

        return predict

    def constant(X_train, y_train):
        return lambda X_new: np.full(len(X_new), 0.5)

    leaky = canary_audit(memorize, X, y, n_canaries=50, claimed_epsilon=1.0, random_state=0)
    assert leaky.method == "canary" and leaky.attack_auc > 0.95
    assert leaky.eps_lower_bound > 1.0 and leaky.passed is False
    safe = canary_audit(constant, X, y, n_canaries=50, claimed_epsilon=1.0, random_state=0)
    assert safe.attack_auc == pytest.approx(0.5) and safe.eps_lower_bound == 0.0 and safe.passed
    assert set(safe.to_dict()) == {f for f in AuditResult.__dataclass_fields__}


def test_dp_model_leaks_less_than_an_overfitted_one(make_net, make_data) -> None:
    """Loss-threshold attack on an MLP: clear leak without DP, none beyond eps with DP."""
    X, y = make_data(n=400, d=8, seed=3)
    y = torch.where(torch.rand(400, generator=torch.Generator().manual_seed(1)) < 0.3, 1 - y, y)
    X_in, y_in, X_out, y_out = X[:200], y[:200], X[200:], y[200:]

    def proba(model, X_eval):
        with torch.no_grad():
            return torch.sigmoid(model(X_eval)).squeeze(1).numpy()

    overfit = make_net(hidden=64)
    train_non_private(
        overfit,
        X_in,
        y_in,
        config=TrainConfig(epochs=150, batch_size=50, learning_rate=1e-2),
        random_state=0,
        progress=False,
        device="cpu",
    )
    plain = membership_inference_audit(proba(overfit, X_in), y_in, proba(overfit, X_out), y_out)

    private = make_net(hidden=64)
    cfg = PrivacyConfig(epsilon=1.0, epochs=5, batch_size=20, accountant="rdp", learning_rate=1e-2)
    run = train_private(
        private, X_in, y_in, config=cfg, random_state=0, progress=False, device="cpu"
    )
    dp = membership_inference_audit(
        proba(private, X_in),
        y_in,
        proba(private, X_out),
        y_out,
        claimed_epsilon=run.epsilon,
        delta=run.delta,
    )

    assert plain.attack_auc > 0.65
    assert plain.attack_auc > dp.attack_auc + 0.1
    assert plain.eps_lower_bound > run.epsilon  # the plain model provably leaks more
    assert dp.eps_lower_bound <= run.epsilon and dp.passed


@pytest.mark.slow
def test_canaries_with_real_training(make_net, make_data) -> None:
    """Canary audit through train_fn: the plain MLP memorizes canaries, the DP one does not."""
    X, y = make_data(n=600, d=8, seed=5)

    def fit(private: bool):
        def train_fn(X_train, y_train):
            model = make_net(hidden=64)
            if private:
                cfg = PrivacyConfig(
                    epsilon=1.0, epochs=5, batch_size=25, accountant="rdp", learning_rate=1e-2
                )
                train_private(
                    model,
                    X_train,
                    y_train,
                    config=cfg,
                    random_state=0,
                    progress=False,
                    device="cpu",
                )
            else:
                train_non_private(
                    model,
                    X_train,
                    y_train,
                    config=TrainConfig(epochs=200, batch_size=50, learning_rate=1e-2),
                    random_state=0,
                    progress=False,
                    device="cpu",
                )

            def predict(X_new):
                with torch.no_grad():
                    return torch.sigmoid(model(X_new)).squeeze(1).numpy()

            return predict

        return train_fn

    plain = canary_audit(fit(False), X, y, n_canaries=50, random_state=0)
    private = canary_audit(fit(True), X, y, n_canaries=50, claimed_epsilon=1.0, random_state=0)
    assert plain.attack_auc > 0.8 and plain.attack_auc > private.attack_auc + 0.2
    assert private.passed
