"""Pretraining: objectives learn, options are checked, results are reproducible and reusable,
and pretraining on a source helps a small target from the same generator."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from _tabular_data import SMALL_PARAMS, FakeCohort, columns, make_frame
from sklearn.metrics import roc_auc_score

import tabular
from tabular import (
    ENCODERS,
    EncoderClassifier,
    EncoderError,
    PretrainingError,
    TabularEncoder,
    TabularError,
    pretrain,
)
from tabular.exceptions import RegistryError

FAST = {"epochs": 6, "progress": False, "device": "cpu", "random_state": 0}


def _pretrain(source: tuple[pd.DataFrame, np.ndarray], name: str, **kw: object) -> TabularEncoder:
    X, _ = source
    options = {**FAST, "encoder_params": SMALL_PARAMS[name], **kw}
    return pretrain(X, columns=columns(), encoder=name, **options)  # type: ignore[arg-type]


def test_masked_reconstruction_loss_falls(source: tuple, encoder_name: str) -> None:
    enc = _pretrain(
        source, encoder_name, objective="masked", epochs=10, patience=10, lr=3e-3, batch_size=64
    )
    train = [h["train_loss"] for h in enc.history_]
    val = [h["val_loss"] for h in enc.history_]
    assert len(enc.history_) == 10
    assert train[-1] < 0.85 * train[0]
    assert min(val) < 0.9 * val[0]
    assert enc.source_head_ is None


def test_contrastive_loss_falls(source: tuple) -> None:
    enc = _pretrain(source, "mlp", objective="contrastive", epochs=8, patience=8, lr=3e-3)
    train = [h["train_loss"] for h in enc.history_]
    assert train[-1] < train[0]
    assert all(h["val_loss"] is not None for h in enc.history_)


@pytest.mark.parametrize("objective", ["supervised", "supervised+masked"])
def test_supervised_objectives_use_the_cohort_outcome(objective: str) -> None:
    X, y = make_frame(300, seed=3)
    cohort = FakeCohort(X, y, columns())
    enc = pretrain(
        cohort, encoder="mlp", objective=objective, encoder_params=SMALL_PARAMS["mlp"], **FAST
    )
    assert [c["name"] for c in enc.columns_] == [c["name"] for c in columns()]
    assert enc.source_summary_["positive_rate"] == pytest.approx(y.mean())
    assert enc.source_head_ is not None
    # a linear classifier starts from the source head: its logits are head(embedding)
    clf = enc.classifier().eval()
    emb = torch.as_tensor(enc.embed(cohort))
    with torch.no_grad():
        logits = clf(*enc.featurize(cohort).to_tensors())
        torch.testing.assert_close(logits, enc.source_head_(emb).squeeze(-1))
    fresh = enc.classifier(source_head=False, random_state=1)
    assert not torch.equal(fresh.head.weight, clf.head.weight)


def test_options_are_checked(source: tuple) -> None:
    X, y = source
    ignored = pretrain(X, y=y, objective="masked", encoder="mlp", **FAST)
    assert ignored.source_summary_["outcome_used"] is False
    with pytest.raises(PretrainingError, match="needs the source outcome"):
        pretrain(X, objective="supervised", **FAST)
    with pytest.raises(PretrainingError, match="0/1"):
        pretrain(X, y=y + 1, objective="supervised", **FAST)
    with pytest.raises(PretrainingError, match="rows"):
        pretrain(X, y=y[:-1], objective="supervised", **FAST)
    with pytest.raises(RegistryError, match="available"):
        pretrain(X, encoder="resnet", **FAST)
    with pytest.raises(RegistryError, match="available"):
        pretrain(X, objective="denoise", **FAST)
    with pytest.raises(PretrainingError, match="epochs"):
        pretrain(X, **{**FAST, "epochs": 0})
    with pytest.raises(PretrainingError, match="validation_fraction"):
        pretrain(X, validation_fraction=1.0, **FAST)
    with pytest.raises(PretrainingError, match="at least"):
        pretrain(X.head(5), **FAST)
    with pytest.raises(EncoderError, match="parameters"):
        pretrain(X, encoder="mlp", encoder_params={"depth": 3}, **FAST)
    if not torch.cuda.is_available():
        with pytest.raises(TabularError, match="CUDA"):
            pretrain(X, **{**FAST, "device": "cuda"})


def test_columns_are_inferred_from_a_frame() -> None:
    X, _ = make_frame(120, seed=4)
    enc = pretrain(X, encoder="mlp", encoder_params=SMALL_PARAMS["mlp"], **FAST)
    kinds = {c["name"]: c["kind"] for c in enc.columns_}
    assert kinds["x0"] == "numeric" and kinds["c0"] == "categorical"
    partial = pretrain(
        X, columns=["x0", "c0"], encoder="mlp", encoder_params=SMALL_PARAMS["mlp"], **FAST
    )
    assert partial.featurizer_.feature_names_in_ == ["x0", "c0"]


def test_reproducible_and_leaves_the_global_rng_alone(source: tuple) -> None:
    X, _ = source
    before = torch.random.get_rng_state()
    first = _pretrain(
        source, "ft-transformer", epochs=2, encoder_params={"d_token": 8, "n_heads": 2}
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    second = _pretrain(
        source, "ft-transformer", epochs=2, encoder_params={"d_token": 8, "n_heads": 2}
    )
    np.testing.assert_array_equal(first.embed(X.head(20)), second.embed(X.head(20)))
    other = _pretrain(
        source,
        "ft-transformer",
        epochs=2,
        encoder_params={"d_token": 8, "n_heads": 2},
        random_state=1,
    )
    assert not np.allclose(first.embed(X.head(20)), other.embed(X.head(20)))


def test_early_stopping_keeps_the_best_epoch(source: tuple) -> None:
    enc = _pretrain(source, "mlp", objective="masked", epochs=60, patience=2, lr=2e-2)
    val = [h["val_loss"] for h in enc.history_]
    best = enc.source_summary_["best_epoch"]
    assert best == int(np.argmin(val)) + 1
    assert enc.source_summary_["best_val_loss"] == min(val)
    assert len(val) == 60 or len(val) == best + 2


def test_without_validation_runs_every_epoch(source: tuple) -> None:
    enc = _pretrain(source, "mlp", epochs=3, validation_fraction=0.0)
    assert [h["val_loss"] for h in enc.history_] == [None, None, None]
    assert enc.source_summary_["n_validation"] == 0


def test_progress_bar_shows_only_when_asked_and_on_a_terminal(
    source: tuple, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretrain(source, "mlp", epochs=2, progress=True)
    assert capsys.readouterr().err == ""  # captured output is not a terminal

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _pretrain(source, "mlp", epochs=2)
    assert terminal.getvalue() == ""
    _pretrain(source, "mlp", epochs=2, progress=True)
    assert "pretrain mlp" in terminal.getvalue()


def test_state_round_trip_through_safetensors(
    source: tuple, encoder_name: str, tmp_path: object
) -> None:
    from safetensors.torch import load_file, save_file

    X, y = source
    enc = _pretrain(source, encoder_name, objective="supervised", y=y, epochs=2)
    tensors, meta = enc.to_state()
    path = f"{tmp_path}/weights.safetensors"
    save_file(tensors, path)
    text = json.dumps(meta, allow_nan=False)
    restored = TabularEncoder.from_state(load_file(path), json.loads(text))
    np.testing.assert_array_equal(restored.embed(X), enc.embed(X))
    assert restored.history_ == enc.history_
    assert restored.source_summary_ == enc.source_summary_
    assert restored.source_head_ is not None
    torch.testing.assert_close(restored.source_head_.weight, enc.source_head_.weight)


def test_from_state_rejects_mismatched_weights(source: tuple) -> None:
    enc = _pretrain(source, "mlp", epochs=1)
    tensors, meta = enc.to_state()
    missing = dict(list(tensors.items())[1:])
    with pytest.raises(EncoderError, match="do not match"):
        TabularEncoder.from_state(missing, meta)
    key = next(iter(tensors))
    with pytest.raises(EncoderError, match="do not match"):
        TabularEncoder.from_state({**tensors, key: torch.zeros(3)}, meta)
    with pytest.raises(EncoderError, match="format"):
        TabularEncoder.from_state(tensors, {**meta, "format": 99})
    with pytest.raises(EncoderError, match="not a tabular encoder"):
        TabularEncoder.from_state(tensors, {"kind": "graph"})
    with pytest.raises(EncoderError, match="head"):
        TabularEncoder.from_state({**tensors, "head.weight": torch.zeros(1, 16)}, meta)


# ---------------------------------------------------------------------- transfer
def _finetune(
    clf: EncoderClassifier, encoder: TabularEncoder, X: pd.DataFrame, y: np.ndarray, lr: float
) -> EncoderClassifier:
    inputs = encoder.featurize(X).to_tensors()
    target = torch.as_tensor(y, dtype=torch.float32)
    optimizer = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=1e-4)
    clf.train()
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(clf(*inputs), target)
        loss.backward()
        optimizer.step()
    return clf.eval()


def _auroc(
    clf: EncoderClassifier, encoder: TabularEncoder, X: pd.DataFrame, y: np.ndarray
) -> float:
    with torch.no_grad():
        return float(roc_auc_score(y, clf(*encoder.featurize(X).to_tensors()).numpy()))


def _transfer_gain(name: str, objective: str, epochs: int) -> tuple[float, float]:
    """Mean test AUROC over 3 target samples (n=60): pretrained + fine-tuned vs from scratch."""
    X_src, y_src = make_frame(3000, seed=1)
    params = {**SMALL_PARAMS[name], **({"n_layers": 1} if name == "ft-transformer" else {})}
    encoder = pretrain(
        X_src,
        columns=columns(),
        y=y_src if "supervised" in objective else None,
        encoder=name,
        objective=objective,
        encoder_params=params,
        epochs=epochs,
        lr=3e-3,
        random_state=0,
        progress=False,
        device="cpu",
    )
    X_test, y_test = make_frame(2000, seed=99)
    pre, scratch = [], []
    for seed in range(3):
        X_t, y_t = make_frame(60, seed=100 + seed)
        tuned = _finetune(encoder.classifier(random_state=seed), encoder, X_t, y_t, lr=1e-3)
        torch.manual_seed(seed)
        fresh = EncoderClassifier(ENCODERS.get(name).from_featurizer(encoder.featurizer_, **params))
        fresh = _finetune(fresh, encoder, X_t, y_t, lr=3e-3)
        pre.append(_auroc(tuned, encoder, X_test, y_test))
        scratch.append(_auroc(fresh, encoder, X_test, y_test))
    return float(np.mean(pre)), float(np.mean(scratch))


@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("mlp", "supervised"),
        # about 10 s on 2 cores
        pytest.param("ft-transformer", "supervised+masked", marks=pytest.mark.slow),
        # about 8 s on 2 cores
        pytest.param("tabnet", "supervised", marks=pytest.mark.slow),
    ],
)
def test_pretraining_beats_training_from_scratch(name: str, objective: str) -> None:
    pre, scratch = _transfer_gain(name, objective, epochs=20)
    assert pre > scratch + 0.05, (pre, scratch)


@pytest.mark.slow
def test_self_supervised_pretraining_beats_training_from_scratch() -> None:
    pre, scratch = _transfer_gain("mlp", "masked", epochs=30)
    assert pre > scratch, (pre, scratch)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(SMALL_PARAMS))
def test_pretraining_on_cuda(source: tuple, name: str) -> None:
    X, y = source
    enc = _pretrain(source, name, objective="supervised+masked", y=y, epochs=2, device="cuda")
    assert enc.source_summary_["device"] == "cuda"
    assert next(enc.network_.parameters()).device.type == "cpu"
    cpu = enc.embed(X.head(50))
    gpu = enc.embed(X.head(50), device="cuda")
    assert next(enc.network_.parameters()).device.type == "cuda"
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=1e-3)
    clf = enc.classifier()
    logits = clf(*enc.featurize(X.head(8)).to_tensors("cuda"))
    assert logits.shape == (8,) and logits.device.type == "cuda"


def test_public_api_is_exported() -> None:
    for name in (
        "pretrain",
        "TabularEncoder",
        "EncoderClassifier",
        "XGBoostBaseline",
        "LogisticBaseline",
        "fit_baseline",
        "ENCODERS",
        "Featurizer",
    ):
        assert name in tabular.__all__
        assert getattr(tabular, name) is not None
