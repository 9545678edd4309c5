"""Invariants every tabular encoder network must satisfy (run over each registered encoder)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from _tabular_data import CATEGORIES, SMALL_PARAMS, columns, make_frame
from torch import nn

from tabular import ENCODERS, EncoderClassifier, EncoderError, Featurizer, TabularEncoder
from tabular.encoders import EncoderNetwork, FTTransformer, TabNetNetwork, network_from_config

EXTRA = [
    {"name": "lab", "kind": "numeric", "lower": 0.0, "upper": 10.0},
    {"name": "site", "kind": "categorical", "categories": ["north", "south"]},
]
DROPPED = ["x2", "c1"]


def _network(featurizer: Featurizer, name: str, **changes: object) -> EncoderNetwork:
    torch.manual_seed(0)
    return ENCODERS.get(name).from_featurizer(featurizer, **{**SMALL_PARAMS[name], **changes})


def _tensors(featurizer: Featurizer, X: pd.DataFrame) -> tuple[torch.Tensor, ...]:
    return featurizer.transform(X).to_tensors()


def _target_frame(n: int = 12, seed: int = 5) -> pd.DataFrame:
    X, _ = make_frame(n, seed=seed)
    rng = np.random.default_rng(seed)
    X = X.drop(columns=DROPPED)
    X["lab"] = rng.uniform(0, 10, n)
    X["site"] = pd.Series(rng.choice(["north", "south"], n), dtype="str")
    return X


def _target_columns() -> list[dict]:
    return [c for c in columns() if c["name"] not in DROPPED] + EXTRA


def test_registry_holds_the_three_encoders() -> None:
    assert {"ft-transformer", "mlp", "tabnet"} <= set(ENCODERS.names())


def test_forward_shape_and_blocks(featurizer: Featurizer, encoder_name: str) -> None:
    net = _network(featurizer, encoder_name)
    X, _ = make_frame(7, seed=3)
    out = net(*_tensors(featurizer, X))
    assert out.shape == (7, net.out_dim)
    assert torch.isfinite(out).all()
    # every parameter belongs to exactly one block
    in_blocks = [id(p) for block in net.blocks for p in block.parameters()]
    assert len(in_blocks) == len(set(in_blocks))
    assert set(in_blocks) == {id(p) for p in net.parameters()}


def test_no_batchnorm_and_opacus_validates(featurizer: Featurizer, encoder_name: str) -> None:
    from opacus.validators import ModuleValidator

    clf = EncoderClassifier(_network(featurizer, encoder_name), head_hidden=8).train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in clf.modules())
    assert ModuleValidator.validate(clf, strict=False) == []
    assert clf.blocks == clf.network.blocks
    assert isinstance(clf.head, nn.Module)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_no_cross_row_coupling(featurizer: Featurizer, encoder_name: str, mode: str) -> None:
    """One record's output does not depend on the other records of its batch."""
    net = _network(featurizer, encoder_name)
    net.train(mode == "train")
    X_a, _ = make_frame(16, seed=10)
    X_b, _ = make_frame(16, seed=11)
    X_b.iloc[0] = X_a.iloc[0]  # the same first record, different companions
    with torch.no_grad():
        out_a = net(*_tensors(featurizer, X_a))
        out_b = net(*_tensors(featurizer, X_b))
        alone = net(*_tensors(featurizer, X_a.iloc[:1]))
        X_a2 = X_a.copy()
        X_a2.iloc[5] = X_b.iloc[5]  # change one other record
        out_a2 = net(*_tensors(featurizer, X_a2))
    torch.testing.assert_close(out_a[0], out_b[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_a[:1], alone, atol=1e-5, rtol=1e-5)
    keep = [i for i in range(16) if i != 5]
    torch.testing.assert_close(out_a[keep], out_a2[keep], atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
def test_per_sample_gradients_match_a_naive_reference(
    featurizer: Featurizer, encoder_name: str
) -> None:
    """Opacus' per-sample gradients equal the gradient of each record computed alone."""
    from opacus import GradSampleModule

    clf = EncoderClassifier(_network(featurizer, encoder_name)).train()
    reference = copy.deepcopy(clf)
    X, _ = make_frame(5, seed=4)
    inputs = _tensors(featurizer, X)
    GradSampleModule(clf, batch_first=True, loss_reduction="sum")(*inputs).sum().backward()
    samples = [p.grad_sample.detach().clone() for p in clf.parameters()]
    params = list(reference.parameters())
    for i in range(5):
        out = reference(*(t[i : i + 1] for t in inputs)).sum()
        grads = torch.autograd.grad(out, params, allow_unused=True)
        for sample, grad in zip(samples, grads):
            expected = torch.zeros_like(sample[i]) if grad is None else grad
            # relative to the gradient's size; gradients that are zero in exact arithmetic
            # (e.g. an attention key bias) are float32 rounding noise on both sides
            scale = float(expected.abs().max())
            assert float((sample[i] - expected).abs().max()) < 1e-3 * scale + 1e-7


def test_config_is_json_and_round_trips(featurizer: Featurizer, encoder_name: str) -> None:
    net = _network(featurizer, encoder_name).eval()
    config = json.loads(json.dumps(net.config()))
    rebuilt = network_from_config(config).eval()
    rebuilt.load_state_dict(net.state_dict())
    X, _ = make_frame(9, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(*_tensors(featurizer, X)), net(*_tensors(featurizer, X)))
    clf = EncoderClassifier(net, head_hidden=4)
    clf2 = EncoderClassifier.from_config(json.loads(json.dumps(clf.config())))
    clf2.load_state_dict(clf.state_dict())


def test_subset_and_extra_columns(featurizer: Featurizer, encoder_name: str) -> None:
    """A target that lacks source columns and has its own: absent columns carry no
    information, new columns get trainable parameters, known columns keep theirs."""
    net = _network(featurizer, encoder_name)
    encoder = TabularEncoder(featurizer, net)
    target = encoder.with_columns(_target_columns())
    assert target.absent_columns_ == DROPPED
    assert target.network_.numeric_columns[-1] == "lab"
    assert target.network_.categorical_columns[-1] == "site"
    assert encoder.network_.absent == []  # the original is unchanged
    X = _target_frame()
    emb = target.embed(X)
    assert emb.shape == (len(X), net.out_dim)
    assert np.isfinite(emb).all()

    # absent columns carry no information, even if values show up in their positions
    tnet = target.network_.eval()
    numeric, missing, categorical = _tensors(target.featurizer_, X)
    j = target.featurizer_.numeric_columns_.index("x2")
    k = target.featurizer_.categorical_columns_.index("c1")
    numeric2, missing2, categorical2 = numeric.clone(), missing.clone(), categorical.clone()
    numeric2[:, j], missing2[:, j], categorical2[:, k] = 3.0, False, 3
    with torch.no_grad():
        torch.testing.assert_close(
            tnet(numeric, missing, categorical), tnet(numeric2, missing2, categorical2)
        )

    # new columns receive gradients, so they can be trained on the target
    clf = EncoderClassifier(tnet).train()
    clf(numeric, missing, categorical).sum().backward()
    if isinstance(tnet, TabNetNetwork):
        # the new columns are the last inputs of every first GLU layer
        width = 2 + tnet.config()["cat_emb_dim"]
        fc = tnet.encoder.initial_splitter.specifics.glu_layers[0].fc
        assert float(fc.weight.grad[:, -width:].abs().sum()) > 0
        assert float(fc.weight.detach()[:, -width:].abs().sum()) == 0  # zero-initialised
    else:
        new_params = [p for n, p in clf.named_parameters() if "c_lab_" in n or "c_site_" in n]
        assert len(new_params) == 3  # Linear(2, d) weight and bias, one embedding
        assert all(float(p.grad.abs().sum()) > 0 for p in new_params)

    # a known column keeps its pretrained parameters
    old = dict(net.named_parameters())
    new = dict(target.network_.named_parameters())
    shared = [n for n in old if old[n].shape == new[n].shape]
    assert shared and all(torch.equal(old[n], new[n]) for n in shared)


def test_new_columns_change_the_embedding(featurizer: Featurizer, encoder_name: str) -> None:
    target = TabularEncoder(featurizer, _network(featurizer, encoder_name)).with_columns(
        _target_columns()
    )
    with torch.no_grad():
        for p in target.network_.parameters():  # zero-initialised inputs would hide the column
            p.add_(0.01 * torch.randn_like(p))
    X = _target_frame()
    X2 = X.assign(lab=10.0 - X["lab"])
    assert not np.allclose(target.embed(X), target.embed(X2))


def test_with_columns_errors(featurizer: Featurizer) -> None:
    encoder = TabularEncoder(featurizer, _network(featurizer, "mlp"))
    with pytest.raises(EncoderError, match="x0"):
        encoder.with_columns([{"name": "x0", "kind": "categorical", "categories": ["a"]}])
    with pytest.raises(Exception, match="bounds"):
        encoder.with_columns([{"name": "lab", "kind": "numeric"}])
    with pytest.raises(EncoderError, match="not input columns"):
        encoder.network_.set_absent(["nope"])


def test_layout_must_match_the_featurizer(featurizer: Featurizer) -> None:
    other = Featurizer().fit(make_frame(50, seed=0)[0], columns()[:3])
    with pytest.raises(EncoderError, match="layout"):
        TabularEncoder(other, _network(featurizer, "mlp"))
    net = _network(featurizer, "mlp")
    with pytest.raises(EncoderError, match="does not extend"):
        net.add_columns(other)


def test_ft_missing_drop_equals_absent_column(featurizer: Featurizer) -> None:
    """With missing="drop", a missing value is masked out of attention: the record's embedding
    is the one it would have if the column were not recorded at all."""
    net = _network(featurizer, "ft-transformer", missing="drop").eval()
    X, _ = make_frame(6, seed=7)
    X["x3"] = np.nan
    X["c0"] = None
    inputs = _tensors(featurizer, X)
    absent = copy.deepcopy(net).set_absent(["x3", "c0"])
    with torch.no_grad():
        torch.testing.assert_close(net(*inputs), absent(*inputs))
    token = _network(featurizer, "ft-transformer").eval()
    with torch.no_grad():
        assert not torch.allclose(token(*inputs), copy.deepcopy(token).set_absent(["x3"])(*inputs))


def test_ft_rejects_bad_params() -> None:
    with pytest.raises(EncoderError, match="divide"):
        FTTransformer(["a"], [], {}, d_token=10, n_heads=3)
    with pytest.raises(EncoderError, match="missing"):
        FTTransformer(["a"], [], {}, missing="mean")
    with pytest.raises(EncoderError, match="cardinality"):
        FTTransformer([], ["c"], {})


def test_tabnet_refuses_shared_layers() -> None:
    with pytest.raises(EncoderError, match="n_shared"):
        TabNetNetwork(["a"], [], {}, n_shared=1)


def test_tabnet_masks_are_per_column(featurizer: Featurizer) -> None:
    net = _network(featurizer, "tabnet").eval()
    X, _ = make_frame(10, seed=8)
    with torch.no_grad():
        importance, steps = net.masks(*_tensors(featurizer, X))
    n_cols = len(featurizer.feature_names_in_)
    assert importance.shape == (10, n_cols)
    assert len(steps) == SMALL_PARAMS["tabnet"]["n_steps"]
    for mask in steps:
        torch.testing.assert_close(mask.sum(dim=1), torch.ones(10))
    attention = TabularEncoder(featurizer, net).feature_attention(X)
    assert list(attention.columns) == net.input_order
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(EncoderError, match="TabNet"):
        TabularEncoder(featurizer, _network(featurizer, "mlp")).feature_attention(X)


def test_state_round_trip_of_an_adapted_encoder(featurizer: Featurizer, encoder_name: str) -> None:
    target = TabularEncoder(featurizer, _network(featurizer, encoder_name)).with_columns(
        _target_columns()
    )
    tensors, meta = target.to_state()
    restored = TabularEncoder.from_state(tensors, json.loads(json.dumps(meta)))
    X = _target_frame()
    np.testing.assert_array_equal(restored.embed(X), target.embed(X))
    assert restored.absent_columns_ == DROPPED
    assert restored.featurizer_.vocabularies_["site"] == ["north", "south"]
    assert CATEGORIES == restored.featurizer_.vocabularies_["c0"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_keeps_rows_independent(
    featurizer: Featurizer, encoder_name: str
) -> None:
    net = _network(featurizer, encoder_name).train()
    clf = EncoderClassifier(net)
    X, _ = make_frame(16, seed=12)
    cpu_inputs = _tensors(featurizer, X)
    with torch.no_grad():
        expected = clf(*cpu_inputs)
    clf.cuda()
    gpu_inputs = featurizer.transform(X).to_tensors("cuda")
    with torch.no_grad():
        out = clf(*gpu_inputs)
        alone = clf(*(t[:1] for t in gpu_inputs))
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(out[:1], alone, atol=1e-4, rtol=1e-3)
    clf(*gpu_inputs).sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in clf.parameters() if p.requires_grad)
