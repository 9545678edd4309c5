"""A structured synthetic cohort: latent factors drive numeric, categorical and binary columns
and a non-linear outcome; values are missing at random and, for one column, when it is high."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_NUMERIC = 6
CATEGORIES = ["a", "b", "c", "d"]

SMALL_PARAMS: dict[str, dict] = {
    "ft-transformer": {"d_token": 16, "n_layers": 2, "n_heads": 2, "dropout": 0.0},
    "mlp": {"width": 16, "n_blocks": 2, "dropout": 0.0},
    "tabnet": {"n_d": 8, "n_a": 8, "n_steps": 2},
}
"""Small networks per encoder (dropout off unless a test turns it on)."""

# Fixed "world": the same loadings for every sample, so source and target share structure.
_WORLD = np.random.default_rng(20240611)
_LOAD_NUM = _WORLD.normal(size=(3, N_NUMERIC))
_LOAD_CAT = _WORLD.normal(size=(3, 2, len(CATEGORIES))) * 1.5


def make_frame(
    n: int, seed: int, *, shift: float = 0.0, missing_rate: float = 0.1
) -> tuple[pd.DataFrame, np.ndarray]:
    """``(X, y)``: 6 numeric columns ``x0..x5``, categorical ``c0``, ``c1`` (str dtype),
    binary ``flag``; about ``missing_rate`` of the values missing; outcome 0/1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) + shift
    numeric = z @ _LOAD_NUM + 0.3 * rng.normal(size=(n, N_NUMERIC))
    X = pd.DataFrame({f"x{i}": numeric[:, i] * (i + 1) + 10 * i for i in range(N_NUMERIC)})
    for k in range(2):
        logits = z @ _LOAD_CAT[:, k, :] + rng.gumbel(size=(n, len(CATEGORIES)))
        X[f"c{k}"] = pd.Series(np.asarray(CATEGORIES)[np.argmax(logits, axis=1)], dtype="str")
    X["flag"] = (z[:, 2] + 0.5 * rng.normal(size=n) > 0).astype(float)
    score = 1.5 * z[:, 0] * z[:, 1] + 1.5 * np.sin(2.0 * z[:, 2]) + 0.8 * z[:, 0]
    y = (score + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    for col in X.columns:
        X.loc[rng.random(n) < missing_rate, col] = np.nan
    X.loc[numeric[:, 1] > np.quantile(numeric[:, 1], 0.9), "x1"] = np.nan  # missing when high
    return X, y


def columns() -> list[dict]:
    """Feature column descriptions (as a schema would give them)."""
    cols: list[dict] = [{"name": f"x{i}", "kind": "numeric"} for i in range(N_NUMERIC)]
    cols += [{"name": f"c{k}", "kind": "categorical", "categories": CATEGORIES} for k in range(2)]
    cols.append({"name": "flag", "kind": "binary"})
    return cols


class FakeCohort:
    """Cohort-like object: ``X``, ``y`` and ``schema.features`` (what graphxfer.Cohort offers)."""

    class _Schema:
        def __init__(self, features: list[dict]) -> None:
            self.features = features

    def __init__(self, X: pd.DataFrame, y: np.ndarray, features: list[dict]) -> None:
        self.X = X
        self.y = y
        self.schema = self._Schema(features)

    def __len__(self) -> int:
        return len(self.X)
