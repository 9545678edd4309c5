"""Explanations of the transfer estimator: exact for the whole pipeline, gradients for speed."""

from __future__ import annotations

import numpy as np
import pytest

import graphxfer as gx
from graphxfer import datasets
from graphxfer.exceptions import GraphxferError
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


def test_predicting_on_a_single_class_subset(fitted) -> None:
    clf, cohort = fitted
    sick = cohort.subset(cohort.y == 1)
    assert clf.predict_proba(sick).shape == (len(sick), 2)
    exp = gx.explain(clf, sick, n_background=5, max_evals=30, progress=False, random_state=0)
    assert exp.values.shape[0] == len(sick)


def test_report_of_a_model_with_renamed_and_converted_columns(tmp_path) -> None:
    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    va = heart.select_groups("va")
    data = va.data.rename(columns={"age": "age_months"})
    data["age_months"] = data["age_months"] * 12
    schema = gx.Schema(
        [
            c if c.name != "age" else gx.Column("age_months", lower=0, upper=1500)
            for c in va.schema.columns
        ]
    )
    target = gx.Cohort(data, schema)
    encoder = gx.pretrain(source, "mlp", epochs=2, progress=False, random_state=0)
    clf = gx.TransferClassifier(
        encoder, strategy="linear-probe", epochs=2, random_state=0,
        mapping={"age_months": "age"}, convert={"age": 1 / 12},
    ).fit(target)  # fmt: skip
    model_space = clf.transform_features(target)
    # translating twice changes nothing (the explainer and the report both translate)
    pd_twice = clf.transform_features(model_space)
    np.testing.assert_array_equal(pd_twice["age"].to_numpy(), model_space["age"].to_numpy())
    path = gx.report(
        clf, target.subset(np.arange(15)), tmp_path / "r.html",
        n_global=10, n_background=5, max_evals=30, progress=False,
    )  # fmt: skip
    html = path.read_text()
    assert "Model card" in html and "age" in html


def test_a_graph_transfer_is_explained_through_predict_proba() -> None:
    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    encoder = gx.pretrain(source, "graphsage", epochs=2, hidden=16, k=5, progress=False,
                          random_state=0)  # fmt: skip
    clf = gx.TransferClassifier(encoder, epochs=2, random_state=0).fit(target)
    cohort = target.subset(np.arange(6))
    with pytest.raises(GraphxferError, match="method='permutation'"):
        clf.torch_explain_parts()  # no per-column network: a clear error, not a crash
    exp = gx.explain(clf, cohort, n_background=8, max_evals=40, progress=False, random_state=0)
    p = clf.predict_proba(cohort)[:, 1]
    np.testing.assert_allclose(exp.base_values + exp.values.sum(axis=1), p, atol=1e-6)
    with pytest.raises(GraphxferError, match="use method='permutation' or 'exact'"):
        gx.explain(clf, cohort, method="gradient", progress=False, random_state=0)


def test_the_models_own_background_can_be_passed_back_with_a_mapping() -> None:
    import graphxfer as gx
    from graphxfer import datasets

    heart = datasets.load_heart_disease()
    encoder = gx.pretrain(
        heart.select_groups("cleveland"), "linear", progress=False, random_state=0
    )
    target = heart.select_groups("va")
    X = target.X.rename(columns={"age": "age_months"})
    X["age_months"] = X["age_months"] * 12
    clf = gx.TransferClassifier(
        encoder, mapping={"age_months": "age"}, convert={"age": 1 / 12}, random_state=0
    ).fit(X, target.y)
    records = X.head(5)
    given = gx.explain(clf, records, background=clf.background_, method="exact", progress=False)
    default = gx.explain(clf, records, method="exact", progress=False)
    np.testing.assert_allclose(given.values, default.values, atol=1e-6)
