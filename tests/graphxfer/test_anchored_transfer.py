"""The anchored strategy, DP hyper-parameters from presets, and the private transfer guard."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import graphxfer as gx
from graphxfer import datasets
from graphxfer.tuning import default_hyperparameters, lookup_presets
from privacy import PrivacyConfig


@pytest.fixture(scope="module")
def heart():
    return datasets.load_heart_disease()


@pytest.fixture(scope="module")
def linear_encoder(heart):
    source = heart.select_groups(["cleveland", "hungarian"])
    return gx.pretrain(source, "linear", "supervised", progress=False, random_state=0)


@pytest.fixture(scope="module")
def target(heart):
    return heart.select_groups("va").split(test_size=0.7, random_state=0)


def test_supervised_pretraining_stores_the_source_head_precision(linear_encoder) -> None:
    stored = linear_encoder.metadata["head_precision"]
    k = stored["dim"]
    mat = np.asarray(stored["values"]).reshape(k, k)
    assert stored["n_source"] == 597
    assert np.allclose(mat, mat.T)
    assert np.linalg.eigvalsh(mat).min() > -1e-8  # a Fisher matrix is positive semi-definite


def test_a_very_strong_prior_gives_back_the_source_model(linear_encoder, target) -> None:
    train, test = target
    clf = gx.TransferClassifier(linear_encoder, alpha=1e9, random_state=0).fit(train)
    assert clf.strategy == "anchored"
    expected = linear_encoder.predict_proba(test)
    assert np.allclose(clf.predict_proba(test)[:, 1], expected, atol=1e-5)


def test_non_private_anchored_fit_is_the_penalised_optimum(linear_encoder, target) -> None:
    from graphxfer.anchoring import _head_inputs

    train, _ = target
    clf = gx.TransferClassifier(linear_encoder, alpha=0.5, random_state=0).fit(train)
    module = clf.module_
    head = module.head
    inputs = clf._make_inputs(clf.transform_features(train))
    z = _head_inputs(module, inputs, 4096).float()
    c = torch.cat([head.correction.weight.reshape(-1), head.correction.bias]).detach()
    c.requires_grad_(True)
    d = z.shape[1]
    logit = F.linear(z, head.source_weight, head.source_bias).reshape(-1)
    logit = logit + z @ c[:d] + c[d]
    y = torch.as_tensor(train.y, dtype=torch.float32)
    from graphxfer.anchoring import anchor_for, stored_precision

    anchor = anchor_for(module, stored_precision(linear_encoder), n_target=len(y), alpha=0.5)
    prec = anchor.groups[0].precision
    total = F.binary_cross_entropy_with_logits(logit, y) + 0.5 * anchor.strength * (c @ prec @ c)
    (grad,) = torch.autograd.grad(total, c)
    assert float(grad.norm()) < 1e-4
    assert float(c.detach().norm()) > 1e-3  # the target moved the model


def _presets(prior: dict[str, float]) -> dict:
    return {
        "entries": [
            {
                "n": 50,
                "epsilon": 1.0,
                "hyperparameters": default_hyperparameters(50),
                "simulated": {"fine-tuned": 0.7, "zero-shot": 0.7, "target-only": 0.7},
                "prior": prior,
            }
        ]
    }


EVEN = {"fine-tuned": 1.0, "zero-shot": 1.0, "target-only": 1.0}


@pytest.mark.slow  # PRV calibration of three releases: tens of seconds on 2 cores
def test_private_defaults_work_at_n_50_and_the_guard_stays_inside_epsilon(heart) -> None:
    source = heart.select_groups(["cleveland", "hungarian"])
    enc = gx.pretrain(source, "linear", "supervised", progress=False, random_state=0)
    enc.metadata["dp_presets"] = _presets(EVEN)
    train, test = heart.select_groups("va").split(test_size=0.75, random_state=1)
    assert len(train) == 50
    clf = gx.TransferClassifier(enc, privacy=PrivacyConfig(epsilon=1.0), random_state=0)
    clf.fit(train)
    check = clf.transfer_check_
    assert check["ran"] and check["private"]
    assert check["chosen"] in check["candidates"] == ["fine-tuned", "zero-shot", "target-only"]
    purposes = [e.purpose for e in clf.ledger_.entries]
    assert purposes == [
        "fine-tune:linear-probe",
        "transfer-guard:target-only",
        "transfer-guard:selection",
    ]
    total = clf.ledger_.total_spent()
    assert total.epsilon <= 1.0 + 1e-9
    assert clf.hyperparameters_["batch_size"] <= 50
    assert clf.model_card()["hyperparameters"]["epsilon_fine_tune"] == pytest.approx(0.8)
    p = clf.predict_proba(test)[:, 1]
    assert np.all((p > 0) & (p < 1))


def test_without_presets_the_guard_chooses_between_source_and_fine_tuned(
    linear_encoder, heart
) -> None:
    train, _ = heart.select_groups("va").split(test_size=0.75, random_state=1)
    config = PrivacyConfig(epsilon=1.0, accountant="rdp")
    clf = gx.TransferClassifier(linear_encoder, privacy=config, random_state=0).fit(train)
    assert "dp_presets" not in linear_encoder.metadata
    assert clf.transfer_check_["candidates"] == ["fine-tuned", "zero-shot"]
    assert clf.hyperparameters_["epsilon_guard_selection"] == pytest.approx(0.2)
    assert clf.hyperparameters_["source"].startswith("defaults for small targets")
    assert [e.purpose for e in clf.ledger_.entries] == [
        "fine-tune:linear-probe",
        "transfer-guard:selection",
    ]


def test_the_guard_drops_a_candidate_the_accountant_cannot_train(linear_encoder, heart) -> None:
    # RDP cannot reach the target-only share (0.1 of epsilon = 1): that candidate is refused
    # before any step and left out; the selection is still paid and recorded
    enc = copy.deepcopy(linear_encoder)
    enc.metadata["dp_presets"] = _presets(EVEN)
    train, _ = heart.select_groups("va").split(test_size=0.75, random_state=1)
    config = PrivacyConfig(epsilon=1.0, accountant="rdp")
    clf = gx.TransferClassifier(enc, privacy=config, random_state=0).fit(train)
    assert clf.transfer_check_["candidates"] == ["fine-tuned", "zero-shot"]
    assert clf.transfer_check_["epsilon_target_only"] == 0.0
    assert [e.purpose for e in clf.ledger_.entries] == [
        "fine-tune:linear-probe",
        "transfer-guard:selection",
    ]
    assert clf.ledger_.total_spent().epsilon <= 1.0


def test_the_guard_follows_a_public_prior_and_ships_what_it_chose(heart, tmp_path) -> None:
    source = heart.select_groups(["cleveland", "hungarian"])
    enc = gx.pretrain(source, "linear", "supervised", progress=False, random_state=0)
    hp = default_hyperparameters(50)
    enc.metadata["dp_presets"] = {
        "entries": [
            {
                "n": 50,
                "epsilon": 1.0,
                "hyperparameters": hp,
                "simulated": {"fine-tuned": 0.6, "zero-shot": 0.7, "target-only": 0.5},
                # a prior with all its mass on the zero-shot model: the choice is forced
                "prior": {"fine-tuned": 0.0, "zero-shot": 1.0, "target-only": 0.0},
            }
        ]
    }
    train, test = heart.select_groups("va").split(test_size=0.75, random_state=2)
    clf = gx.TransferClassifier(enc, privacy=PrivacyConfig(epsilon=1.0), random_state=0)
    clf.fit(train)
    assert clf.transfer_check_["chosen"] == "zero-shot"
    # the target-only candidate cannot win under this prior: it is not trained, nothing spent
    assert [e.purpose for e in clf.ledger_.entries] == [
        "fine-tune:linear-probe",
        "transfer-guard:selection",
    ]
    assert clf.hyperparameters_["epsilon_guard_selection"] == pytest.approx(0.2)
    assert np.allclose(clf.predict_proba(test)[:, 1], enc.predict_proba(test), atol=1e-6)
    clf.save(tmp_path / "m")
    back = gx.load_model(tmp_path / "m")
    assert np.allclose(back.predict_proba(test), clf.predict_proba(test))


def test_lookup_presets_prefers_nearby_sizes_and_smaller_epsilons() -> None:
    def entry(n, eps):
        return {"n": n, "epsilon": eps, "hyperparameters": {"tag": (n, eps)}}

    presets = {"entries": [entry(n, e) for n in (50, 200) for e in (1.0, 3.0, None)]}
    assert lookup_presets(presets, 60, 1.0)["hyperparameters"]["tag"] == (50, 1.0)
    assert lookup_presets(presets, 150, 2.0)["hyperparameters"]["tag"] == (200, 1.0)
    assert lookup_presets(presets, 150, 5.0)["hyperparameters"]["tag"] == (200, 3.0)
    assert lookup_presets(presets, 150, 0.5)["hyperparameters"]["tag"] == (200, 1.0)
    assert lookup_presets(presets, 40, None)["hyperparameters"]["tag"] == (50, None)
    assert lookup_presets(None, 40, 1.0) is None
    assert lookup_presets({"entries": [entry(50, None)]}, 40, 1.0) is None


def test_guard_options_are_validated(linear_encoder, target) -> None:
    train, _ = target
    for bad in ({"guard_fraction": 1.5}, {"alpha": -1.0}, {"dp_hyperparameters": "x"}):
        with pytest.raises(gx.exceptions.GraphxferError):
            gx.TransferClassifier(linear_encoder, **bad).fit(train)
    clf = copy.deepcopy(gx.TransferClassifier(linear_encoder))
    assert clf.get_params()["strategy"] == "anchored"


def test_anchoring_a_self_supervised_encoder_starts_from_no_source_logit(heart) -> None:
    source = heart.select_groups(["cleveland", "hungarian"])
    enc = gx.pretrain(source, "mlp", "masked", epochs=1, progress=False, random_state=0)
    assert enc.source_head is None
    train, _ = heart.select_groups("va").split(test_size=0.75, random_state=1)
    config = PrivacyConfig(epsilon=1.0, accountant="rdp")
    clf = gx.TransferClassifier(enc, privacy=config, random_state=0).fit(train)
    head = clf.module_.head
    assert float(head.source_weight.abs().sum()) == 0.0 and float(head.source_bias) == 0.0
    # no source model to ship: the guard chooses among what the target paid for
    assert "zero-shot" not in clf.transfer_check_["candidates"]


def test_the_head_precision_is_saved_as_weights_not_json(linear_encoder, target, tmp_path) -> None:
    import json

    from graphxfer.encoder._encoder import PRECISION_TENSOR
    from graphxfer.modelfile import read_model_file

    path = linear_encoder.save(tmp_path / "enc")
    tensors, meta = read_model_file(path, kind="encoder")
    stored = meta["metadata"]["head_precision"]
    assert "values" not in stored and stored["values_tensor"] == PRECISION_TENSOR
    assert tensors[PRECISION_TENSOR].dtype == torch.float64
    assert len(json.dumps(meta)) < 20_000  # the matrix is not in meta.json
    loaded = gx.load_encoder(path)
    assert loaded.metadata == linear_encoder.metadata  # values back, exactly
    # the in-memory encoder keeps its values
    assert "values" in linear_encoder.metadata["head_precision"]
    # a fitted model file carries the encoder's precision the same way
    train, test = target
    clf = gx.TransferClassifier(linear_encoder, alpha=0.5, random_state=0).fit(train)
    again = gx.load_model(clf.save(tmp_path / "model"))
    assert again.encoder_.metadata["head_precision"] == linear_encoder.metadata["head_precision"]
    assert np.allclose(again.predict_proba(test), clf.predict_proba(test))


def test_encoder_files_with_the_precision_in_json_still_load(linear_encoder, tmp_path) -> None:
    import copy

    from graphxfer.encoder import Encoder
    from graphxfer.modelfile import write_model_file

    tensors = linear_encoder.inner.to_state()[0]  # without the precision's weights
    _, meta = linear_encoder.to_state()
    meta["metadata"] = copy.deepcopy(linear_encoder.metadata)  # the earlier layout
    path = write_model_file(tmp_path / "old", tensors, meta, kind="encoder")
    loaded = gx.load_encoder(path)
    assert loaded.metadata["head_precision"] == linear_encoder.metadata["head_precision"]
    assert isinstance(loaded, Encoder)


def test_a_precision_without_its_weights_is_a_clear_error(linear_encoder, tmp_path) -> None:
    from graphxfer.encoder._encoder import PRECISION_TENSOR
    from graphxfer.exceptions import ModelFileError
    from graphxfer.modelfile import write_model_file

    tensors, meta = linear_encoder.to_state()
    del tensors[PRECISION_TENSOR]
    path = write_model_file(tmp_path / "broken", tensors, meta, kind="encoder")
    with pytest.raises(ModelFileError, match="head precision"):
        gx.load_encoder(path)
