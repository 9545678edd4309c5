"""Metrics against hand-computed values and sklearn references."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from graphxfer.evaluate.metrics import (
    bootstrap_ci,
    brier_score,
    expected_calibration_error,
    mean_ci,
    score_all,
)


def test_brier_and_auroc_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    assert score_all(y, p)["auroc"] == pytest.approx(roc_auc_score(y, p))


def test_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    # bin 0: mean p 0.05, mean y 0.5 -> 0.45; bin 9: mean p 0.95, mean y 1 -> 0.05
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


def test_single_class_auroc_is_nan() -> None:
    assert np.isnan(score_all(np.ones(5), np.full(5, 0.5))["auroc"])


def test_mean_ci_covers_the_mean_and_narrows() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(0.7, 0.05, 5)
    large = rng.normal(0.7, 0.05, 500)
    m, lo, hi = mean_ci(small)
    assert lo < m < hi
    _, lo2, hi2 = mean_ci(large)
    assert hi2 - lo2 < hi - lo
    assert lo2 < 0.7 < hi2


def test_bootstrap_ci_contains_the_point_estimate() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.5 * y + 0.5 * rng.random(300), 0, 1)
    point, lo, hi = bootstrap_ci(y, p, "auroc", n_boot=200, random_state=0)
    assert lo <= point <= hi
    assert bootstrap_ci(y, p, "auroc", n_boot=200, random_state=0) == (point, lo, hi)
