"""Baselines every transfer result is compared with: gradient-boosted trees and logistic regression.

Both follow the scikit-learn classifier contract (``__init__`` stores arguments, ``fit``
returns ``self``, learned state ends in ``_``, ``predict_proba`` / ``predict``) and take a
data frame with numeric and text columns and missing values. Columns the model was fitted on
but that the data lacks count as missing for every record (as in the featurizer), so a
source-fitted model can score a target that records fewer columns. :func:`fit_baseline`
trains one on the target only, the source only, or both pooled.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from tabular._data import as_frame, outcome
from tabular.exceptions import BaselineError, NotFittedError

__all__ = ["BASELINES", "LogisticBaseline", "XGBoostBaseline", "fit_baseline"]

_META_KEY = "tabular_baseline"
_META_FORMAT = 1


def _check_X(X: Any, what: str = "X") -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise BaselineError(f"{what} must be a pandas DataFrame, got {type(X).__name__}")
    if X.shape[1] == 0:
        raise BaselineError(f"{what} has no columns")
    return X


def _check_y(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y encoded as 0/1)``; binary outcomes only."""
    values = np.asarray(y).reshape(-1)
    if len(values) != n:
        raise BaselineError(f"y has {len(values)} values but X has {n} rows")
    if pd.isna(values).any():
        raise BaselineError("y has missing values")
    classes, encoded = np.unique(values, return_inverse=True)
    if len(classes) != 2:
        raise BaselineError(
            f"y must hold exactly two classes to fit a binary classifier, got {classes.tolist()}"
        )
    return classes, encoded.astype(np.int64)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _text(series: pd.Series) -> pd.Series:
    """Labels as Python strings (NaN stays NaN), whatever the dtype (str, object, category)."""
    return series.astype(object).map(lambda v: v if pd.isna(v) else str(v))


class _NotFittedError(NotFittedError, SklearnNotFittedError):
    """tabular's NotFittedError that sklearn's tools (``except NotFittedError``) recognise."""


def _align(X: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``X`` with exactly ``columns``: absent ones are all-missing, extra ones dropped."""
    return X.reindex(columns=columns)


class _Baseline(ClassifierMixin, BaseEstimator):
    def _split_columns(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        numeric = [str(c) for c in X.columns if _is_numeric(X[c])]
        categorical = [str(c) for c in X.columns if not _is_numeric(X[c])]
        return numeric, categorical

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise _NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, y) first"
            )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The more probable class of each record."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] >= 0.5).astype(int)]


class XGBoostBaseline(_Baseline):
    """Gradient-boosted trees (XGBoost) with native missing values and categories.

    Text columns (pandas ``str``, ``object``, ``category`` or ``bool``) become pandas
    categoricals with the category list learned in :meth:`fit` (sorted); a category unseen in
    fit counts as missing. Numeric columns keep NaN, which XGBoost routes natively.

    Parameters
    ----------
    n_estimators : int, default=200
    max_depth : int, default=4
    learning_rate : float, default=0.1
    subsample : float, default=1.0
    colsample_bytree : float, default=1.0
    min_child_weight : float, default=1.0
    reg_lambda : float, default=1.0
    n_jobs : int, optional
    random_state : int, optional

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    feature_names_in_ : ndarray of str
    categories_ : dict of str to list of str
        Category list per text column.
    model_ : xgboost.XGBClassifier

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"age": [50, 60, None, 40] * 5, "cp": ["a", "b", "a", None] * 5})
    >>> clf = XGBoostBaseline(n_estimators=5, random_state=0).fit(X, [0, 1, 0, 1] * 5)
    >>> clf.predict_proba(X).shape
    (20, 2)
    """

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int = 4,
        learning_rate: float = 0.1,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any) -> XGBoostBaseline:
        """Fit on a data frame ``X`` and binary outcome ``y``."""
        from xgboost import XGBClassifier

        X = _check_X(X)
        classes, encoded = _check_y(y, len(X))
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise BaselineError("random_state must be an int or None for XGBoost")
        _, categorical = self._split_columns(X)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.categories_ = {c: sorted(set(_text(X[c]).dropna().tolist())) for c in categorical}
        self.classes_ = classes
        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight,
            reg_lambda=self.reg_lambda,
            n_jobs=self.n_jobs,
            random_state=0 if self.random_state is None else int(self.random_state),
            enable_categorical=True,
            tree_method="hist",
        )
        self.model_.fit(self._prepare(X), encoded)
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """Fixed columns and dtypes: float for numeric, categorical with the fitted categories."""
        X = _align(_check_X(X), list(self.feature_names_in_))
        out = {}
        for c in self.feature_names_in_:
            if c in self.categories_:
                labels = _text(X[c])
                known = labels.where(labels.isin(self.categories_[c]))  # unseen -> missing
                out[c] = pd.Categorical(known, categories=self.categories_[c])
            else:
                values = pd.to_numeric(X[c], errors="coerce")
                bad = values.isna() & X[c].notna()
                if bad.any():
                    raise BaselineError(
                        f"column {c!r} was numeric in fit but holds non-numbers, e.g. "
                        f"{X[c][bad].iloc[0]!r}"
                    )
                out[c] = values.astype(np.float64)
        return pd.DataFrame(out, index=X.index)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(n, 2)`` (columns follow ``classes_``)."""
        self._check_fitted()
        return np.asarray(self.model_.predict_proba(self._prepare(X)), dtype=np.float64)

    # ------------------------------------------------------------------ files
    def save_model(self, path: str | os.PathLike[str]) -> None:
        """Write the model as XGBoost UBJSON (``.ubj``), with the column metadata inside.

        No pickle: the file is XGBoost's own format; the class labels, column names and
        category lists are stored as a JSON attribute of the booster.
        """
        self._check_fitted()
        path = os.fspath(path)
        if not path.endswith(".ubj"):
            raise BaselineError(f"save the model as UBJSON with a '.ubj' suffix, got {path!r}")
        meta = {
            "format": _META_FORMAT,
            "params": self.get_params(),
            "classes": [_plain(c) for c in self.classes_],
            "feature_names_in": [str(c) for c in self.feature_names_in_],
            "categories": self.categories_,
        }
        booster = self.model_.get_booster()
        booster.set_attr(**{_META_KEY: json.dumps(meta)})
        try:
            self.model_.save_model(path)
        finally:
            booster.set_attr(**{_META_KEY: None})

    @classmethod
    def load_model(cls, path: str | os.PathLike[str]) -> XGBoostBaseline:
        """Read a model written by :meth:`save_model`."""
        from xgboost import XGBClassifier

        model = XGBClassifier()
        try:
            model.load_model(os.fspath(path))
        except Exception as exc:  # xgboost raises its own XGBoostError
            raise BaselineError(
                f"cannot read an XGBoost model from {os.fspath(path)!r}: {exc}"
            ) from exc
        raw = model.get_booster().attr(_META_KEY)
        if raw is None:
            raise BaselineError(
                f"{os.fspath(path)!r} is an XGBoost model without baseline metadata; "
                "write it with XGBoostBaseline.save_model"
            )
        meta = json.loads(raw)
        if meta.get("format") != _META_FORMAT:
            raise BaselineError(f"unknown baseline metadata format {meta.get('format')!r}")
        obj = cls(**meta["params"])
        obj.classes_ = np.asarray(meta["classes"])
        obj.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
        obj.categories_ = {k: list(v) for k, v in meta["categories"].items()}
        model.get_booster().set_attr(**{_META_KEY: None})
        obj.model_ = model
        return obj


class LogisticBaseline(_Baseline):
    """L2-regularised logistic regression in a scikit-learn pipeline.

    Numeric columns: median imputation with missing indicators, then standard scaling.
    Text columns: a constant "missing" category, then one-hot encoding (categories unseen in
    fit are ignored).

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength.
    max_iter : int, default=1000
    class_weight : dict or "balanced", optional

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    feature_names_in_ : ndarray of str
    pipeline_ : sklearn.pipeline.Pipeline
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, class_weight: Any = None) -> None:
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight

    def fit(self, X: pd.DataFrame, y: Any) -> LogisticBaseline:
        """Fit on a data frame ``X`` and binary outcome ``y``."""
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        X = _check_X(X)
        classes, encoded = _check_y(y, len(X))
        numeric, categorical = self._split_columns(X)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.numeric_columns_, self.categorical_columns_ = numeric, categorical
        self.classes_ = classes
        transformers = []
        if numeric:
            transformers.append(
                (
                    "numeric",
                    Pipeline(
                        [
                            (
                                "impute",
                                SimpleImputer(
                                    strategy="median", add_indicator=True, keep_empty_features=True
                                ),
                            ),
                            ("scale", StandardScaler()),
                        ]
                    ),
                    numeric,
                )
            )
        if categorical:
            transformers.append(
                (
                    "categorical",
                    Pipeline(
                        [
                            (
                                "impute",
                                SimpleImputer(
                                    strategy="constant",
                                    fill_value="<missing>",
                                    keep_empty_features=True,
                                ),
                            ),
                            ("onehot", OneHotEncoder(handle_unknown="ignore")),
                        ]
                    ),
                    categorical,
                )
            )
        self.pipeline_ = Pipeline(
            [
                ("columns", ColumnTransformer(transformers)),
                (
                    "logistic",
                    LogisticRegression(
                        C=self.C, max_iter=self.max_iter, class_weight=self.class_weight
                    ),
                ),
            ]
        )
        self.pipeline_.fit(self._prepare(X), encoded)
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _align(_check_X(X), list(self.feature_names_in_))
        out = {}
        for c in self.numeric_columns_:
            out[c] = pd.to_numeric(X[c], errors="coerce").astype(np.float64)
        for c in self.categorical_columns_:
            out[c] = _text(X[c]).astype(object)
        return pd.DataFrame(out, index=X.index)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(n, 2)`` (columns follow ``classes_``)."""
        self._check_fitted()
        return np.asarray(self.pipeline_.predict_proba(self._prepare(X)), dtype=np.float64)


BASELINES: dict[str, type[_Baseline]] = {
    "xgboost": XGBoostBaseline,
    "logistic": LogisticBaseline,
}
"""Baseline classes by name, for :func:`fit_baseline`."""

_MODES = ("target", "source", "pooled")


def _Xy(data: Any, what: str) -> tuple[pd.DataFrame, np.ndarray]:
    if isinstance(data, tuple) and len(data) == 2:
        X, y = data
        return _check_X(X, f"{what} X"), np.asarray(y)
    X = as_frame(data, what=what)
    y = outcome(data)
    if y is None:
        raise BaselineError(
            f"{what} has no outcome: pass a cohort with a target column or a tuple (X, y)"
        )
    return X, y


def fit_baseline(
    kind: str,
    source: Any = None,
    target: Any = None,
    *,
    mode: str = "target",
    **params: Any,
) -> _Baseline:
    """Fit a baseline on the target only, the source only, or both pooled.

    Parameters
    ----------
    kind : {"xgboost", "logistic"}
    source, target : cohort-like or tuple (X, y)
        Training data: an object with ``X`` (DataFrame) and ``y``, or an ``(X, y)`` tuple.
        ``mode`` says which are needed.
    mode : {"target", "source", "pooled"}, default="target"
        ``"target"``: train on the target only (the target-only baseline); ``"source"``: train
        on the source only (zero-shot transfer); ``"pooled"``: train on source and target rows
        together (columns one of them lacks are missing for its rows).
    **params
        Passed to the baseline's constructor.

    Returns
    -------
    XGBoostBaseline or LogisticBaseline
        Fitted.
    """
    if kind not in BASELINES:
        raise BaselineError(f"unknown baseline {kind!r}; available: {sorted(BASELINES)}")
    if mode not in _MODES:
        raise BaselineError(f"mode must be one of {_MODES}, got {mode!r}")
    needs = {"target": ("target",), "source": ("source",), "pooled": ("source", "target")}[mode]
    given = {"source": source, "target": target}
    for name in needs:
        if given[name] is None:
            raise BaselineError(f"mode={mode!r} needs {name}=...")
    parts = [_Xy(given[name], name) for name in needs]
    if len(parts) == 1:
        X, y = parts[0]
    else:
        frames = [_as_plain(p[0]) for p in parts]
        X = pd.concat(frames, axis=0, ignore_index=True, sort=False)
        y = np.concatenate([p[1] for p in parts])
    model = BASELINES[kind](**params)
    return model.fit(X, y)


def _as_plain(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as plain labels, so frames with other category lists concatenate."""
    out = X.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = _text(out[c])
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
