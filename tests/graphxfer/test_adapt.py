"""The target adapter: records cross into model space once, and the adapter survives JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort, Column, Schema
from graphxfer.adapt import ModelFrame, TargetAdapter
from graphxfer.exceptions import GraphxferError

N = 40
OPTIONS = {
    "mapping": {"age_months": "age"},
    "convert": {"age": 1 / 12},
    "recode": {"cp": {"asympt": 4}, "sex": {"True": 1, "False": 0}},
}


@pytest.fixture(scope="module")
def source() -> Schema:
    return Schema(
        [
            Column("age", lower=0, upper=120),
            Column("cp", "categorical", categories=["1", "2", "3", "4"]),
            Column("sex", "binary"),
            Column("chol", lower=50, upper=600),
            Column("sick", "binary", "target"),
        ]
    )


def _records(seed: int, n: int = N) -> pd.DataFrame:
    """Target records in the target's own terms: age in months, chest pain type 4 called
    'asympt', sex as True/False, no cholesterol, and a column only the target has (bmi)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age_months": rng.uniform(30, 80, n).round(1) * 12,
            "cp": rng.choice(["1", "2", "3", "asympt"], n),
            "sex": rng.choice(["True", "False"], n),
            "bmi": rng.uniform(18, 40, n).round(2),
            "sick": np.arange(n) % 2,
        }
    )


def _frame(seed: int) -> pd.DataFrame:
    """Records as a plain DataFrame, without outcome: its columns named like source columns
    are read with the source's codes, so only the renamed age is in the target's units."""
    data = _records(seed).drop(columns=["sick"])
    return data.assign(cp=data["cp"].replace({"asympt": "4"}), sex=data["sex"] == "True")


def _target_schema(*, bmi_bounds: bool) -> Schema:
    lower, upper = (10.0, 60.0) if bmi_bounds else (None, None)
    return Schema(
        [
            Column("age_months", lower=0, upper=1500),
            Column("cp", "categorical", categories=["1", "2", "3", "asympt"]),
            Column("sex", "binary", categories=["False", "True"]),
            Column("bmi", lower=lower, upper=upper),
            Column("sick", "binary", "target"),
        ]
    )


@pytest.fixture(scope="module")
def fitted(source: Schema) -> TargetAdapter:
    adapter = TargetAdapter(source, **OPTIONS)
    records = Cohort(_records(0), _target_schema(bmi_bounds=False))
    adapter.fit(adapter.to_cohort(records, need_target=True, training=True))
    return adapter


def test_fit_decides_the_model_columns(fitted: TargetAdapter) -> None:
    assert fitted.feature_names == ["age", "cp", "sex", "chol", "bmi"]
    bmi = fitted.feature_schema["bmi"]  # type: ignore[index]
    # without privacy a target-only column's range comes from the training records
    assert bmi.lower is not None and bmi.upper is not None and bmi.lower >= 18
    assert fitted.ignored_columns == []


def test_a_training_range_scales_a_column_but_does_not_limit_it(
    fitted: TargetAdapter, source: Schema
) -> None:
    assert fitted.scaled_from_training == ["bmi"]
    upper = fitted.feature_schema["bmi"].upper  # type: ignore[index]
    model = fitted.to_model(_frame(5))
    model.loc[model.index[0], "bmi"] = upper + 25.0  # a later record outside the range
    # read as model space (what explanations and predict_proba_features do), not refused
    again = fitted.model_frame(model)
    assert again["bmi"].iloc[0] == upper + 25.0
    back = TargetAdapter.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert back.scaled_from_training == ["bmi"]
    assert back.model_frame(model)["bmi"].iloc[0] == upper + 25.0
    # declared bounds still limit the column
    declared = TargetAdapter(source, **OPTIONS)
    declared.fit(
        declared.to_cohort(
            Cohort(_records(0), _target_schema(bmi_bounds=True)), need_target=True, training=True
        )
    )
    assert declared.scaled_from_training == []
    model.loc[model.index[0], "bmi"] = 75.0
    with pytest.raises(GraphxferError, match="bmi"):
        declared.model_frame(model)


def test_to_model_translates_once(fitted: TargetAdapter) -> None:
    raw = _records(1)
    model = fitted.to_model(Cohort(raw, _target_schema(bmi_bounds=False)))
    assert isinstance(model, ModelFrame) and list(model.columns) == fitted.feature_names
    np.testing.assert_allclose(model["age"], raw["age_months"] / 12)
    np.testing.assert_array_equal(model["cp"] == "4", raw["cp"] == "asympt")  # recoded
    np.testing.assert_array_equal(model["sex"], (raw["sex"] == "True").astype(float))
    assert model["chol"].isna().all()  # a source column the target lacks: missing
    frame = fitted.to_model(_frame(1))  # the same records as a DataFrame
    pd.testing.assert_frame_equal(frame, model, check_dtype=False)
    # already in model space: checked, never converted again (the identity)
    pd.testing.assert_frame_equal(fitted.to_model(model), model)
    pd.testing.assert_frame_equal(fitted.to_model(model.iloc[::3]), model.iloc[::3])
    reordered = model[list(reversed(fitted.feature_names))]
    pd.testing.assert_frame_equal(fitted.to_model(reordered), model)


def test_round_trip_through_json_gives_the_same_model_space_frame(
    fitted: TargetAdapter,
) -> None:
    state = fitted.to_dict()
    text = json.dumps(state, allow_nan=False)  # JSON-ready
    back = TargetAdapter.from_dict(json.loads(text))
    assert back.to_dict() == state and back.key == fitted.key
    raw = _frame(2)
    pd.testing.assert_frame_equal(back.to_model(raw), fitted.to_model(raw))
    cohort = Cohort(_records(3), _target_schema(bmi_bounds=False))
    pd.testing.assert_frame_equal(back.to_model(cohort), fitted.to_model(cohort))
    # a frame translated before the round trip is in the same model space
    pd.testing.assert_frame_equal(back.to_model(fitted.to_model(raw)), fitted.to_model(raw))


def test_records_translated_by_another_adapter_are_refused(
    fitted: TargetAdapter, source: Schema
) -> None:
    other = TargetAdapter(source, **{**OPTIONS, "convert": {"age": 1 / 52}})  # weeks
    other.fit(Cohort(_records(0), _target_schema(bmi_bounds=False)))
    foreign = other.to_model(_frame(1))
    with pytest.raises(GraphxferError, match="translated by another model"):
        fitted.to_model(foreign)
    # nor do translated records go through the user's path (as training or labelled data)
    with pytest.raises(GraphxferError, match="model space already"):
        fitted.to_cohort(fitted.to_model(_frame(1)), np.zeros(N), need_target=True)
    with pytest.raises(GraphxferError, match="columns"):
        fitted.to_model(fitted.to_model(_frame(1)).drop(columns=["bmi"]))


def test_without_a_translation_source_columns_are_model_space(source: Schema) -> None:
    adapter = TargetAdapter(source)
    data = pd.DataFrame({"age": [50.0, 61.0], "cp": ["4", "2"], "sex": [0, 1], "sick": [0, 1]})
    adapter.fit(Cohort(data, source.drop("chol")))
    plain = data.drop(columns=["sick"]).assign(chol=np.nan)
    model = adapter.to_model(plain)
    pd.testing.assert_frame_equal(adapter.to_model(model), model)
    np.testing.assert_array_equal(model["age"], [50.0, 61.0])


def test_private_fits_refuse_undeclared_target_only_columns(source: Schema) -> None:
    adapter = TargetAdapter(source, **OPTIONS, private=True)
    undeclared = Cohort(_records(0), _target_schema(bmi_bounds=False))
    with pytest.raises(GraphxferError, match="target-only column 'bmi' has no declared bounds"):
        adapter.fit(adapter.to_cohort(undeclared, need_target=True, training=True))
    frame = _records(0).rename(columns={"age_months": "age"}).assign(age=50.0)
    with pytest.raises(GraphxferError, match="column 'bmi' is not a feature of the encoder"):
        adapter.to_cohort(frame, need_target=True, training=True)
    open_vocabulary = Schema(
        [*_target_schema(bmi_bounds=True).columns, Column("smoking", "categorical")]
    )
    data = _records(0).assign(smoking=["pipe", "never"] * (N // 2))
    with pytest.raises(GraphxferError, match="'smoking' has no declared categories"):
        adapter.fit(Cohort(data, open_vocabulary))


def test_a_private_adapter_holds_nothing_learned_from_the_records(source: Schema) -> None:
    states = []
    for seed in (0, 1):
        adapter = TargetAdapter(source, **OPTIONS, private=True)
        adapter.fit(Cohort(_records(seed), _target_schema(bmi_bounds=True)))
        states.append(adapter.to_dict())
    assert states[0] == states[1]  # other records, the same released adapter
    assert states[0]["feature_schema"]["columns"][-1]["lower"] == 10.0
    assert states[0]["private"] is True


def test_codes_are_stored_as_the_alignment_reads_them(
    fitted: TargetAdapter, source: Schema
) -> None:
    state = fitted.to_dict()
    assert state["recode"] == {"cp": {"asympt": "4"}, "sex": {"True": "1", "False": "0"}}
    assert state["convert"] == {"age": pytest.approx(1 / 12)}
    # JSON would write True as "true"; the alignment reads it as "1" (1.0 too)
    odd = TargetAdapter(source, recode={"cp": {True: "1", 2.0: 3, None: "4"}})
    assert odd.to_dict()["recode"] == {"cp": {"1": "1", "2": "3"}}


def test_an_unfitted_adapter_has_no_model_space(source: Schema) -> None:
    with pytest.raises(GraphxferError, match="not fitted"):
        TargetAdapter(source).to_model(pd.DataFrame({"age": [1.0]}))
    with pytest.raises(GraphxferError, match="not a target adapter"):
        TargetAdapter.from_dict({"format": "something else"})


def test_records_lacking_a_column_of_the_fit_are_flagged(fitted: TargetAdapter) -> None:
    import warnings

    from graphxfer.exceptions import AbsentColumnWarning

    # chol was absent at fit (the target never had it): no warning for it
    assert fitted.observed_columns == ["age", "cp", "sex", "bmi"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AbsentColumnWarning)
        fitted.to_model(_frame(2))
    renamed = _frame(2).rename(columns={"sex": "gender"})
    with pytest.warns(AbsentColumnWarning, match=r"absent from these records: 'sex';") as caught:
        model = fitted.to_model(renamed)
    assert len(caught) == 1 and "1 column(s)" in str(caught[0].message)
    assert model["sex"].isna().all()
    # kept through JSON; an adapter saved before the list existed does not warn
    data = json.loads(json.dumps(fitted.to_dict()))
    with pytest.warns(AbsentColumnWarning):
        TargetAdapter.from_dict(data).to_model(renamed)
    data.pop("observed_columns")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AbsentColumnWarning)
        TargetAdapter.from_dict(data).to_model(renamed)


def test_predict_proba_warns_about_absent_columns() -> None:
    import graphxfer as gx
    from graphxfer import datasets
    from graphxfer.exceptions import AbsentColumnWarning

    heart = datasets.load_heart_disease()
    encoder = gx.pretrain(
        heart.select_groups("cleveland"), "linear", progress=False, random_state=0
    )
    clf = gx.TransferClassifier(encoder, random_state=0).fit(heart.select_groups("hungarian"))
    records = heart.select_groups("switzerland").data.drop(columns=["age", "sex"])
    with pytest.warns(AbsentColumnWarning, match="2 column"):
        clf.predict_proba(records)
