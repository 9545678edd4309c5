"""How the background rows are spent: split among permutations (default), k-means, all."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from graphxfer.explain import ExplanationError, explain
from graphxfer.explain._background import kmeans_summary, split_rows
from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain.explain import explain_details
from graphxfer.schema import Column

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


class Interacting:
    """Eight numbers and a category, with interactions up to third order."""

    feature_schema_: ClassVar[list[Column]] = [Column(f"x{j}") for j in range(8)] + [
        Column("c", "categorical", categories=["a", "b", "c"])
    ]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        Z = X[[f"x{j}" for j in range(8)]].to_numpy(dtype=float)
        a = (X["c"].to_numpy(dtype=object) == "a").astype(float)
        z = (
            Z @ np.linspace(-1, 1, 8)
            + Z[:, 0] * Z[:, 1] * Z[:, 2]
            + np.tanh(Z[:, 3] * Z[:, 4] + a * Z[:, 5])
            - a
        )
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"x{j}" for j in range(8)])
    out["c"] = pd.Series(rng.choice(["a", "b", "c"], n), dtype=object)
    return out


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference relative to the mean absolute attribution of ``b``."""
    return float(np.abs(a - b).mean() / np.abs(b).mean())


def test_split_rows_deal_every_row_out_evenly() -> None:
    rng = np.random.default_rng(0)
    draws = split_rows(100, 10, rng)
    assert draws.shape == (10, 10)
    assert sorted(draws.ravel()) == list(range(100))  # each row exactly once
    draws = split_rows(100, 7, rng)  # 15 rows each, 105 draws: five rows twice
    counts = np.bincount(draws.ravel(), minlength=100)
    assert draws.shape == (7, 15) and set(counts) == {1, 2} and counts.sum() == 105
    draws = split_rows(5, 12, rng)  # more permutations than rows: one row each, in turn
    assert draws.shape == (12, 1) and set(np.bincount(draws.ravel())) <= {2, 3}


def test_split_is_within_the_stated_tolerance_of_all_rows() -> None:
    """The stated tolerance: splitting the rows among the permutations changes the
    attributions less than drawing other permutations does with all rows."""
    model, background, data = Interacting(), frame(100, 0), frame(40, 1)
    runs = {}
    for key, summary, seed in (("split", "split", 0), ("all", "none", 0), ("other", "none", 9)):
        runs[key] = explain(
            model, data, "permutation", background, summary=summary, random_state=seed,
            progress=False,
        ).values  # fmt: skip
    split_gap = relative_gap(runs["split"], runs["all"])
    permutation_gap = relative_gap(runs["other"], runs["all"])
    assert split_gap <= permutation_gap
    assert split_gap < 0.06
    importance = np.abs(runs["split"]).mean(axis=0)
    reference = np.abs(runs["all"]).mean(axis=0)
    assert list(np.argsort(importance)[-4:]) == list(np.argsort(reference)[-4:])


def test_split_keeps_the_all_rows_base_value_and_additivity() -> None:
    model, background, data = Interacting(), frame(100, 2), frame(6, 3)
    explanation, info = explain_details(
        model, data, "permutation", background, random_state=0, progress=False
    )
    assert info.summary == "split: each of 10 permutations masks with 10 of 100 rows"
    mean = model.predict_proba(background)[:, 1].mean()
    np.testing.assert_allclose(explanation.base_values, mean, rtol=0, atol=1e-12)
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(data)[:, 1], rtol=0, atol=1e-12)


def test_the_orderings_do_not_depend_on_how_the_rows_are_spent() -> None:
    """An additive model: every estimate is exact, whatever the background's use."""

    class Additive:
        feature_schema_: ClassVar[list[Column]] = [Column(f"x{j}") for j in range(8)]

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            p = 0.5 + 0.05 * np.tanh(X.to_numpy(dtype=float)).sum(axis=1)
            return np.stack([1 - p, p], axis=1)

    background, data = frame(50, 4).iloc[:, :8], frame(5, 5).iloc[:, :8]
    expected = 0.05 * (np.tanh(data.to_numpy()) - np.tanh(background.to_numpy()).mean(axis=0))
    for summary in ("split", "none"):  # 10 permutations x 5 rows: every row once
        got = explain(Additive(), data, "permutation", background, summary=summary).values
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_kmeans_summary_gives_weighted_real_rows() -> None:
    background = frame(60, 6)
    background.loc[3, "x1"] = np.nan
    columns = Interacting.feature_schema_
    codec = FeatureCodec.build(columns, [background])
    matrix = codec.encode(background)
    summary = kmeans_summary(codec, matrix, 8, seed=0)
    assert len(summary.rows) == 8 and len(set(summary.rows)) == 8
    assert summary.weights.sum() == pytest.approx(1.0) and (summary.weights > 0).all()
    # with no more distinct rows than asked for: the distinct rows and their shares
    repeated = matrix[[0, 1, 1, 2, 2, 2]]
    small = kmeans_summary(codec, repeated, 5, seed=0)
    np.testing.assert_array_equal(small.rows, [0, 1, 3])
    np.testing.assert_allclose(small.weights, [1 / 6, 2 / 6, 3 / 6])


@pytest.mark.parametrize("method", ["exact", "permutation"])
def test_kmeans_summary_is_used_by_every_method(method: str) -> None:
    model = Interacting()
    background, data = frame(80, 7), frame(3, 8)
    explanation, info = explain_details(
        model, data, method, background, summary="kmeans", n_summary=6, random_state=0,
        max_evals=None if method == "permutation" else 2**9, progress=False,
    )  # fmt: skip
    assert info.summary == "6 weighted k-means representatives of 80 rows"
    assert info.n_background == 80
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(data)[:, 1], rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"summary": "median"}, "summary="), ({"summary": "kmeans", "n_summary": 0}, "n_summary")],
)
def test_bad_summaries_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ExplanationError, match=message):
        explain(Interacting(), frame(3, 9), "permutation", frame(20, 10), **kwargs)
