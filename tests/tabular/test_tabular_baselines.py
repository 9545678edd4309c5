"""Baselines: the scikit-learn classifier contract on frames with text columns and NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _tabular_data import FakeCohort, columns, make_frame
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from tabular import BaselineError, LogisticBaseline, NotFittedError, XGBoostBaseline, fit_baseline

MODELS = {
    "xgboost": lambda: XGBoostBaseline(n_estimators=30, random_state=0),
    "logistic": lambda: LogisticBaseline(C=0.5),
}


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> XGBoostBaseline | LogisticBaseline:
    return MODELS[request.param]()


def test_fit_predict_with_text_columns_and_nan(model: XGBoostBaseline | LogisticBaseline) -> None:
    X, y = make_frame(400, seed=0)
    assert X["c0"].dtype == "str" and X.isna().any().all()
    labels = np.where(y == 1, "sick", "well")
    assert model.fit(X, labels) is model
    assert list(model.classes_) == ["sick", "well"]
    proba = model.predict_proba(X)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(X)) <= {"sick", "well"}
    X_test, y_test = make_frame(400, seed=1)
    assert roc_auc_score(y_test == 1, model.predict_proba(X_test)[:, 0]) > 0.6  # column 0: sick


def test_unseen_categories_and_absent_columns(model: XGBoostBaseline | LogisticBaseline) -> None:
    X, y = make_frame(300, seed=0)
    model.fit(X, y)
    other = X.head(10).copy()
    other["c0"] = "zzz"  # never seen in fit
    other = other.drop(columns=["x3"])  # the new data does not record x3
    other["extra"] = 1.0  # ignored
    proba = model.predict_proba(other)
    assert proba.shape == (10, 2) and np.isfinite(proba).all()


def test_category_dtype_and_object_dtype_are_accepted(
    model: XGBoostBaseline | LogisticBaseline,
) -> None:
    X, y = make_frame(200, seed=2)
    as_object = X.astype({"c0": object, "c1": object})
    as_category = X.astype({"c0": "category", "c1": "category"})
    model.fit(as_object, y)
    np.testing.assert_allclose(model.predict_proba(as_category), model.predict_proba(X))


def test_sklearn_contract(model: XGBoostBaseline | LogisticBaseline) -> None:
    cloned = clone(model)
    assert cloned.get_params() == model.get_params()
    assert not hasattr(cloned, "classes_")
    with pytest.raises(NotFittedError):
        cloned.predict_proba(make_frame(5, seed=0)[0])
    X, _ = make_frame(50, seed=0)
    with pytest.raises(BaselineError, match="two classes"):
        clone(model).fit(X, np.zeros(50))
    with pytest.raises(BaselineError, match="DataFrame"):
        clone(model).fit(X.to_numpy(), np.arange(50) % 2)


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_unfitted_error_is_sklearns(model: XGBoostBaseline | LogisticBaseline, method: str) -> None:
    """Before fit, the error is sklearn's NotFittedError too (sklearn's own contract check)."""
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.estimator_checks import check_estimators_unfitted

    with pytest.raises(SklearnNotFittedError, match="not fitted yet"):
        getattr(clone(model), method)(make_frame(5, seed=0)[0])
    check_estimators_unfitted(type(model).__name__, model)


def test_xgboost_saves_ubjson_and_loads(tmp_path: object) -> None:
    X, y = make_frame(300, seed=0)
    model = XGBoostBaseline(n_estimators=20, random_state=0).fit(X, np.where(y == 1, "yes", "no"))
    path = f"{tmp_path}/model.ubj"
    model.save_model(path)
    with open(path, "rb") as fh:
        assert fh.read(1) == b"{"  # UBJSON object, not a pickle
    loaded = XGBoostBaseline.load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert list(loaded.classes_) == ["no", "yes"]
    assert loaded.categories_ == model.categories_
    assert loaded.get_params() == model.get_params()
    with pytest.raises(BaselineError, match="ubj"):
        model.save_model(f"{tmp_path}/model.json")


def test_fit_baseline_modes() -> None:
    X_s, y_s = make_frame(300, seed=0)
    X_t, y_t = make_frame(60, seed=1)
    X_t = X_t.drop(columns=["x2"])
    source = FakeCohort(X_s, y_s, columns())
    for mode, n_columns in (("target", 8), ("source", 9), ("pooled", 9)):
        clf = fit_baseline("logistic", source, (X_t, y_t), mode=mode)
        assert len(clf.feature_names_in_) == n_columns
        assert clf.predict_proba(X_t).shape == (60, 2)
    clf = fit_baseline("xgboost", source=source, mode="source", n_estimators=10)
    assert isinstance(clf, XGBoostBaseline) and clf.n_estimators == 10
    with pytest.raises(BaselineError, match="needs target"):
        fit_baseline("xgboost", source=source, mode="pooled")
    with pytest.raises(BaselineError, match="unknown baseline"):
        fit_baseline("forest", target=(X_t, y_t))
    with pytest.raises(BaselineError, match="mode"):
        fit_baseline("logistic", target=(X_t, y_t), mode="both")
    with pytest.raises(BaselineError, match="no outcome"):
        fit_baseline("logistic", target=X_t)


def test_pooling_frames_with_different_categories() -> None:
    X_s, y_s = make_frame(100, seed=0)
    X_t, y_t = make_frame(40, seed=1)
    X_s = X_s.astype({"c0": "category"})
    X_t = X_t.astype({"c0": pd.CategoricalDtype(["a", "b", "c", "d", "e"])})
    clf = fit_baseline("xgboost", (X_s, y_s), (X_t, y_t), mode="pooled", n_estimators=5)
    assert clf.categories_["c0"] == ["a", "b", "c", "d"]
