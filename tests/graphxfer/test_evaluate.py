"""Transfer curves: the same seeded target splits for every method, tidy results, 95% CIs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
from graphxfer import Cohort, TransferClassifier, datasets
from graphxfer.evaluate import (
    BASELINES,
    METRICS,
    YARDSTICK,
    TransferCurve,
    score_all,
    transfer_curve,
)
from graphxfer.evaluate import curve as curve_module
from graphxfer.exceptions import GraphxferError
from tabular.baselines import LogisticBaseline

SIZES = (15, 50)
REPEATS = 2
EPSILON = 2.0
PRETRAIN = {"epochs": 2, "encoder_params": {"width": 16, "n_blocks": 1}, "device": "cpu"}
OPTIONS: dict[str, Any] = {
    "encoder": "mlp",
    "pretrain_params": PRETRAIN,
    "target_sizes": SIZES,
    "strategies": ("anchored",),
    "baselines": tuple(BASELINES),
    "repeats": REPEATS,
    "test_size": 0.3,
    # the private fits use these options as given (the deployed default, "auto", takes them
    # from the encoder's presets: several seconds of noise calibration at their sample rate)
    "finetune_params": {"epochs": 2, "device": "cpu", "dp_hyperparameters": "config"},
    "privacy_params": {"epochs": 1, "batch_size": 10, "accountant": "rdp"},
    "random_state": 0,
    "progress": False,
}
RESULT_COLUMNS = ["method", "n", "epsilon", "repeat", *METRICS, "note"]
# the baselines that never see a target training record
SOURCE_ONLY = ("logistic-source", "xgboost-source", "zero-shot")


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
def encoder(heart: dict[str, Cohort]) -> graphxfer.Encoder:
    return graphxfer.pretrain(heart["source"], "mlp", random_state=0, progress=False, **PRETRAIN)


@pytest.fixture(scope="module")
def traced(heart: dict[str, Cohort]) -> dict[str, Any]:
    """One transfer curve (with and without DP), recording which rows every method saw."""
    seen: list[dict[str, Any]] = []
    fit, predict_proba = TransferClassifier.fit, TransferClassifier.predict_proba
    baseline_predictions = curve_module._baseline_predictions

    def traced_fit(self: TransferClassifier, X: Any, y: Any = None) -> TransferClassifier:
        private = self.privacy is not None
        seen.append({"what": "fit", "method": self.strategy, "private": private, "rows": X})
        return fit(self, X, y)

    def traced_predict_proba(self: TransferClassifier, X: Any) -> np.ndarray:
        seen.append({"what": "test", "method": self.strategy, "rows": X})
        return predict_proba(self, X)

    def traced_baseline(name: str, *args: Any) -> Any:
        X_train, X_test = args[2], args[4]
        seen.append({"what": "fit", "method": name, "private": False, "rows": X_train})
        seen.append({"what": "test", "method": name, "rows": X_test})
        return baseline_predictions(name, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TransferClassifier, "fit", traced_fit)
        mp.setattr(TransferClassifier, "predict_proba", traced_predict_proba)
        mp.setattr(curve_module, "_baseline_predictions", traced_baseline)
        result = transfer_curve(
            heart["source"], heart["target"], **{**OPTIONS, "epsilons": (None, EPSILON)}
        )
    for event in seen:
        rows = event["rows"]
        index = rows.data.index if isinstance(rows, Cohort) else rows.index
        event["rows"] = frozenset(index.tolist())
    return {"curve": result, "seen": seen}


@pytest.fixture(scope="module")
def curve(traced: dict[str, Any]) -> TransferCurve:
    return traced["curve"]


def test_results_are_a_tidy_frame(curve: TransferCurve) -> None:
    results = curve.results
    assert list(results.columns) == RESULT_COLUMNS
    methods = ["transfer:anchored", *OPTIONS["baselines"]]
    assert set(results["method"]) == set(methods)
    assert set(results["n"]) == set(SIZES) and set(results["repeat"]) == set(range(REPEATS))
    assert pd.api.types.is_integer_dtype(results["n"])
    # one row per method, size, epsilon and repeat
    keys = results.assign(epsilon=results["epsilon"].fillna(-1.0))
    assert not keys.duplicated(["method", "n", "epsilon", "repeat"]).any()
    per_cell = len(methods) + 1  # the transfer strategy once more under DP
    assert len(results) == REPEATS * len(SIZES) * per_cell
    private = results[results["epsilon"].notna()]
    assert set(private["method"]) == {"transfer:anchored"}
    assert (private["epsilon"] == EPSILON).all()
    finite = results[results["auroc"].notna()]
    for metric in METRICS:
        assert finite[metric].between(0, 1).all(), metric
    # methods that never see target training data score the same at every size
    for method in SOURCE_ONLY:
        part = results[results["method"] == method].pivot(
            index="repeat", columns="n", values="auroc"
        )
        np.testing.assert_array_equal(part[SIZES[0]], part[SIZES[1]])


def test_every_method_sees_the_same_seeded_splits(traced: dict[str, Any]) -> None:
    seen = traced["seen"]
    fits = [e for e in seen if e["what"] == "fit"]
    tests = [e for e in seen if e["what"] == "test"]
    n_methods = len(OPTIONS["baselines"]) + 2  # plus the strategy with and without DP
    # each (repeat, size) draws one training set, and every method is fitted on it
    train_sets = Counter(e["rows"] for e in fits)
    assert len(train_sets) == REPEATS * len(SIZES)
    assert set(train_sets.values()) == {n_methods}
    assert Counter(len(rows) for rows in train_sets) == Counter(
        {n: REPEATS for n in SIZES}
    )  # heart disease has one row per person
    # each repeat holds out one test set; every method that predicts is scored on it, at
    # every size (the DP fit refused at n=15 is the one method that does not predict there)
    test_sets = Counter(e["rows"] for e in tests)
    assert len(test_sets) == REPEATS
    assert {len(rows) for rows in test_sets} == {round(0.3 * 200)}
    assert set(test_sets.values()) == {(n_methods - 1) + n_methods}
    # and no method is scored on a record it was trained on
    last_fit: frozenset[Any] = frozenset()
    for event in seen:
        if event["what"] == "fit":
            last_fit = event["rows"]
        else:
            assert not event["rows"] & last_fit, event["method"]


def test_the_same_random_state_gives_the_same_curve(
    heart: dict[str, Cohort], curve: TransferCurve
) -> None:
    again = transfer_curve(heart["source"], heart["target"], **{**OPTIONS, "epsilons": (None,)})
    public = curve.results[curve.results["epsilon"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.results, public)
    other = transfer_curve(
        heart["source"],
        heart["target"],
        **{**OPTIONS, "epsilons": (None,), "baselines": ("logistic",), "random_state": 1},
    )
    mine = public[public["method"] == "logistic"]["auroc"].to_numpy()
    theirs = other.results[other.results["method"] == "logistic"]["auroc"].to_numpy()
    assert not np.array_equal(mine, theirs)


def test_dp_sizes_below_the_minimum_give_nan_rows_with_a_note(curve: TransferCurve) -> None:
    results = curve.results
    private = results[results["epsilon"] == EPSILON]
    small, large = private[private["n"] == 15], private[private["n"] == 50]
    assert len(small) == REPEATS and len(large) == REPEATS
    assert small[list(METRICS)].isna().all().all()
    assert small["note"].str.contains("min_records").all()
    assert large["auroc"].notna().all() and (large["note"] == "").all()
    assert (results.loc[results["epsilon"].isna(), "note"] == "").all()


def test_summary_has_means_and_95_percent_intervals(curve: TransferCurve) -> None:
    summary = curve.summary
    for column in ("method", "n", "epsilon", "label", "repeats"):
        assert column in summary.columns
    for metric in METRICS:
        for stat in ("mean", "ci_low", "ci_high"):
            assert f"{metric}_{stat}" in summary.columns
    assert len(summary) == len(curve.results) // REPEATS
    observed = summary[summary["repeats"] > 0]
    assert (observed["repeats"] == REPEATS).all()
    for metric in METRICS:
        low, mean, high = (observed[f"{metric}_{s}"] for s in ("ci_low", "mean", "ci_high"))
        assert (low <= mean).all() and (mean <= high).all(), metric
        assert (low >= 0).all() and (high <= 1).all(), f"{metric}: CI outside the metric's range"
    # the mean is the mean over repeats of the results
    results = curve.results
    row = observed[(observed["method"] == "xgboost") & (observed["n"] == 50)].iloc[0]
    part = results[(results["method"] == "xgboost") & (results["n"] == 50)]
    assert row["auroc_mean"] == pytest.approx(part["auroc"].mean())
    # refused DP runs are summarised as missing, not dropped
    refused = summary[(summary["epsilon"] == EPSILON) & (summary["n"] == 15)]
    assert len(refused) == 1 and refused["repeats"].iloc[0] == 0
    assert np.isnan(refused["auroc_mean"].iloc[0])
    assert "ε=2" in refused["label"].iloc[0]


def test_plot_returns_a_matplotlib_figure(curve: TransferCurve) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = curve.plot("auroc")
    try:
        assert isinstance(fig, Figure)
        (ax,) = fig.axes
        assert len(ax.get_lines()) == curve.summary["label"].nunique()
        assert ax.get_ylabel() == "AUROC"
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        assert curve.plot("brier", ax=ax) is fig
    finally:
        plt.close(fig)


def test_zero_shot_needs_a_supervised_encoder(heart: dict[str, Cohort]) -> None:
    masked = graphxfer.pretrain(
        heart["source"], "mlp", objective="masked", random_state=0, progress=False, **PRETRAIN
    )
    result = transfer_curve(
        heart["source"],
        heart["target"],
        **{
            **OPTIONS,
            "encoder": masked,
            "strategies": (),
            "baselines": ("zero-shot",),
            "target_sizes": (20,),
            "repeats": 1,
        },
    ).results
    zero_shot = result[result["method"] == "zero-shot"]
    assert len(zero_shot) == 1
    assert np.isnan(zero_shot["auroc"].iloc[0])
    assert zero_shot["note"].iloc[0] == "not available for this encoder"
    # the yardstick does not need the encoder's head
    others = result[result["method"] != "zero-shot"]
    assert list(others["method"]) == list(YARDSTICK)
    assert others["auroc"].notna().all()


def test_the_yardstick_is_always_shown_and_clearly_labelled(
    heart: dict[str, Cohort], encoder: graphxfer.Encoder
) -> None:
    options = {**OPTIONS, "encoder": encoder, "strategies": (), "target_sizes": (30,)}
    result = transfer_curve(
        heart["source"], heart["target"], **{**options, "baselines": ("source-only", "pooled")}
    )
    # the yardstick first, whatever was asked for; the earlier names mean XGBoost
    methods = list(dict.fromkeys(result.results["method"]))
    assert methods == [*YARDSTICK, "xgboost-source", "xgboost-pooled"]
    labels = dict(zip(result.summary["method"], result.summary["label"], strict=True))
    assert labels["logistic-source"] == "logistic regression, source only"
    assert labels["logistic"] == "logistic regression, target only"
    assert labels["xgboost"] == "XGBoost, target only"
    assert labels["logistic-pooled"].startswith("logistic regression, pooled")
    assert labels["xgboost-source"] == "XGBoost, source only"
    # the source-only logistic regression is the one fitted on the source records
    names = encoder.schema.feature_names
    aligned, _ = heart["target"].align(encoder.schema)
    _, test = aligned.split(0.3, random_state=OPTIONS["random_state"])
    expected = LogisticBaseline().fit(heart["source"].X[names], heart["source"].y)
    scores = score_all(test.y, expected.predict_proba(test.X[names])[:, 1])
    row = result.results[result.results["method"] == "logistic-source"].iloc[0]
    assert row["auroc"] == pytest.approx(scores["auroc"])


def test_the_defaults_are_the_deployed_path(
    heart: dict[str, Cohort], encoder: graphxfer.Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the encoder is chosen on the source ("auto"), its private presets are
    simulated at the curve's sizes and epsilons, and "anchored" is the first strategy."""
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(transfer_curve).parameters.items()}
    assert defaults["encoder"] == "auto"
    assert defaults["strategies"][0] == "anchored"
    assert set(YARDSTICK) <= set(defaults["baselines"])
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_pretrain(source: Cohort, name: str, **params: Any) -> graphxfer.Encoder:
        calls.append((name, params))
        return encoder

    monkeypatch.setattr(curve_module, "pretrain", fake_pretrain)
    options = {
        "target_sizes": (20, 30),
        "epsilons": (None, 1.0, None),
        "strategies": (),
        "baselines": (),
        "repeats": 1,
        "random_state": 3,
        "progress": False,
    }
    transfer_curve(heart["source"], heart["target"], **options)
    transfer_curve(
        heart["source"], heart["target"], pretrain_params={"dp_presets": False}, **options
    )
    (name, params), (_, given) = calls
    assert name == "auto"
    assert params["dp_presets"] == {"sizes": (20, 30), "epsilons": (None, 1.0)}
    assert params["random_state"] == 3 and params["progress"] is False
    assert given["dp_presets"] is False  # the caller's choice wins


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baselines": ("xgboost", "oracle")}, "unknown baselines"),
        ({"repeats": 0}, "repeats=0"),
        ({"target_sizes": (500,)}, "larger than the training pool"),
    ],
)
def test_invalid_requests_are_refused(
    heart: dict[str, Cohort], encoder: graphxfer.Encoder, change: dict[str, Any], message: str
) -> None:
    options = {**OPTIONS, "encoder": "not-pretrained", **change}
    if "target_sizes" in change:
        options["encoder"] = encoder
        options["strategies"], options["baselines"] = (), ("logistic",)
    with pytest.raises(GraphxferError, match=message):
        transfer_curve(heart["source"], heart["target"], **options)


def test_baselines_are_listed() -> None:
    assert set(OPTIONS["baselines"]) == set(BASELINES)
    assert set(YARDSTICK) <= set(BASELINES)
