"""TransferClassifier: fitting on cohorts and data frames, determinism, the sklearn tools,
the negative-transfer guard and differentially private fine-tuning."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import graphxfer
import privacy
from graphxfer import AlignmentReport, Cohort, Column, Schema, TransferClassifier, datasets
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError, NegativeTransferWarning, NotFittedError
from graphxfer.transfer import TransferCheckSkippedWarning
from privacy import PrivacyConfig
from tabular.baselines import XGBoostBaseline

FAST = {"strategy": "linear-probe", "epochs": 2, "random_state": 0, "device": "cpu"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The networks here are tiny: intra-op threads only oversubscribe shared CI cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def heart() -> dict[str, Cohort]:
    cohort = datasets.load_heart_disease()
    return {
        "source": cohort.select_groups(["cleveland", "hungarian"]),
        "target": cohort.select_groups("va"),
    }


@pytest.fixture(scope="module")
def encoder(heart: dict[str, Cohort]) -> Encoder:
    return graphxfer.pretrain(
        heart["source"],
        encoder="mlp",
        epochs=3,
        encoder_params={"width": 16, "n_blocks": 1},
        random_state=0,
        progress=False,
        device="cpu",
    )


@pytest.fixture(scope="module")
def fitted(encoder: Encoder, heart: dict[str, Cohort]) -> TransferClassifier:
    return TransferClassifier(encoder, **FAST).fit(heart["target"])


def _state(encoder: Encoder) -> tuple[dict[str, torch.Tensor], str]:
    tensors, meta = encoder.to_state()
    return {k: v.detach().clone() for k, v in tensors.items()}, json.dumps(meta, sort_keys=True)


# ----------------------------------------------------------------------------- fitting
def test_fit_on_a_cohort_sets_the_fitted_attributes(
    fitted: TransferClassifier, heart: dict[str, Cohort]
) -> None:
    names = heart["source"].schema.feature_names
    assert list(fitted.classes_) == [0, 1]
    assert list(fitted.feature_names_in_) == names
    assert fitted.n_features_in_ == len(names)
    assert isinstance(fitted.alignment_report_, AlignmentReport)
    assert fitted.alignment_report_.matched[: len(names)] == names
    assert fitted.alignment_report_.missing == [] and fitted.alignment_report_.extra == []
    assert fitted.ledger_ is None and fitted.transfer_check_ is None and fitted.fallback_ is None
    assert fitted.training_summary_["n_rows"] == 200
    assert fitted.training_summary_["positive_rate"] == pytest.approx(heart["target"].y.mean())
    assert list(fitted.background_.columns) == names
    card = fitted.model_card()
    assert card["privacy"] is None and card["target_size"] == 200
    assert card["encoder"]["name"] == "mlp" and card["strategy"] == "linear-probe"
    assert "marginals" not in card["source"]


def test_fit_on_a_data_frame_with_y_matches_the_cohort_fit(
    encoder: Encoder, fitted: TransferClassifier, heart: dict[str, Cohort]
) -> None:
    target = heart["target"]
    clf = TransferClassifier(encoder, **FAST).fit(target.X, target.y)
    np.testing.assert_array_equal(clf.predict_proba(target.X), fitted.predict_proba(target))
    assert clf.alignment_report_.missing == []


def test_fit_aligns_renamed_converted_and_missing_columns(
    encoder: Encoder, heart: dict[str, Cohort]
) -> None:
    target = heart["target"]
    X = target.X.rename(columns={"age": "age_months"}).drop(columns=["ca"])
    X["age_months"] = X["age_months"] * 12
    params = {**FAST, "mapping": {"age_months": "age"}, "convert": {"age": 1 / 12}}
    clf = TransferClassifier(encoder, **params).fit(X, target.y)
    report = clf.alignment_report_
    assert report.renamed == {"age_months": "age"}
    assert report.converted == {"age": (pytest.approx(1 / 12), 0.0)}
    assert report.missing == ["ca"]
    assert "ca" in clf.feature_names_in_  # absent source columns are carried as missing
    p = clf.predict_proba(X)  # the fit's mapping and conversion apply at prediction
    assert p.shape == (len(X), 2) and np.isfinite(p).all()
    # the same records already in the model's columns and units (as an explainer passes
    # them: source names, source order, "ca" missing) give the same answer
    same = target.X.assign(ca=np.nan)
    np.testing.assert_allclose(clf.predict_proba_features(same), p, rtol=0, atol=1e-6)
    # and transform_features gives exactly those model-space records
    model_space = clf.transform_features(X)
    assert list(model_space.columns) == list(clf.feature_names_in_)
    np.testing.assert_allclose(
        model_space["age"].to_numpy(), same["age"].to_numpy(), rtol=1e-12, equal_nan=True
    )


def test_predictions_are_deterministic_given_random_state(
    encoder: Encoder, heart: dict[str, Cohort]
) -> None:
    target = heart["target"]
    params = {**FAST, "strategy": "lp-ft", "learning_rate": 1e-2}  # dropout is active in lp-ft
    p1 = TransferClassifier(encoder, **params).fit(target).predict_proba(target)
    torch.manual_seed(12345)  # the caller's global generator state must not matter
    p2 = TransferClassifier(encoder, **params).fit(target).predict_proba(target)
    np.testing.assert_array_equal(p1, p2)
    p3 = TransferClassifier(encoder, **{**params, "random_state": 1}).fit(target)
    assert not np.array_equal(p3.predict_proba(target), p1)


def test_fit_leaves_the_global_torch_generator_alone(
    encoder: Encoder, heart: dict[str, Cohort]
) -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    TransferClassifier(encoder, **FAST).fit(heart["target"])
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("strategy", ["full", "lp-ft", "partial"])
def test_fit_does_not_modify_the_encoder(
    encoder: Encoder, heart: dict[str, Cohort], strategy: str
) -> None:
    tensors_before, meta_before = _state(encoder)
    target = heart["target"]
    extra = target.X.assign(bmi=np.linspace(20, 35, len(target)))  # adds a target-only column
    clf = TransferClassifier(encoder, **{**FAST, "strategy": strategy, "learning_rate": 0.05})
    clf.fit(extra, target.y)
    assert clf.encoder is encoder
    tensors_after, meta_after = _state(encoder)
    assert meta_after == meta_before
    assert tensors_after.keys() == tensors_before.keys()
    for name, value in tensors_before.items():
        assert torch.equal(tensors_after[name], value), f"fit changed encoder tensor {name}"
    # while the fine-tuned copy did change
    tuned = clf.module_.state_dict()
    shared = [k for k in tensors_before if k in tuned and tuned[k].shape == tensors_before[k].shape]
    assert shared and any(not torch.equal(tuned[k], tensors_before[k]) for k in shared)
    assert "bmi" in clf.feature_names_in_


# ----------------------------------------------------------------------------- predicting
def test_predict_proba_is_a_distribution_and_predict_thresholds_it(
    fitted: TransferClassifier, heart: dict[str, Cohort]
) -> None:
    target = heart["target"]
    p = fitted.predict_proba(target)
    assert p.shape == (200, 2) and p.dtype == np.float64
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    pred = fitted.predict(target)
    np.testing.assert_array_equal(pred, (p[:, 1] >= 0.5).astype(int))
    np.testing.assert_array_equal(fitted.decision_function(target) > 0, pred == 1)
    assert fitted.score(target.X, target.y) == pytest.approx((pred == target.y).mean())


def test_unknown_categories_at_prediction_map_to_unknown(
    fitted: TransferClassifier, heart: dict[str, Cohort]
) -> None:
    X = heart["target"].X.head(20)
    odd = X.assign(cp="9", thal="banana")  # codes the source never saw
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes predict_proba
        p = fitted.predict_proba(odd)
    assert p.shape == (20, 2) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # an unknown code is not confused with a known one
    assert not np.allclose(p, fitted.predict_proba(X.assign(cp="4", thal="3")))


def test_predict_before_fit_raises_not_fitted(encoder: Encoder) -> None:
    clf = TransferClassifier(encoder)
    X = np.zeros((1, 13))
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(X)
        with pytest.raises(SklearnNotFittedError):  # sklearn's own tools recognise it
            method(X)
    with pytest.raises(NotFittedError):
        clf.model_card()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"encoder": None}, "needs a pretrained encoder"),
        ({"strategy": "everything"}, "strategy='everything'"),
        ({"epochs": 0}, "epochs=0"),
        ({"on_negative_transfer": "ignore"}, "on_negative_transfer='ignore'"),
        ({"privacy": {"epsilon": 1.0}}, "privacy must be a privacy.PrivacyConfig"),
    ],
)
def test_invalid_parameters_are_refused_in_fit(
    encoder: Encoder, heart: dict[str, Cohort], params: dict[str, Any], message: str
) -> None:
    clf = TransferClassifier(**{"encoder": encoder, **params})  # __init__ only stores them
    with pytest.raises(GraphxferError, match=message.replace(".", r"\.")):
        clf.fit(heart["target"])


# ----------------------------------------------------------------------------- sklearn tools
def test_get_params_clone_and_set_params(encoder: Encoder) -> None:
    clf = TransferClassifier(encoder, strategy="full", epochs=3, random_state=5)
    params = clf.get_params()
    assert params["encoder"] is encoder and params["strategy"] == "full"
    assert params["privacy"] is None and params["check_transfer"] is None
    twin = clone(clf)
    assert twin is not clf and not hasattr(twin, "module_")
    assert {k: v for k, v in twin.get_params().items() if k != "encoder"} == {
        k: v for k, v in params.items() if k != "encoder"
    }
    assert _state(twin.encoder)[1] == _state(encoder)[1]
    assert twin.set_params(epochs=7).epochs == 7 and clf.epochs == 3


def test_cross_val_score_pipeline_and_grid_search(
    encoder: Encoder, heart: dict[str, Cohort]
) -> None:
    target = heart["target"]
    X, y = target.X, target.y
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    clf = TransferClassifier(encoder, **FAST)
    scores = cross_val_score(clf, X, y, cv=cv, scoring="roc_auc")
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    pipe = Pipeline([("identity", FunctionTransformer()), ("transfer", clf)])
    pipe.fit(X, y)
    np.testing.assert_array_equal(
        pipe.predict_proba(X), TransferClassifier(encoder, **FAST).fit(X, y).predict_proba(X)
    )
    grid = GridSearchCV(clf, {"strategy": ["linear-probe", "full"]}, cv=cv, scoring="roc_auc")
    grid.fit(X, y)
    assert grid.best_params_["strategy"] in ("linear-probe", "full")
    assert grid.predict_proba(X).shape == (200, 2)


# ----------------------------------------------------------------------------- negative transfer
def _synthetic(n: int, sign: float, seed: int, name: str) -> Cohort:
    """Four numeric features; the outcome follows sign * (a + b)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (rng.random(n) < 1 / (1 + np.exp(-sign * 3 * (X[:, 0] + X[:, 1])))).astype(int)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(y=y)
    schema = Schema(
        [Column(c, lower=-10, upper=10) for c in "abcd"] + [Column("y", "binary", "target")]
    )
    return Cohort(frame, schema, name=name)


@pytest.fixture(scope="module")
def inverted() -> dict[str, Any]:
    """A source whose outcome is the target's inverted: its encoder and head mislead."""
    source = _synthetic(400, -1.0, 0, "inverted-source")
    target = _synthetic(120, +1.0, 1, "target")
    enc = graphxfer.pretrain(
        source,
        encoder="mlp",
        epochs=3,
        encoder_params={"width": 16, "n_blocks": 1},
        random_state=0,
        progress=False,
        device="cpu",
    )
    # a linear probe that barely moves keeps the (inverted) source head
    params = {
        "strategy": "linear-probe",
        "epochs": 1,
        "learning_rate": 1e-4,
        "check_transfer": True,
        "random_state": 0,
        "device": "cpu",
    }
    return {"encoder": enc, "target": target, "params": params}


def test_a_gap_within_noise_is_inconclusive_and_keeps_the_model() -> None:
    from graphxfer.guard import CHECK_MARGIN_SE, compare_aurocs

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(120), np.ones(15)].astype(int)  # few events, as at a small site
    signal = y + rng.normal(0.0, 0.8, len(y))
    slightly = signal + rng.normal(0.0, 0.3, len(y))  # a noisier copy: a little behind
    auc_t, auc_b, se, verdict = compare_aurocs(y, slightly, signal, random_state=0)
    assert auc_t < auc_b and auc_b - auc_t < CHECK_MARGIN_SE * se
    assert verdict == "inconclusive"
    # the same gap with many records is no longer noise
    big = np.tile(y, 40)
    noise = rng.normal(0.0, 0.8, len(big))
    clear = compare_aurocs(
        big, big + noise + rng.normal(0.0, 0.6, len(big)), big + noise, random_state=0
    )
    assert clear[3] == "failed"


def test_negative_transfer_warns_and_is_recorded(inverted: dict[str, Any]) -> None:
    clf = TransferClassifier(inverted["encoder"], **inverted["params"])
    with pytest.warns(NegativeTransferWarning, match="negative transfer"):
        clf.fit(inverted["target"])
    check = clf.transfer_check_
    assert check["ran"] is True and check["passed"] is False and check["action"] == "warned"
    assert check["verdict"] == "failed"
    assert check["baseline_auc"] - check["transfer_auc"] > 2 * check["standard_error"]
    assert check["baseline"] == "xgboost"
    assert clf.fallback_ is None  # "warn" keeps the transferred model's predictions
    assert clf.model_card()["transfer_check"] == check


def test_negative_transfer_fallback_predicts_with_the_xgboost_baseline(
    inverted: dict[str, Any], tmp_path: Path
) -> None:
    target = inverted["target"]
    clf = TransferClassifier(inverted["encoder"], on_negative_transfer="fallback")
    clf.set_params(**inverted["params"])
    with pytest.warns(NegativeTransferWarning, match="predictions now come from the baseline"):
        clf.fit(target)
    assert clf.transfer_check_["action"] == "fallback"
    names = list(clf.feature_names_in_)
    aligned, _ = target.align(inverted["encoder"].schema)
    baseline = XGBoostBaseline(n_estimators=100, max_depth=3, random_state=0)
    expected = baseline.fit(aligned.X[names], aligned.y).predict_proba(aligned.X[names])[:, 1]
    np.testing.assert_array_equal(clf.predict_proba(target)[:, 1], expected)
    card = clf.model_card()
    assert card["transfer_check"] == clf.transfer_check_

    path = clf.save(tmp_path / "fallback-model")
    files = {p.name for p in path.iterdir()}
    assert files == {"weights.safetensors", "meta.json", "fallback.ubj"}
    assert (path / "fallback.ubj").read_bytes()[:1] == b"{"  # UBJSON object, not a pickle
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    assert meta["fallback"] == "XGBoostBaseline" and "fallback.ubj" in meta["extra_files"]
    loaded = graphxfer.load_model(path)
    assert loaded.transfer_check_ == clf.transfer_check_
    assert loaded.model_card()["transfer_check"] == card["transfer_check"]
    np.testing.assert_array_equal(loaded.predict_proba(target), clf.predict_proba(target))
    # a fallback file that does not match its recorded hash is refused
    (path / "fallback.ubj").write_bytes(b"{" + b"\x00" * 16)
    with pytest.raises(graphxfer.exceptions.ModelFileError, match=r"fallback\.ubj"):
        graphxfer.load_model(path)


def test_transfer_check_is_skipped_under_dp(inverted: dict[str, Any]) -> None:
    config = PrivacyConfig(epsilon=2.0, epochs=1, batch_size=32, accountant="rdp")
    clf = TransferClassifier(inverted["encoder"], **{**inverted["params"], "privacy": config})
    with pytest.warns(TransferCheckSkippedWarning, match="differential privacy"):
        clf.fit(inverted["target"])
    assert clf.transfer_check_["ran"] is False
    assert "strategy='anchored'" in clf.transfer_check_["reason"]
    assert clf.fallback_ is None
    assert clf.model_card()["transfer_check"]["ran"] is False


# ----------------------------------------------------------------------------- differential privacy
@pytest.fixture(scope="module")
def private(encoder: Encoder, heart: dict[str, Cohort]) -> TransferClassifier:
    config = PrivacyConfig(epsilon=1.0, epochs=2, batch_size=32, accountant="rdp")
    clf = TransferClassifier(encoder, strategy="lp-ft", privacy=config, random_state=0)
    return clf.fit(heart["target"])


def test_dp_fit_writes_a_ledger_within_the_budget(private: TransferClassifier) -> None:
    config = private.privacy
    entries = private.ledger_.entries
    assert len(entries) == 2  # one per LP-FT phase, sharing one budget
    for entry in entries:
        # the heart-disease schema declares an id column: person-level DP-SGD, decided from
        # the schema (not from whether ids repeat in the data)
        assert entry.mechanism == "dp-sgd-person" and entry.unit == "person"
        assert entry.noise_multiplier > 0 and 0 < entry.sample_rate <= 1 and entry.steps > 0
        assert entry.n_records == 200 and entry.delta < 1 / 200
        assert entry.max_grad_norm == config.max_grad_norm
    tol = 1e-6
    composed = privacy.compose(entries, accountant=config.accountant)
    assert composed.epsilon <= config.epsilon + tol
    assert private.ledger_.total_spent().epsilon <= config.epsilon + tol
    card = private.model_card()["privacy"]
    assert card["epsilon"] == pytest.approx(private.ledger_.total_spent().epsilon)
    assert card["epsilon"] <= config.epsilon + tol
    assert card["delta"] < 1 / 200
    assert card["ledger"] == [e.to_dict() for e in entries]
    assert private.training_summary_["positive_rate"] is None
    assert private.training_summary_["private"] is True


def test_dp_ledger_survives_save_and_load(
    private: TransferClassifier, heart: dict[str, Cohort], tmp_path: Path
) -> None:
    loaded = graphxfer.load_model(private.save(tmp_path / "dp.zip"))
    assert loaded.ledger_ == private.ledger_
    assert loaded.privacy == private.privacy
    assert loaded.model_card()["privacy"] == private.model_card()["privacy"]
    assert loaded.training_summary_["positive_rate"] is None
    target = heart["target"]
    np.testing.assert_array_equal(loaded.predict_proba(target), private.predict_proba(target))


def test_dp_counts_people_not_rows(encoder: Encoder, heart: dict[str, Cohort]) -> None:
    """Several rows of one person are sampled and clipped together (person-level DP)."""
    target = heart["target"]
    data = target.data
    repeated = pd.concat([data, data.iloc[:60]], ignore_index=True)  # 60 people come back
    cohort = Cohort(repeated, target.schema, repeated_ids="allow", name="va-encounters")
    assert cohort.n_persons == 200 and len(cohort) == 260
    config = PrivacyConfig(epsilon=1.0, epochs=1, batch_size=32, accountant="rdp")
    clf = TransferClassifier(encoder, strategy="linear-probe", privacy=config, random_state=0)
    clf.fit(cohort)
    (entry,) = clf.ledger_.entries
    assert entry.unit == "person" and entry.n_records == 200
    assert clf.ledger_.total_spent().epsilon <= config.epsilon + 1e-6


def _with_bmi(target: Cohort, bounds: tuple[float, float] | None) -> Cohort:
    rng = np.random.default_rng(0)
    data = target.data.assign(bmi=rng.uniform(18, 40, len(target)))
    lower, upper = bounds if bounds is not None else (None, None)
    schema = Schema([*target.schema.columns, Column("bmi", lower=lower, upper=upper)])
    return Cohort(data, schema, name="va-with-bmi")


def test_dp_refuses_a_target_only_numeric_column_without_bounds(
    encoder: Encoder, heart: dict[str, Cohort]
) -> None:
    config = PrivacyConfig(epsilon=1.0, epochs=1, accountant="rdp")
    clf = TransferClassifier(encoder, privacy=config, random_state=0)
    with pytest.raises(GraphxferError, match="target-only column 'bmi' has no declared bounds"):
        clf.fit(_with_bmi(heart["target"], None))
    # without DP the column is scaled from the target's own range
    clf = TransferClassifier(encoder, **FAST).fit(_with_bmi(heart["target"], None))
    assert "bmi" in clf.feature_names_in_


def test_dp_uses_a_target_only_column_with_declared_bounds(heart: dict[str, Cohort]) -> None:
    enc = graphxfer.pretrain(
        heart["source"],
        encoder="ft-transformer",
        epochs=1,
        encoder_params={"d_token": 8, "n_layers": 1, "n_heads": 2},
        random_state=0,
        progress=False,
        device="cpu",
    )
    target = _with_bmi(heart["target"], (10.0, 60.0))
    config = PrivacyConfig(epsilon=1.0, epochs=1, batch_size=32, accountant="rdp")
    clf = TransferClassifier(enc, strategy="full", privacy=config, random_state=0).fit(target)
    assert clf.alignment_report_.extra == ["bmi"]
    assert list(clf.feature_names_in_)[-1] == "bmi"
    bmi = clf.feature_schema_["bmi"]
    assert (bmi.lower, bmi.upper) == (10.0, 60.0)  # the declared bounds, not the target's range
    assert clf.ledger_.total_spent().epsilon <= config.epsilon + 1e-6
    # the column reaches the network: changing it changes predictions
    p = clf.predict_proba(target)
    heavier = Cohort(target.data.assign(bmi=59.0), target.schema)
    assert not np.allclose(clf.predict_proba(heavier), p)
