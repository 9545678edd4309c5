"""Site intercepts (``tabular.pretrain(groups=...)``): a fixed-effects logistic regression whose
coefficients describe differences within a site, released with one common intercept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tabular import PretrainingError, pretrain

COLUMNS: list[dict[str, Any]] = [
    {"name": "x", "kind": "numeric"},
    {"name": "z", "kind": "numeric"},
    {"name": "lab", "kind": "numeric"},
]
OPTIONS: dict[str, Any] = {
    "encoder": "linear",
    "objective": "supervised",
    "epochs": 1,
    "lr": 1e-2,
    "batch_size": 64,
    "weight_decay": 1e-3,
    "random_state": 0,
    "progress": False,
    "device": "cpu",
}


def _sites(n_per_site: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Four sites whose outcome rates differ (intercepts -1.5 ... +1.5).

    ``x`` has no effect within a site but its site mean follows the site's intercept (a
    between-site confounder); ``z`` has a true within-site effect of 1; ``lab`` is never
    recorded at the site with the highest outcome rate, so its missing flag is that site's
    indicator.
    """
    rng = np.random.default_rng(seed)
    frames, ys, groups = [], [], []
    for k, intercept in enumerate((-1.5, -0.5, 0.5, 1.5)):
        x = rng.normal(2.0 * intercept, 1.0, n_per_site)
        z = rng.normal(0.0, 1.0, n_per_site)
        lab = rng.normal(0.0, 1.0, n_per_site) if k < 3 else np.full(n_per_site, np.nan)
        logit = intercept + 1.0 * z
        ys.append((rng.random(n_per_site) < 1 / (1 + np.exp(-logit))).astype(int))
        frames.append(pd.DataFrame({"x": x, "z": z, "lab": lab}))
        groups += [f"site{k}"] * n_per_site
    return pd.concat(frames, ignore_index=True), np.concatenate(ys), np.asarray(groups)


def _coefficients(encoder: Any) -> dict[str, float]:
    head = encoder.source_head_
    names = encoder.network_.feature_names
    return dict(zip(names, head.weight.detach().numpy().ravel().tolist(), strict=True))


def test_site_intercepts_give_within_site_coefficients() -> None:
    X, y, groups = _sites()
    pooled = _coefficients(pretrain(X, columns=COLUMNS, y=y, **OPTIONS))
    within = _coefficients(pretrain(X, columns=COLUMNS, y=y, groups=groups, **OPTIONS))
    # pooled, x stands in for the site's outcome rate and lab's flag for the fourth site
    assert pooled["x"] > 0.5
    assert pooled["lab:missing"] > 0.3
    # within sites x carries nothing, and a flag that is constant in every site gets nothing
    assert abs(within["x"]) < 0.1
    assert abs(within["lab:missing"]) < 0.05
    # ... while the real within-site effect is kept (z is standardised: coefficient ~ sd(z))
    assert within["z"] == pytest.approx(pooled["z"], rel=0.35)
    assert within["z"] > 0.7


def test_site_intercept_fit_matches_a_stratified_logistic_regression() -> None:
    X, y, groups = _sites(n_per_site=400, seed=1)
    enc = pretrain(X, columns=COLUMNS, y=y, groups=groups, **{**OPTIONS, "weight_decay": 0.0})
    features = enc.embed(X)
    dummies = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    # the identified coefficients (lab's flag is collinear with the site dummies; the other
    # flags are constant)
    names = enc.network_.feature_names
    keep = [names.index(c) for c in ("x", "z", "lab")]
    reference = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=10_000, tol=1e-10)
    reference.fit(np.c_[features[:, keep], dummies], y)
    ours = enc.source_head_.weight.detach().numpy().ravel()[keep]
    np.testing.assert_allclose(ours, reference.coef_[0][: len(keep)], atol=2e-3)


def test_released_intercept_is_refitted_on_the_whole_source() -> None:
    X, y, groups = _sites(seed=2)
    enc = pretrain(X, columns=COLUMNS, y=y, groups=groups, **OPTIONS)
    head = enc.source_head_
    logit = enc.embed(X) @ head.weight.detach().numpy().ravel() + float(head.bias.detach())
    # the score equation of the intercept: mean prediction = outcome rate
    assert float(np.mean(1 / (1 + np.exp(-logit)))) == pytest.approx(y.mean(), abs=1e-4)
    assert enc.source_summary_["site_intercepts"] == 4


def test_one_site_is_the_same_as_none() -> None:
    X, y, _ = _sites(n_per_site=200, seed=3)
    plain = pretrain(X, columns=COLUMNS, y=y, **OPTIONS)
    one = pretrain(X, columns=COLUMNS, y=y, groups=np.full(len(X), "only"), **OPTIONS)
    np.testing.assert_allclose(
        one.source_head_.weight.detach().numpy(), plain.source_head_.weight.detach().numpy()
    )
    assert "site_intercepts" not in one.source_summary_


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"groups": ["a", "b"]}, "groups has 2 values but the data has"),
        ({"groups": "missing-row"}, "groups is missing at row 5"),
        ({"objective": "masked"}, "need objective='supervised'"),
        ({"encoder": "mlp"}, "exact logistic fit of encoder='linear'"),
    ],
)
def test_bad_site_intercept_requests_are_refused(change: dict[str, Any], match: str) -> None:
    X, y, groups = _sites(n_per_site=50, seed=4)
    options = {**OPTIONS, "groups": groups.astype(object), **change}
    if change.get("groups") == "missing-row":
        options["groups"] = groups.astype(object)
        options["groups"][5] = None
    with pytest.raises(PretrainingError, match=match):
        pretrain(X, columns=COLUMNS, y=y, **options)
