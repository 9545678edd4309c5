"""``pretrain(..., site_intercepts=True)``: within-site coefficients for a model of new sites, the
default of the selection's linear candidates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
from graphxfer import Cohort, Schema, datasets
from graphxfer.exceptions import GraphxferError
from graphxfer.selection import (
    N_BOOTSTRAP,
    Leaderboard,
    _site_intercepts_check,
    default_candidates,
    evaluate_candidates,
    resolve_candidates,
)

LINEAR = {"epochs": 1, "lr": 1e-2, "batch_size": 64, "weight_decay": 1e-3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _confounded(n_per_site: int = 400, seed: int = 0) -> Cohort:
    """Four sites with different outcome rates (Simpson's paradox): ``x`` lowers the risk within
    every site, but its site mean rises with the site's rate; ``z`` raises the risk; ``lab``
    is never recorded at the last site."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, intercept in enumerate((-1.5, -0.5, 0.5, 1.5)):
        z = rng.normal(0.0, 1.0, n_per_site)
        x = rng.normal(2.0 * intercept, 1.0, n_per_site)
        logit = intercept + z - (x - 2.0 * intercept)
        frames.append(
            pd.DataFrame(
                {
                    "site": f"s{k}",
                    "x": x,
                    "z": z,
                    "lab": rng.normal(0.0, 1.0, n_per_site) if k < 3 else np.nan,
                    "y": (rng.random(n_per_site) < 1 / (1 + np.exp(-logit))).astype(int),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    return Cohort(df, Schema.infer(df, target="y", group="site"), all_missing="keep")


@pytest.fixture(scope="module")
def confounded() -> Cohort:
    return _confounded()


def test_pretrain_option_fits_within_site_coefficients(confounded: Cohort) -> None:
    pooled = graphxfer.pretrain(confounded, "linear", random_state=0, progress=False, **LINEAR)
    within = graphxfer.pretrain(
        confounded, "linear", random_state=0, progress=False, site_intercepts=True, **LINEAR
    )

    def coef(enc: graphxfer.Encoder, name: str) -> float:
        names = enc.inner.network_.feature_names
        return float(enc.source_head.weight.detach()[0, names.index(name)])

    # pooled, the between-site trend cancels x's effect and lab's flag marks the last site;
    # within sites, x's effect is recovered and the flag (constant in every site) gets nothing
    assert abs(coef(pooled, "x")) < 0.5 and coef(within, "x") < -1.5
    assert coef(pooled, "lab:missing") > 1.0 and abs(coef(within, "lab:missing")) < 0.01
    # ... so the model ranks a new site's records better
    new_site = _confounded(n_per_site=300, seed=9).select_groups("s1")
    from sklearn.metrics import roc_auc_score

    auc_pooled = roc_auc_score(new_site.y, pooled.predict_proba(new_site))
    auc_within = roc_auc_score(new_site.y, within.predict_proba(new_site))
    assert auc_within > auc_pooled + 0.05


def test_pretrain_option_needs_sites_and_the_linear_encoder(confounded: Cohort) -> None:
    flat = confounded.data.drop(columns="site")
    no_sites = Cohort(flat, Schema.infer(flat, target="y"), all_missing="keep")
    with pytest.raises(GraphxferError, match="group \\(site\\) column"):
        graphxfer.pretrain(no_sites, "linear", site_intercepts=True, progress=False, **LINEAR)
    with pytest.raises(ValueError, match="exact logistic fit of encoder='linear'"):
        graphxfer.pretrain(confounded, "mlp", site_intercepts=True, epochs=1, progress=False)
    with pytest.raises(GraphxferError, match="site_intercepts is an option of the linear"):
        graphxfer.pretrain(confounded, "graphsage", site_intercepts=True, progress=False)


def test_default_linear_candidates_fit_site_intercepts() -> None:
    fast = [c for c in default_candidates("fast") if c.encoder == "linear"]
    thorough = [c for c in default_candidates("thorough") if c.encoder == "linear"]
    assert fast and all(c.site_intercepts for c in fast)
    with_sites = [c for c in thorough if c.site_intercepts]
    assert len(with_sites) * 2 == len(thorough)  # the thorough set also holds pooled fits
    assert resolve_candidates([{"encoder": "linear", "params": {"site_intercepts": True}}], 100)[
        0
    ].site_intercepts


def test_leaderboard_reports_the_site_intercepts_comparison(confounded: Cohort) -> None:
    board = evaluate_candidates(
        confounded,
        [
            {"encoder": "linear", "params": LINEAR},
            {"encoder": "linear", "params": {**LINEAR, "site_intercepts": True}},
        ],
        random_state=0,
        progress=False,
    )
    check = board.site_intercepts_check
    assert check is not None and check["n_bootstrap"] == N_BOOTSTRAP
    with_sites, pooled = board.results[1], board.results[0]
    assert check["with"] == with_sites["label"] and check["without"] == pooled["label"]
    assert check["difference"] == pytest.approx(with_sites["score"] - pooled["score"])
    # on this source the within-site model is clearly better, and it wins on its score
    assert check["difference"] > 2 * check["standard_error"] > 0
    assert board.best.site_intercepts
    again = Leaderboard.from_dict(board.to_dict())
    assert again.site_intercepts_check == check and again.best == board.best
    assert "site intercepts: best with" in board.format()


def test_standard_error_covers_a_difference_that_is_noise() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    units = {"a": np.arange(0, 400, 2), "b": np.arange(1, 400, 2)}
    base = y + rng.normal(0.0, 1.2, len(y))
    slightly = base + rng.normal(0.0, 0.05, len(y))  # a hair different, either way
    clearly = y + rng.normal(0.0, 0.6, len(y))  # much better
    cands = resolve_candidates(
        [
            {"encoder": "linear", "params": {}},
            {"encoder": "linear", "params": {"site_intercepts": True}},
        ],
        400,
    )

    def score(p: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        values = [roc_auc_score(y[r], p[r]) for r in units.values()]
        return (float(np.mean(values)) + min(values)) / 2

    def check(pooled: np.ndarray, within: np.ndarray) -> dict[str, Any] | None:
        results = [
            {"candidate": c.to_dict(), "label": c.label, "auroc": {}, "mean": 0.0,
             "worst": 0.0, "score": score(p), "seconds": 0.0}
            for c, p in zip(cands, (pooled, within), strict=True)
        ]  # fmt: skip
        board = Leaderboard("leave-one-site-out", [], [], results, 400, 400, 0, 0.0)
        return _site_intercepts_check(board, cands, [pooled, within], y, units, seed=0)

    noise = check(base, slightly)
    assert noise is not None and abs(noise["difference"]) < noise["standard_error"]
    real = check(base, clearly)
    assert real is not None and real["difference"] > 3 * real["standard_error"]
    # only one kind of candidate: nothing to compare
    board = Leaderboard("leave-one-site-out", [], [], [], 400, 400, 0, 0.0)
    assert _site_intercepts_check(board, [cands[0]], [base], y, units, 0) is None


def test_single_site_sources_drop_default_site_intercept_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import graphxfer.candidates as candidates

    grid = {
        "linear": {
            "fast": [
                ("supervised", {**LINEAR}),
                ("supervised", {**LINEAR, "site_intercepts": True}),
            ]
        }
    }
    monkeypatch.setattr(candidates, "CANDIDATE_GRIDS", grid)
    monkeypatch.setattr(candidates, "registered_encoders", lambda: {"linear": "tabular"})
    heart = datasets.load_heart_disease(sites=["cleveland"])
    board = evaluate_candidates(heart, "fast", random_state=0, progress=False)
    # the option is dropped, and the candidate that then repeats the other with it
    assert [r["candidate"]["params"] for r in board.results] == [LINEAR]
    assert board.site_intercepts_check is None
