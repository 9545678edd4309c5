"""The ``linear`` encoder: the featurizer output as features, so that the head is a logistic
regression that pretraining fits, fine-tuning (also under DP) adjusts, files keep and
explainers attribute."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from tabular import EncoderClassifier, EncoderError, Featurizer, TabularEncoder, pretrain
from tabular.encoders import LinearFeatures, network_from_config

COLUMNS: list[dict[str, Any]] = [
    {"name": "a", "kind": "numeric"},
    {"name": "b", "kind": "numeric"},
    {"name": "c", "kind": "categorical", "categories": ["u", "v", "w"]},
    {"name": "flag", "kind": "binary"},
]
EXTRA: list[dict[str, Any]] = [
    {"name": "lab", "kind": "numeric", "lower": 0.0, "upper": 10.0},
    {"name": "site", "kind": "categorical", "categories": ["north", "south"]},
]
TRUE_LOGIT = {"a": 0.8, "b": -1.2, "c": {"u": 0.0, "v": 1.0, "w": -1.0}, "flag": 0.5}


def _logistic_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Records from a known logistic model, with about 10% of ``a`` and ``c`` missing."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(5.0, 2.0, n),
            "b": rng.normal(-1.0, 0.5, n),
            "c": pd.Series(rng.choice(["u", "v", "w"], n), dtype="str"),
            "flag": rng.integers(0, 2, n).astype(float),
        }
    )
    eta = (
        TRUE_LOGIT["a"] * (X["a"] - 5.0) / 2.0
        + TRUE_LOGIT["b"] * (X["b"] + 1.0) / 0.5
        + X["c"].map(TRUE_LOGIT["c"]).to_numpy()
        + TRUE_LOGIT["flag"] * X["flag"]
        - 0.3
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    X.loc[rng.random(n) < 0.1, "a"] = np.nan
    X.loc[rng.random(n) < 0.1, "c"] = np.nan
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return _logistic_data(1500, seed=0)


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, np.ndarray]) -> TabularEncoder:
    """Full-batch AdamW without weight decay or early stopping: the maximum-likelihood fit."""
    X, y = data
    return pretrain(
        X,
        columns=COLUMNS,
        y=y,
        encoder="linear",
        objective="supervised",
        epochs=200,
        lr=0.05,
        batch_size=len(X),
        weight_decay=0.0,
        validation_fraction=0.0,
        random_state=0,
        progress=False,
        device="cpu",
    )


def _logits(encoder: TabularEncoder, X: pd.DataFrame) -> np.ndarray:
    clf = encoder.classifier().eval()
    with torch.no_grad():
        return clf(*encoder.featurize(X).to_tensors()).numpy().astype(np.float64)


# ----------------------------------------------------------------------------- the network
def test_features_are_values_missing_flags_and_one_hot() -> None:
    net = LinearFeatures(["x", "z"], ["k"], {"k": 5})
    assert net.out_dim == 2 * 2 + (5 - 1)
    assert net.feature_names == [
        "x", "x:missing", "z", "z:missing", "k:missing", "k:2", "k:3", "k:4",
    ]  # fmt: skip
    assert net.feature_slices == {"x": [0, 1], "z": [2, 3], "k": [4, 5, 6, 7]}
    assert list(net.parameters()) == [] and net.state_dict() == {}
    numeric = torch.tensor([[1.5, -2.0], [7.0, 0.25]])
    missing = torch.tensor([[False, False], [True, False]])
    categorical = torch.tensor([[0], [1]])  # missing; unknown
    expected = torch.tensor(
        [
            [1.5, 0.0, -2.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0],  # a missing value reads as 0
        ]
    )
    torch.testing.assert_close(net(numeric, missing, categorical), expected)
    out = net(numeric, missing, torch.tensor([[4], [2]]))
    assert out[:, 4:].tolist() == [[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]]


def test_bad_inputs_and_options_are_refused() -> None:
    net = LinearFeatures(["x"], ["k"], {"k": 4})
    with pytest.raises(EncoderError, match="'k'"):
        net(torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool), torch.tensor([[1], [4]]))
    with pytest.raises(EncoderError, match=r"shape \(n, 1\)"):
        net(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 1).long())
    with pytest.raises(EncoderError, match="order"):
        LinearFeatures(["x"], ["k"], {"k": 4}, order=["x"])


ORDINAL: list[dict[str, Any]] = [
    {"name": "x", "kind": "numeric"},
    {"name": "band", "kind": "ordinal", "levels": ["low", "mid", "high"]},
]


def test_ordinal_columns_get_an_indicator_per_level_beside_the_trend() -> None:
    src = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "band": pd.Series(["low", "mid", "high", "high"], dtype="str")}
    )
    fz = Featurizer().fit(src, ORDINAL)
    net = LinearFeatures.from_featurizer(fz)
    assert net.feature_names == [
        "x", "x:missing", "band", "band:missing", "band:level0", "band:level1", "band:level2",
    ]  # fmt: skip
    assert net.feature_slices["band"] == [2, 3, 4, 5, 6]
    assert net.column_groups()["band"] == [2, 3, 4, 5, 6]
    target = pd.DataFrame(
        {"x": [0.0, 0.0, 0.0, 0.0], "band": pd.Series(["high", "low", None, "mid"], dtype="str")}
    )
    out = net(*fz.transform(target).to_tensors())
    assert out[:, 4:].tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert out[:, 3].tolist() == [0, 0, 1, 0]  # the missing flag; a missing level sets none
    torch.testing.assert_close(out[:, 2], torch.from_numpy(fz.transform(target).numeric[:, 1]))
    # the levels are part of the configuration, so a rebuilt network reads the same features
    rebuilt = network_from_config(json.loads(json.dumps(net.config())))
    torch.testing.assert_close(rebuilt(*fz.transform(target).to_tensors()), out)
    # an ordinal column added for the target gets its indicators too, after the source's
    grown = copy.deepcopy(net).add_columns(
        fz.extend([{"name": "stage", "kind": "ordinal", "levels": ["i", "ii"]}])
    )
    assert grown.feature_names[net.out_dim :] == [
        "stage", "stage:missing", "stage:level0", "stage:level1",
    ]  # fmt: skip
    assert grown.feature_names[: net.out_dim] == net.feature_names
    with pytest.raises(EncoderError, match="ordinal_levels names 'nope'"):
        LinearFeatures(["x"], [], {}, ordinal_levels={"nope": [0.0]})
    with pytest.raises(EncoderError, match="finite"):
        LinearFeatures(["x"], [], {}, ordinal_levels={"x": []})


def test_ordinal_indicators_give_a_step_the_trend_cannot() -> None:
    """A U-shaped effect over five levels: the source model fits it (level indicators), where
    a trend alone cannot rank the extremes above the middle."""
    rng = np.random.default_rng(0)
    levels = ["a", "b", "c", "d", "e"]
    k = rng.integers(0, 5, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(np.abs(k - 2) * 1.5 - 1.5)))).astype(np.int64)
    X = pd.DataFrame({"band": pd.Series(np.array(levels)[k], dtype="str")})
    columns = [{"name": "band", "kind": "ordinal", "levels": levels}]
    enc = pretrain(
        X, columns=columns, y=y, encoder="linear", objective="supervised",
        weight_decay=1e-4, validation_fraction=0.0, random_state=0, progress=False,
    )  # fmt: skip
    assert roc_auc_score(y, _logits(enc, X)) > 0.75
    logit = _logits(enc, pd.DataFrame({"band": pd.Series(levels, dtype="str")}))
    assert logit[0] > logit[2] and logit[4] > logit[2]


def test_config_round_trip_keeps_the_order(featurizer: Featurizer) -> None:
    net = LinearFeatures.from_featurizer(featurizer)
    grown = copy.deepcopy(net).add_columns(featurizer.extend(EXTRA))
    grown.set_absent(["x2"])
    config = json.loads(json.dumps(grown.config()))
    assert config["order"][-2:] == ["lab", "site"]
    rebuilt = network_from_config(config)
    assert rebuilt.feature_names == grown.feature_names
    assert rebuilt.absent == ["x2"]
    numeric, missing, categorical = (
        featurizer.extend(EXTRA)
        .transform(pd.DataFrame({"x0": [1.0], "lab": [3.0], "site": ["north"]}))
        .to_tensors()
    )
    torch.testing.assert_close(
        rebuilt(numeric, missing, categorical), grown(numeric, missing, categorical)
    )


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
def test_rows_are_independent_and_opacus_matches_a_naive_reference(
    featurizer: Featurizer, source: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from opacus import GradSampleModule
    from opacus.validators import ModuleValidator

    torch.manual_seed(0)
    clf = EncoderClassifier(LinearFeatures.from_featurizer(featurizer)).train()
    assert ModuleValidator.validate(clf, strict=False) == []
    inputs = featurizer.transform(source[0].head(6)).to_tensors()
    alone = clf(*(t[:1] for t in inputs))
    torch.testing.assert_close(clf(*inputs)[:1], alone)
    reference = copy.deepcopy(clf)
    GradSampleModule(clf, batch_first=True, loss_reduction="sum")(*inputs).sum().backward()
    samples = [p.grad_sample.detach().clone() for p in clf.parameters()]
    for i in range(6):
        out = reference(*(t[i : i + 1] for t in inputs)).sum()
        grads = torch.autograd.grad(out, list(reference.parameters()))
        for sample, grad in zip(samples, grads, strict=True):
            torch.testing.assert_close(sample[i], grad, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- pretraining
def test_pretraining_fits_the_logistic_regression(
    fitted: TabularEncoder, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """Without a penalty, the pretrained head is the maximum-likelihood logistic regression
    on the network's features: the same log-odds as scikit-learn's unpenalised fit."""
    X, y = data
    features = fitted.embed(X).astype(np.float64)
    reference = LogisticRegression(C=np.inf, max_iter=10_000).fit(features, y)
    expected = reference.decision_function(features)
    got = _logits(fitted, X)
    assert np.abs(got - expected).max() < 0.02
    assert roc_auc_score(y, got) == pytest.approx(roc_auc_score(y, expected), abs=1e-3)
    # the identifiable coefficients: standardised a and b (true: 0.8 and -1.2 per sd)
    weight = fitted.source_head_.weight.detach().numpy().ravel()
    names = fitted.network_.feature_names
    for column in ("a", "b"):
        k = names.index(column)
        assert weight[k] == pytest.approx(reference.coef_[0, k], abs=0.01)
        assert weight[k] == pytest.approx(TRUE_LOGIT[column], abs=0.25)
    # held out: as good as the reference on fresh records of the same model
    X_new, y_new = _logistic_data(1000, seed=1)
    held_out = reference.decision_function(fitted.embed(X_new).astype(np.float64))
    assert roc_auc_score(y_new, _logits(fitted, X_new)) == pytest.approx(
        roc_auc_score(y_new, held_out), abs=2e-3
    )


def test_pretraining_defaults_fit_the_heart_source_like_scikit_learn() -> None:
    """With its recommended settings, the source model's AUROC on an unseen site is that of
    scikit-learn's LogisticRegression (C=1) on the same features, within 0.02."""
    from graphxfer import datasets
    from graphxfer import pretrain as pretrain_cohort

    heart = datasets.load_heart_disease()
    source, va = heart.select_groups(["cleveland", "hungarian"]), heart.select_groups("va")
    settings = {"progress": False, "device": "cpu", **LinearFeatures.pretraining_defaults}
    aurocs = []
    for seed in range(3):
        enc = pretrain_cohort(source, "linear", "supervised", random_state=seed, **settings)
        aurocs.append(roc_auc_score(va.y, _logits(enc.inner, va.X)))
    features = enc.inner.embed(source.X)
    reference = LogisticRegression(C=1.0, max_iter=10_000).fit(features, source.y)
    expected = roc_auc_score(va.y, reference.decision_function(enc.inner.embed(va.X)))
    assert abs(np.mean(aurocs) - expected) < 0.02, (aurocs, expected)


# ----------------------------------------------------------------------------- other schemas
def test_absent_columns_give_zero_features(
    fitted: TabularEncoder, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    target = fitted.with_columns([c for c in COLUMNS if c["name"] != "c"])
    net = target.network_
    assert target.absent_columns_ == ["c"]
    assert net.out_dim == fitted.out_dim  # same features, the head keeps its meaning
    emb = target.embed(X.head(50))
    assert not emb[:, net.feature_slices["c"]].any()
    # values that show up in the absent column's position change nothing
    numeric, missing, categorical = target.featurize(X.head(50)).to_tensors()
    other = categorical.clone()
    other[:, 0] = 3
    torch.testing.assert_close(net(numeric, missing, categorical), net(numeric, missing, other))
    torch.testing.assert_close(target.source_head_.weight, fitted.source_head_.weight)


def test_added_columns_start_with_zero_coefficients(
    fitted: TabularEncoder, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    target = fitted.with_columns(COLUMNS + EXTRA)
    net = target.network_
    assert net.out_dim == fitted.out_dim + 2 + (4 - 1)  # lab: value, flag; site: 3 indices
    assert net.feature_names[: fitted.out_dim] == fitted.network_.feature_names
    assert net.feature_slices["lab"] == [fitted.out_dim, fitted.out_dim + 1]
    assert fitted.out_dim == fitted.source_head_.in_features  # the original is unchanged
    head = target.source_head_.weight.detach()
    assert torch.equal(head[0, : fitted.out_dim], fitted.source_head_.weight.detach()[0])
    assert not head[0, fitted.out_dim :].any()
    rng = np.random.default_rng(3)
    X_target = X.head(40).assign(
        lab=rng.uniform(0, 10, 40),
        site=pd.Series(rng.choice(["north", "south"], 40), dtype="str"),
    )
    # before training, the new columns change nothing: the source model's log-odds
    np.testing.assert_allclose(
        _logits(target, X_target), _logits(fitted, X.head(40)), rtol=0, atol=1e-5
    )
    # ... and they are trainable: their coefficients receive gradients
    clf = target.classifier().train()
    clf(*target.featurize(X_target).to_tensors()).sum().backward()
    grad = clf.head.weight.grad[0]
    assert float(grad[net.feature_slices["lab"]].abs().sum()) > 0
    assert float(grad[net.feature_slices["site"]].abs().sum()) > 0
    # and the adapted encoder survives its own state
    tensors, meta = target.to_state()
    again = TabularEncoder.from_state(tensors, json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(_logits(again, X_target), _logits(target, X_target))


# ----------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def heart() -> dict[str, Any]:
    from graphxfer import datasets
    from graphxfer import pretrain as pretrain_cohort

    cohort = datasets.load_heart_disease()
    source = cohort.select_groups(["cleveland", "hungarian"])
    encoder = pretrain_cohort(
        source,
        "linear",
        "supervised",
        random_state=0,
        progress=False,
        device="cpu",
        **LinearFeatures.pretraining_defaults,
    )
    return {"encoder": encoder, "target": cohort.select_groups("va")}


@pytest.fixture(scope="module")
def dp_model(heart: dict[str, Any]) -> Any:
    import privacy
    from graphxfer import TransferClassifier

    config = privacy.PrivacyConfig(epsilon=1.0, batch_size=16, epochs=10)
    clf = TransferClassifier(
        heart["encoder"], strategy="linear-probe", privacy=config, random_state=0, device="cpu"
    )
    return clf.fit(heart["target"])


def test_dp_fine_tuning_adjusts_the_logistic_regression_and_charges_the_ledger(
    dp_model: Any, heart: dict[str, Any]
) -> None:
    entries = dp_model.ledger_.entries
    assert len(entries) == 1 and entries[0].noise_multiplier > 0
    spent = dp_model.ledger_.total_spent()
    assert 0 < spent.epsilon <= 1.0 + 1e-6
    source_head = heart["encoder"].inner.source_head_
    tuned = dp_model.module_.head
    assert not torch.equal(tuned.weight.detach(), source_head.weight.detach())
    p = dp_model.predict_proba(heart["target"])[:, 1]
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


@pytest.mark.parametrize("strategy", ["full", "partial", "lp-ft"])
def test_every_strategy_trains_the_head(heart: dict[str, Any], strategy: str) -> None:
    """The network has no parameters: every strategy fine-tunes the logistic regression."""
    from graphxfer import TransferClassifier

    clf = TransferClassifier(
        heart["encoder"], strategy=strategy, epochs=2, random_state=0, device="cpu"
    ).fit(heart["target"])
    source_head = heart["encoder"].inner.source_head_
    assert not torch.equal(clf.module_.head.weight.detach(), source_head.weight.detach())


def test_files_round_trip(dp_model: Any, heart: dict[str, Any], tmp_path: Path) -> None:
    from graphxfer import load_encoder, load_model

    encoder, target = heart["encoder"], heart["target"]
    again = load_encoder(encoder.save(tmp_path / "encoder"))
    np.testing.assert_array_equal(again.embed(target), encoder.embed(target))
    np.testing.assert_array_equal(_logits(again.inner, target.X), _logits(encoder.inner, target.X))
    model = load_model(dp_model.save(tmp_path / "model.zip"))
    np.testing.assert_array_equal(model.predict_proba(target), dp_model.predict_proba(target))
    assert model.ledger_.total_spent().epsilon == dp_model.ledger_.total_spent().epsilon


@pytest.mark.parametrize("method", ["gradient", "deep"])
def test_gradient_explanations_are_additive(
    dp_model: Any, heart: dict[str, Any], method: str
) -> None:
    """On the log-odds the model is linear, so expected gradients (every background row once)
    and DeepLIFT are exact: base value + attributions = the model's log-odds."""
    import graphxfer

    X = heart["target"].X.head(20)
    exp = graphxfer.explain(dp_model, X, method=method, link="logit", random_state=0)
    p = dp_model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(
        exp.base_values + exp.values.sum(axis=1), np.log(p / (1 - p)), rtol=0, atol=1e-4
    )
    assert exp.values.shape == (20, len(dp_model.feature_names_in_))


def test_gradient_explanations_match_the_coefficients(dp_model: Any, heart: dict[str, Any]) -> None:
    """A numeric column's attribution is its coefficient times (its feature - the background
    mean): the closed form of SHAP values of a linear model."""
    import graphxfer

    X = heart["target"].X.head(10)
    background = dp_model.background_
    exp = graphxfer.explain(
        dp_model, X, method="gradient", link="logit", background=background, random_state=0
    )
    net = dp_model.module_.network
    weight = dp_model.module_.head.weight.detach().numpy().ravel()
    k = net.feature_slices["age"]
    features = dp_model.encoder_.inner.embed(X)[:, k]
    reference = dp_model.encoder_.inner.embed(background)[:, k].mean(axis=0)
    expected = (features - reference) @ weight[k]
    j = list(dp_model.feature_names_in_).index("age")
    np.testing.assert_allclose(exp.values[:, j], expected, rtol=0, atol=1e-4)


@pytest.mark.slow  # shap's permutation explainer compiles with numba on first use (~30 s)
def test_permutation_explanations_are_additive(dp_model: Any, heart: dict[str, Any]) -> None:
    import graphxfer

    X = heart["target"].X.head(3)
    exp = graphxfer.explain(
        dp_model, X, method="permutation", n_background=10, random_state=0, progress=False
    )
    np.testing.assert_allclose(
        exp.base_values + exp.values.sum(axis=1),
        dp_model.predict_proba(X)[:, 1],
        rtol=0,
        atol=1e-6,
    )
