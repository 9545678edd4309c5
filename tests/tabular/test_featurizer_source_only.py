"""The featurizer's state comes from the source only; transforming target data never changes it."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from tabular import Featurizer, FeaturizerError, NotFittedError
from tabular.featurizer import MISSING_INDEX, UNKNOWN_INDEX

COLUMNS = [
    {"name": "age", "kind": "numeric", "lower": 0, "upper": 120},
    {"name": "edu", "kind": "ordinal", "levels": ["low", "mid", "high"]},
    {"name": "sex", "kind": "binary"},
    {"name": "cp", "kind": "categorical"},
]


def _source(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 9, n)
    age[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "edu": rng.choice(["low", "mid", "high"], n),
            "sex": rng.integers(0, 2, n).astype(float),
            "cp": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def test_statistics_come_from_the_source() -> None:
    src = _source()
    fz = Featurizer().fit(src, COLUMNS)
    j = fz.numeric_columns_.index("age")
    assert fz.center_[j] == pytest.approx(np.nanmean(src["age"]))
    assert fz.scale_[j] == pytest.approx(np.nanstd(src["age"]))
    assert fz.vocabularies_["cp"] == ["a", "b", "c"]  # by source frequency
    assert fz.n_source_rows_ == len(src)


def test_transforming_target_data_never_changes_state() -> None:
    fz = Featurizer().fit(_source(), COLUMNS)
    before = json.dumps(fz.state_dict(), sort_keys=True)
    target = _source(50, seed=1).assign(age=lambda d: d["age"] + 30, cp="zzz")
    fz.transform(target)
    fz.transform(target.drop(columns=["cp", "edu"]))
    assert json.dumps(fz.state_dict(), sort_keys=True) == before


def test_missing_and_unknown_indices() -> None:
    fz = Featurizer().fit(_source(), COLUMNS)
    target = pd.DataFrame(
        {"age": [np.nan, 60.0], "edu": ["mid", np.nan], "sex": [1.0, np.nan], "cp": ["b", "new"]}
    )
    batch = fz.transform(target)
    a, e = fz.numeric_columns_.index("age"), fz.numeric_columns_.index("edu")
    assert batch.missing[:, a].tolist() == [True, False]
    assert batch.missing[:, e].tolist() == [False, True]
    assert batch.numeric[0, a] == 0.0  # imputed with the source mean (0 after scaling)
    cp = fz.categorical_columns_.index("cp")
    sex = fz.categorical_columns_.index("sex")
    assert batch.categorical[:, cp].tolist() == [3, UNKNOWN_INDEX]  # "b" is the 2nd category
    assert batch.categorical[1, sex] == MISSING_INDEX


def test_absent_columns_are_missing_for_every_record() -> None:
    fz = Featurizer().fit(_source(), COLUMNS)
    batch = fz.transform(pd.DataFrame({"sex": [0.0, 1.0]}))
    assert batch.missing.all()
    assert (batch.categorical[:, fz.categorical_columns_.index("cp")] == MISSING_INDEX).all()


def test_streaming_fit_equals_one_pass_fit() -> None:
    src = _source(1000)
    whole = Featurizer().fit(src, COLUMNS)
    stream = Featurizer().start_streaming(COLUMNS)
    for start in range(0, len(src), 137):
        stream.partial_fit(src.iloc[start : start + 137])
    stream.finish_streaming()
    np.testing.assert_allclose(stream.center_, whole.center_, rtol=1e-10)
    np.testing.assert_allclose(stream.scale_, whole.scale_, rtol=1e-8)
    assert stream.vocabularies_ == whole.vocabularies_


def test_state_round_trip_is_json_and_exact() -> None:
    src = _source()
    fz = Featurizer().fit(src, COLUMNS)
    again = Featurizer.from_state(json.loads(json.dumps(fz.state_dict())))
    a, b = fz.transform(src), again.transform(src)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_extend_uses_declared_information_only() -> None:
    fz = Featurizer().fit(_source(), COLUMNS)
    state = copy.deepcopy(fz.state_dict())
    ext = fz.extend(
        [
            {"name": "bmi", "kind": "numeric", "lower": 10, "upper": 60},
            {"name": "smoker", "kind": "categorical", "categories": ["never", "ex", "current"]},
        ]
    )
    assert fz.state_dict() == state  # the original is untouched
    j = ext.numeric_columns_.index("bmi")
    assert ext.center_[j] == 35.0 and ext.scale_[j] == 12.5
    assert ext.origin_["bmi"] == "declared"
    out = ext.transform(pd.DataFrame({"bmi": [35.0], "smoker": ["ex"]}))
    assert out.numeric[0, j] == 0.0
    assert out.categorical[0, ext.categorical_columns_.index("smoker")] == 3


def test_extend_refuses_undeclared_target_statistics() -> None:
    fz = Featurizer().fit(_source(), COLUMNS)
    with pytest.raises(FeaturizerError, match="'bmi' has no declared bounds"):
        fz.extend([{"name": "bmi", "kind": "numeric"}])
    with pytest.raises(FeaturizerError, match="'smoker' has no declared"):
        fz.extend([{"name": "smoker", "kind": "categorical"}])


def test_errors_name_the_problem() -> None:
    with pytest.raises(NotFittedError):
        Featurizer().transform(_source())
    with pytest.raises(FeaturizerError, match="lacks column 'cp'"):
        Featurizer().fit(_source().drop(columns="cp"), COLUMNS)
    empty_age = _source().assign(age=np.nan)
    with pytest.raises(FeaturizerError, match="'age' has no observed value"):
        Featurizer().fit(empty_age, COLUMNS)
