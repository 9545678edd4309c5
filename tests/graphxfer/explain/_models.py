"""Small fitted models that follow the "fitted graphxfer model" contract, for explanation tests.

Each takes a DataFrame of original columns (or a Cohort) in ``predict_proba``, states its input
columns in ``feature_schema_`` and carries a ``background_`` sample of its training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from graphxfer import Cohort, Column, Schema


def frame_of(X: Any) -> pd.DataFrame:
    return X.X if isinstance(X, Cohort) else X


def make_data(
    n: int = 300, n_numeric: int = 3, seed: int = 0, *, weird_name: str | None = None
) -> Cohort:
    """A cohort with ``n_numeric`` numeric columns, one binary and one categorical column.

    Numeric columns have a few missing values; the categorical column is named ``colour``
    (or ``weird_name``) with labels ``red``, ``green``, ``blue``.
    """
    rng = np.random.default_rng(seed)
    cat = weird_name or "colour"
    data: dict[str, Any] = {}
    for j in range(n_numeric):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.05] = np.nan
        data[f"x{j}"] = x
    data["smoker"] = rng.integers(0, 2, size=n).astype(float)
    data[cat] = rng.choice(["red", "green", "blue"], size=n)
    data["pid"] = [f"P{i:04d}" for i in range(n)]
    logit = (
        np.nan_to_num(data["x0"])
        - 0.5 * np.nan_to_num(data.get("x1", np.zeros(n)))
        + 0.8 * data["smoker"]
        + np.where(data[cat] == "red", 1.0, 0.0)
        - 0.3
    )
    data["outcome"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(data)
    schema = Schema(
        [Column(f"x{j}") for j in range(n_numeric)]
        + [
            Column("smoker", "binary", categories=["no", "yes"]),
            Column(cat, "categorical", categories=["red", "green", "blue"]),
            Column("pid", "categorical", "id"),
            Column("outcome", "binary", "target"),
        ]
    )
    return Cohort(df.assign(smoker=df.smoker.map({0.0: "no", 1.0: "yes"})), schema)


class SklearnModel:
    """Logistic regression over imputed, scaled numbers and one-hot categories."""

    def __init__(self, cohort: Cohort, *, background: bool = True) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.feature_schema_ = Schema(cohort.schema.features)
        coded = [c.name for c in cohort.schema.features if c.kind in ("categorical", "ordinal")]
        numbers = [c.name for c in cohort.schema.features if c.name not in coded]
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="?"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    coded,
                ),
            ]
        )
        self.pipeline_ = make_pipeline(prep, LogisticRegression(max_iter=500))
        self.pipeline_.fit(cohort.X, cohort.y)
        if background:
            self.background_ = cohort.X.sample(min(50, len(cohort)), random_state=0)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = frame_of(X)
        return self.pipeline_.predict_proba(X[self.feature_schema_.feature_names])


class TorchModel:
    """A float64 MLP over standardised numbers (missing -> 0) and one-hot categories.

    Exposes its differentiable path through ``torch_explain_parts()``.
    """

    def __init__(self, cohort: Cohort, *, epochs: int = 60, seed: int = 0) -> None:
        import torch

        self.feature_schema_ = Schema(cohort.schema.features)
        X = cohort.X
        self.mean_ = {}
        self.sd_ = {}
        self.groups_: dict[str, list[int]] = {}
        width = 0
        for col in self.feature_schema_.features:
            if col.kind in ("categorical", "ordinal"):
                k = len(col.vocabulary or [])
            else:
                self.mean_[col.name] = float(X[col.name].mean())
                self.sd_[col.name] = float(X[col.name].std()) or 1.0
                k = 1
            self.groups_[col.name] = list(range(width, width + k))
            width += k
        gen = torch.Generator().manual_seed(seed)
        self.module_ = torch.nn.Sequential(
            torch.nn.Linear(width, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        ).double()
        with torch.no_grad():
            for p in self.module_.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
        inputs = self.encode(X)
        target = torch.as_tensor(cohort.y, dtype=torch.float64)
        opt = torch.optim.Adam(self.module_.parameters(), lr=0.05)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.module_(inputs).reshape(-1), target
            )
            loss.backward()
            opt.step()
        self.module_.eval()
        self.background_ = X.sample(min(50, len(X)), random_state=1)

    def encode(self, X: pd.DataFrame) -> Any:
        import torch

        parts = []
        for col in self.feature_schema_.features:
            if col.kind in ("categorical", "ordinal"):
                vocab = col.vocabulary or []
                values = X[col.name].to_numpy(dtype=object)
                parts.append(np.stack([values == v for v in vocab], axis=1).astype(np.float64))
            else:
                x = (X[col.name].to_numpy(dtype=np.float64) - self.mean_[col.name]) / self.sd_[
                    col.name
                ]
                parts.append(np.nan_to_num(x)[:, None])
        return torch.as_tensor(np.concatenate(parts, axis=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        import torch

        with torch.no_grad():
            p = torch.sigmoid(self.module_(self.encode(frame_of(X))).reshape(-1)).numpy()
        return np.stack([1 - p, p], axis=1)

    def torch_explain_parts(self) -> dict[str, Any]:
        return {"module": self.module_, "encode": self.encode, "groups": self.groups_}


class XGBoostModel:
    """An XGBoost classifier with native categorical splits, over the original columns."""

    def __init__(self, cohort: Cohort, *, n_estimators: int = 40, seed: int = 0) -> None:
        import xgboost

        self.feature_schema_ = Schema(cohort.schema.features)
        self.model_ = xgboost.XGBClassifier(
            n_estimators=n_estimators,
            max_depth=3,
            learning_rate=0.3,
            enable_categorical=True,
            tree_method="hist",
            random_state=seed,
            n_jobs=1,
        )
        self.model_.fit(self._frame(cohort.X), cohort.y)
        self.background_ = cohort.X.sample(min(50, len(cohort)), random_state=2)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for col in self.feature_schema_.features:
            if col.kind in ("categorical", "ordinal"):
                out[col.name] = pd.Categorical(X[col.name], categories=col.vocabulary)
            else:
                out[col.name] = X[col.name].astype("float64")
        return pd.DataFrame(out, index=X.index)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(self._frame(frame_of(X)))
