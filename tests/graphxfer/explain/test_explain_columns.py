"""Attributions are over the original columns: names, values, whole-column masking."""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from graphxfer.explain import PROBABILITY, ExplanationError, explain
from graphxfer.explain._codec import FeatureCodec
from graphxfer.schema import Column

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


class Recording:
    """Wraps a model and records every frame SHAP makes it predict."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.feature_schema_ = model.feature_schema_
        self.background_ = model.background_
        self.frames: list[pd.DataFrame] = []

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.frames.append(X.copy())
        return self.model.predict_proba(X)


def test_names_values_and_labels_are_the_original_ones(models, small_cohort):
    X = small_cohort.X.iloc[:8]
    for kind in ("sklearn", "xgboost", "xgboost_baseline"):
        explanation = explain(models[kind], small_cohort.subset(np.arange(8)), progress=False)
        assert list(explanation.feature_names) == ["x0", "x1", "x2", "smoker", "colour"]
        shown = np.asarray(explanation.display_data, dtype=object)
        assert list(shown[:, 4]) == list(X["colour"])  # category labels, not codes
        np.testing.assert_array_equal(explanation.data[:, 0], X["x0"].to_numpy())
    # with a schema, binary columns show their labels and categories their codes in .data
    explanation = explain(models["sklearn"], X, progress=False)
    shown = np.asarray(explanation.display_data, dtype=object)
    assert set(shown[:, 3]) <= {"no", "yes"}
    vocab = ["red", "green", "blue"]
    assert [vocab[int(c)] for c in explanation.data[:, 4]] == list(X["colour"])


def test_masking_replaces_whole_columns_with_real_values(models, small_cohort):
    recording = Recording(models["sklearn"])
    explain(recording, small_cohort.X.iloc[:4], "exact", progress=False)
    seen = pd.concat(recording.frames)
    assert list(seen.columns) == ["x0", "x1", "x2", "smoker", "colour"]
    assert seen["colour"].dtype == object
    assert set(seen["colour"].dropna()) <= {"red", "green", "blue"}
    assert set(seen["smoker"].dropna()) <= {0.0, 1.0}


def test_weird_column_names_survive(small_cohort):
    from tests.graphxfer.explain._models import SklearnModel, make_data

    name = "<script>alert(1)</script> $x$"
    cohort = make_data(120, n_numeric=2, seed=4, weird_name=name)
    explanation = explain(SklearnModel(cohort), cohort.X.iloc[:3], progress=False)
    assert name in list(explanation.feature_names)


def shapley_reference(f, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Shapley values by the definition: v(S) = mean over background of f(x_S, b_rest)."""
    m = len(x)

    def value(subset: tuple[int, ...]) -> float:
        rows = background.copy()
        rows[:, list(subset)] = x[list(subset)]
        return float(f(rows).mean())

    phi = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                phi[i] += weight * (value((*subset, i)) - value(subset))
    return phi


class Interacting:
    """p = sigmoid(a*b + c - [colour == "red"] * a), with strong interactions."""

    feature_schema_: ClassVar[list[Column]] = [
        Column("a"),
        Column("b"),
        Column("c"),
        Column("colour", "categorical", categories=["red", "blue"]),
    ]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        red = (X["colour"].to_numpy(dtype=object) == "red").astype(float)
        a, b, c = (X[n].to_numpy(dtype=float) for n in "abc")
        p = 1 / (1 + np.exp(-(a * b + c - red * a)))
        return np.stack([1 - p, p], axis=1)


def test_exact_matches_the_definition():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=12),
            "b": rng.normal(size=12),
            "c": rng.normal(size=12),
            "colour": pd.Series(rng.choice(["red", "blue"], size=12), dtype=object),
        }
    )
    model = Interacting()
    background, data = frame.iloc[:7], frame.iloc[7:]
    explanation = explain(model, data, "exact", background, progress=False)
    codec = FeatureCodec.build(model.feature_schema_, [data, background])

    def f(matrix: np.ndarray) -> np.ndarray:
        return model.predict_proba(codec.decode(matrix))[:, 1]

    for row in range(len(data)):
        expected = shapley_reference(f, codec.encode(data)[row], codec.encode(background))
        np.testing.assert_allclose(explanation.values[row], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        explanation.base_values, f(codec.encode(background)).mean(), rtol=0, atol=1e-12
    )


class Additive:
    """A model without interactions on the probability scale."""

    feature_schema_: ClassVar[list[Column]] = [Column(f"x{j}") for j in range(12)]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 0.5 + 0.02 * np.tanh(X.to_numpy(dtype=float)).sum(axis=1)
        return np.stack([1 - p, p], axis=1)


def test_permutation_is_exact_without_interactions():
    rng = np.random.default_rng(6)
    frame = pd.DataFrame(rng.normal(size=(30, 12)), columns=[f"x{j}" for j in range(12)])
    background, data = frame.iloc[:20], frame.iloc[20:]
    explanation = explain(Additive(), data, "permutation", background, random_state=0)
    assert explanation.output_names == PROBABILITY
    expected = 0.02 * (np.tanh(data.to_numpy()) - np.tanh(background.to_numpy()).mean(axis=0))
    np.testing.assert_allclose(explanation.values, expected, rtol=0, atol=1e-12)


def test_missing_model_column_is_a_clear_error(models, small_cohort):
    with pytest.raises(ExplanationError, match="lacks the model's input column"):
        explain(models["sklearn"], small_cohort.X.drop(columns=["colour"]), progress=False)


def test_unknown_category_gets_its_own_code(models, small_cohort):
    X = small_cohort.X.iloc[:3].copy()
    X.loc[X.index[0], "colour"] = "purple"
    explanation = explain(models["sklearn"], X, progress=False)
    assert explanation.display_data[0][4] == "purple"
    assert explanation.data[0, 4] == 3  # appended after the declared red, green, blue
