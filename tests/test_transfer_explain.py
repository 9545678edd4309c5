"""Explanations of the transfer estimator: exact for the whole pipeline, gradients for speed."""

from __future__ import annotations

import numpy as np
import pytest

import graphxfer as gx
from graphxfer import datasets
from graphxfer.explain import ExplanationError


@pytest.fixture(scope="module")
def fitted() -> tuple[gx.TransferClassifier, gx.Cohort]:
    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    encoder = gx.pretrain(source, "mlp", epochs=3, progress=False, random_state=0)
    clf = gx.TransferClassifier(encoder, strategy="lp-ft", epochs=3, random_state=0)
    return clf.fit(target), target.subset(np.arange(12))


def test_permutation_is_additive_over_the_original_columns(fitted) -> None:
    clf, cohort = fitted
    exp = gx.explain(clf, cohort, n_background=10, max_evals=60, progress=False, random_state=0)
    assert list(exp.feature_names) == list(clf.feature_names_in_)
    p = clf.predict_proba(cohort)[:, 1]
    np.testing.assert_allclose(exp.base_values + exp.values.sum(axis=1), p, atol=1e-6)


def test_gradient_explanations_go_through_the_column_tokens(fitted) -> None:
    clf, cohort = fitted
    parts = clf.torch_explain_parts()
    flat = parts["encode"](clf.transform_features(cohort))
    d = len(parts["groups"]["age"])
    assert flat.shape == (len(cohort), d * len(clf.feature_names_in_))
    # the differentiable path computes the model's own log-odds
    logit = parts["module"](flat).detach().numpy()
    np.testing.assert_allclose(logit, clf.decision_function(cohort), atol=1e-4)
    exp = gx.explain(clf, cohort, method="gradient", progress=False, random_state=0)
    assert exp.values.shape == (len(cohort), len(clf.feature_names_in_))
    # expected gradients approximate Shapley values: close to additive, not exactly
    p = clf.predict_proba(cohort)[:, 1]
    assert np.max(np.abs(exp.base_values + exp.values.sum(axis=1) - p)) < 0.15


def test_deeplift_refuses_what_it_cannot_propagate(fitted) -> None:
    clf, cohort = fitted
    with pytest.raises(ExplanationError, match="LayerNorm"):
        gx.explain(clf, cohort, method="deep", progress=False, random_state=0)
