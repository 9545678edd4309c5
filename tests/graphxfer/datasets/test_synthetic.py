"""make_multisite: determinism, shifts, missing columns and scale."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort
from graphxfer.datasets import make_multisite


def _groups(cohort: Cohort) -> pd.Series:
    groups = cohort.groups
    assert groups is not None
    return groups


def _site_means(cohort: Cohort, columns: list[str]) -> pd.DataFrame:
    data = cohort.data
    return data.groupby("site", sort=True)[columns].mean()


def test_default_shape_and_schema() -> None:
    cohort = make_multisite(random_state=0)
    assert len(cohort) == 1500
    assert cohort.schema.feature_names == [f"x{j}" for j in range(8)] + ["c0", "c1"]
    assert cohort.schema.group is not None and cohort.schema.group.name == "site"
    assert cohort.schema.target is not None and cohort.schema.target.kind == "binary"
    assert cohort.schema.id is None
    assert _groups(cohort).value_counts().to_dict() == {"site0": 500, "site1": 500, "site2": 500}
    data = cohort.data
    for col in cohort.schema.features:
        if col.kind == "numeric":
            assert col.lower is not None and col.upper is not None
            assert data[col.name].between(col.lower, col.upper).all()
        else:
            assert set(data[col.name]) <= {"A", "B", "C"}
    assert 0.05 < cohort.y.mean() < 0.95


def test_seed_determinism() -> None:
    a = make_multisite(n_sites=4, n_per_site=300, shift=1.0, label_shift=0.5, random_state=42)
    b = make_multisite(n_sites=4, n_per_site=300, shift=1.0, label_shift=0.5, random_state=42)
    c = make_multisite(n_sites=4, n_per_site=300, shift=1.0, label_shift=0.5, random_state=43)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.schema == b.schema
    assert not a.data.equals(c.data)
    g1 = make_multisite(random_state=np.random.default_rng(7))
    g2 = make_multisite(random_state=np.random.default_rng(7))
    pd.testing.assert_frame_equal(g1.data, g2.data)


def test_global_rng_untouched() -> None:
    state = np.random.get_state(legacy=True)  # noqa: NPY002 - checking the legacy global state
    py_state = random.getstate()
    make_multisite(random_state=None)
    make_multisite(random_state=5)
    after = np.random.get_state(legacy=True)  # noqa: NPY002
    assert isinstance(state, tuple) and isinstance(after, tuple)
    assert state[0] == after[0]
    np.testing.assert_array_equal(state[1], after[1])
    assert state[2:] == after[2:]
    assert random.getstate() == py_state


def test_n_per_site_list() -> None:
    cohort = make_multisite(n_sites=3, n_per_site=[1000, 200, 30], random_state=1)
    assert _groups(cohort).value_counts().to_dict() == {"site0": 1000, "site1": 200, "site2": 30}
    assert list(dict.fromkeys(_groups(cohort))) == ["site0", "site1", "site2"]


def test_shift_moves_site_means() -> None:
    kwargs: dict[str, Any] = {
        "n_sites": 4,
        "n_per_site": 4000,
        "n_categorical": 0,
        "random_state": 3,
    }
    same = make_multisite(shift=0.0, **kwargs)
    moved = make_multisite(shift=2.0, **kwargs)
    cols = same.schema.feature_names
    # feature scales are shared across sites: compare between-site spread to within-site spread
    within = same.data.groupby("site")[cols].std().mean()
    spread_same = (_site_means(same, cols).std() / within).mean()
    spread_moved = (_site_means(moved, cols).std() / within).mean()
    assert spread_same < 0.1
    assert spread_moved > 1.0


def test_shift_moves_categorical_frequencies() -> None:
    kwargs: dict[str, Any] = {"n_sites": 3, "n_per_site": 3000, "n_features": 6, "n_categorical": 6}
    same = make_multisite(shift=0.0, random_state=9, **kwargs).data
    moved = make_multisite(shift=2.0, random_state=9, **kwargs).data

    def spread(data: pd.DataFrame) -> float:
        share_a = data.assign(a=data["c0"] == "A").groupby("site")["a"].mean()
        return float(share_a.max() - share_a.min())

    assert spread(same) < 0.06
    assert spread(moved) > 0.15


def test_label_shift_changes_positive_rates() -> None:
    kwargs: dict[str, Any] = {"n_sites": 3, "n_per_site": 4000, "shift": 0.0, "random_state": 11}
    flat = make_multisite(label_shift=0.0, **kwargs)
    tilted = make_multisite(label_shift=3.0, **kwargs)

    def rates(cohort: Cohort) -> np.ndarray:
        frame = pd.DataFrame({"site": _groups(cohort), "y": cohort.y})
        return frame.groupby("site")["y"].mean().to_numpy()

    flat_rates, tilted_rates = rates(flat), rates(tilted)
    assert np.ptp(flat_rates) < 0.05
    assert tilted_rates[0] < flat_rates[0] - 0.15
    assert tilted_rates[2] > flat_rates[2] + 0.15
    assert tilted_rates[0] < tilted_rates[1] < tilted_rates[2]


def test_missing_columns_all_nan_at_that_site_only() -> None:
    cohort = make_multisite(n_sites=3, missing_columns={2: ["x0", "c1"], 0: ["x3"]}, random_state=4)
    data = cohort.data
    at = data["site"] == "site2"
    assert data.loc[at, "x0"].isna().all() and data.loc[at, "c1"].isna().all()
    assert data.loc[~at, "x0"].notna().all() and data.loc[~at, "c1"].notna().all()
    assert data.loc[data["site"] == "site0", "x3"].isna().all()
    assert data.loc[data["site"] != "site0", "x3"].notna().all()
    single = make_multisite(n_sites=1, missing_columns={0: ["x1"]}, random_state=4)
    assert single.data["x1"].isna().all()
    assert "x1" in single.schema.feature_names


def test_truth_is_shared_across_sites() -> None:
    # one true model for every site: a model fitted on one site ranks another site's records well
    cohort = make_multisite(n_sites=2, n_per_site=5000, n_categorical=0, random_state=8)
    data = cohort.data
    x = data[cohort.schema.feature_names].to_numpy()
    y = cohort.y
    site0 = (data["site"] == "site0").to_numpy()
    mean, std = x[site0].mean(0), x[site0].std(0)
    z = (x - mean) / std
    # least-squares linear probability model: enough to check the signal transfers
    design = np.c_[np.ones(len(z)), z]
    coef, *_ = np.linalg.lstsq(design[site0], y[site0], rcond=None)
    score = design[~site0] @ coef
    pos, neg = score[y[~site0] == 1], score[y[~site0] == 0]
    auc = (pos[:, None] > neg[None, :]).mean()
    assert auc > 0.75


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        make_multisite(n_sites=0)
    with pytest.raises(ValueError):
        make_multisite(n_sites=2, n_per_site=[10, 20, 30])
    with pytest.raises(ValueError):
        make_multisite(n_features=3, n_categorical=4)
    with pytest.raises(ValueError):
        make_multisite(missing_columns={5: ["x0"]})
    with pytest.raises(ValueError):
        make_multisite(missing_columns={0: ["nope"]})
    with pytest.raises(ValueError):
        make_multisite(shift=float("inf"))
    with pytest.raises(ValueError):
        make_multisite(n_per_site=2.5)  # type: ignore[arg-type]


def test_million_rows_linear_and_fast() -> None:
    cohort = make_multisite(n_sites=2, n_per_site=500_000, random_state=0)
    assert len(cohort) == 1_000_000
    # chunked generation: every chunk continues the site's stream, no repeated blocks
    x0 = cohort.data["x0"].to_numpy()
    assert np.unique(x0[:200_000]).size == 200_000
