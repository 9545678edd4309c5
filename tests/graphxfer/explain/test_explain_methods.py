"""Method choice, background defaults, options and their errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from graphxfer.explain import (
    LOG_ODDS,
    PROBABILITY,
    BackgroundFromDataWarning,
    ExplanationError,
    explain,
)
from graphxfer.explain._model import to_scale
from graphxfer.explain.explain import explain_details
from tests.graphxfer.explain._models import SklearnModel

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


def method_of(model, X, **kwargs) -> str:
    return explain_details(model, X, progress=False, **kwargs)[1].method


def test_auto_uses_trees_for_xgboost(models, small_cohort):
    X = small_cohort.X.iloc[:10]
    for kind in ("xgboost", "xgboost_baseline"):
        explanation, info = explain_details(models[kind], X, progress=False)
        assert info.method == "tree"
        assert explanation.output_names == LOG_ODDS
        assert info.n_background == 0
        # attributions of the probability, or against a given background: model-agnostic
        assert method_of(models[kind], X, link="identity") == "exact"
        assert method_of(models[kind], X, background=small_cohort.X.iloc[:20]) == "exact"


def test_auto_uses_exact_up_to_ten_features(models, small_cohort, wide_cohort):
    X = small_cohort.X.iloc[:3]
    assert method_of(models["sklearn"], X) == "exact"
    assert method_of(models["torch"], X) == "exact"
    wide = SklearnModel(wide_cohort)
    assert method_of(wide, wide_cohort.X.iloc[:2]) == "permutation"


def test_background_defaults_to_the_models_source_sample(models, small_cohort):
    model = models["sklearn"]
    X = small_cohort.X.iloc[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackgroundFromDataWarning)
        explanation, info = explain_details(model, X, progress=False)
    assert "background_" in info.background
    assert info.n_background == len(model.background_)
    expected = model.predict_proba(model.background_)[:, 1].mean()
    np.testing.assert_allclose(explanation.base_values, expected, rtol=0, atol=1e-12)


def test_background_is_subsampled_and_seeded(models, small_cohort):
    model = models["sklearn"]
    X = small_cohort.X.iloc[:4]
    a, info = explain_details(model, X, n_background=30, random_state=7, progress=False)
    b = explain(model, X, n_background=30, random_state=7, progress=False)
    assert info.n_background == 30
    np.testing.assert_array_equal(a.values, b.values)


def test_passed_background_wins(models, small_cohort):
    model = models["sklearn"]
    reference = small_cohort.X.iloc[100:140]
    explanation = explain(model, small_cohort.X.iloc[:4], background=reference, progress=False)
    expected = model.predict_proba(reference)[:, 1].mean()
    np.testing.assert_allclose(explanation.base_values, expected, rtol=0, atol=1e-12)


def test_without_background_data_is_sampled_with_a_warning(small_cohort):
    model = SklearnModel(small_cohort, background=False)
    X = small_cohort.X.iloc[:40]
    with pytest.warns(BackgroundFromDataWarning, match="background"):
        explanation, info = explain_details(model, X, n_background=20, progress=False)
    assert info.n_background == 20 and "explained records" in info.background
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(X)[:, 1], rtol=0, atol=1e-6)


def test_logit_link_states_its_scale(models, small_cohort):
    model = models["sklearn"]
    X = small_cohort.X.iloc[:4]
    explanation = explain(model, X, link="logit", progress=False)
    assert explanation.output_names == LOG_ODDS
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, to_scale(model.predict_proba(X)[:, 1], "logit"), atol=1e-6)
    assert explain(model, X, progress=False).output_names == PROBABILITY


def test_permutation_is_seeded_and_leaves_the_global_rng_alone(models, wide_cohort):
    model = SklearnModel(wide_cohort)
    X = wide_cohort.X.iloc[:3]
    # the legacy global RNG is exactly what must stay untouched
    np.random.seed(123)  # noqa: NPY002
    state = np.random.get_state()  # noqa: NPY002
    a = explain(model, X, "permutation", random_state=3, progress=False)
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(x, y) for x, y in zip(state, after))
    b = explain(model, X, "permutation", random_state=3, progress=False)
    np.testing.assert_array_equal(a.values, b.values)


def test_progress_can_be_turned_off(models, small_cohort, capsys):
    explain(models["sklearn"], small_cohort.X.iloc[:3], progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("sklearn", {"method": "tree"}, "no XGBoost booster"),
        ("xgboost", {"method": "tree", "link": "identity"}, "log-odds"),
        ("sklearn", {"method": "deep"}, "available methods"),
        ("sklearn", {"method": "gradient"}, "torch_explain_parts"),
        ("sklearn", {"method": "magic"}, "unknown method"),
        ("sklearn", {"link": "probit"}, "link="),
        ("sklearn", {"n_background": 0}, "n_background"),
        ("sklearn", {"method": "exact", "max_evals": 8}, "max_evals >= 2"),
        ("sklearn", {"method": "permutation", "max_evals": 5}, "2 \\* n_features"),
    ],
)
def test_clear_errors(models, small_cohort, kind, kwargs, message):
    with pytest.raises(ExplanationError, match=message):
        explain(models[kind], small_cohort.X.iloc[:3], progress=False, **kwargs)


def test_tree_refuses_a_background(models, small_cohort):
    X = small_cohort.X.iloc[:3]
    with pytest.raises(ExplanationError, match="path-dependent"):
        explain(models["xgboost"], X, "tree", background=X, progress=False)


def test_not_a_classifier(small_cohort):
    with pytest.raises(ExplanationError, match="predict_proba"):
        explain(object(), small_cohort.X, progress=False)
    with pytest.raises(ExplanationError, match="no rows"):
        explain(SklearnModel(small_cohort), small_cohort.X.iloc[:0], progress=False)
