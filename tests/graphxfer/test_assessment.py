"""Measurements and audits take a fitted model and return results; they never change it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
from graphxfer import Cohort, Schema, TransferClassifier
from graphxfer.assessment import audit_model, measure
from graphxfer.exceptions import NotFittedError


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cohort(n: int, seed: int) -> Cohort:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["y"] = (X[:, 0] + X[:, 1] + rng.normal(size=n) > 0).astype(int)
    schema = Schema.infer(frame, target="y")
    return Cohort(frame, schema, name=f"synthetic-{seed}")


@pytest.fixture(scope="module")
def data() -> dict[str, Cohort]:
    return {"source": _cohort(160, 0), "train": _cohort(80, 1), "test": _cohort(60, 2)}


@pytest.fixture(scope="module")
def model(data: dict[str, Cohort]) -> TransferClassifier:
    encoder = graphxfer.pretrain(
        data["source"], encoder="mlp", epochs=1, encoder_params={"width": 8, "n_blocks": 1},
        random_state=0, progress=False, device="cpu",
    )  # fmt: skip
    clf = TransferClassifier(encoder, strategy="linear-probe", epochs=2, random_state=0,
                             device="cpu")  # fmt: skip
    return clf.fit(data["train"])


def _snapshot(model: TransferClassifier) -> dict[str, Any]:
    """Everything a fitted model holds: its attributes and its network's tensors."""
    skip = ("encoder", "encoder_", "module_", "adapter_")
    state = {k: v for k, v in vars(model).items() if k not in skip}
    tensors = {k: v.detach().clone() for k, v in model.module_.state_dict().items()}
    return {
        "attributes": copy.deepcopy(state),
        "names": sorted(vars(model)),
        "tensors": tensors,
        "adapter": model.adapter_.to_dict(),
        "objects": (model.encoder, model.encoder_, model.module_, model.adapter_),
    }


def _same(before: dict[str, Any], model: TransferClassifier) -> None:
    after = _snapshot(model)
    assert after["names"] == before["names"]
    assert all(a is b for a, b in zip(after["objects"], before["objects"], strict=True))
    assert after["adapter"] == before["adapter"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, value in before["tensors"].items():
        assert torch.equal(after["tensors"][name], value), name
    for name, value in before["attributes"].items():
        if isinstance(value, (pd.DataFrame, np.ndarray)):
            np.testing.assert_array_equal(np.asarray(after["attributes"][name]), np.asarray(value))
        elif not callable(value):
            assert after["attributes"][name] == value, name


def test_measure_returns_metrics_and_leaves_the_model_alone(
    model: TransferClassifier, data: dict[str, Cohort]
) -> None:
    before = _snapshot(model)
    out = measure(model, data["test"], n_boot=20, on="external")
    _same(before, model)
    assert not hasattr(model, "metrics_") and model.evaluation() is None
    assert [m["name"] for m in out] == ["auroc", "auprc", "brier", "ece"]
    assert all(m["on"] == "external" and m["n"] == 60 and m["private"] is False for m in out)
    # the estimator keeps exactly what the function returns
    kept = model.add_metrics(data["test"], n_boot=20, on="external")
    assert kept == out and model.metrics_ == out
    again = measure(model, data["test"].X, data["test"].y, n_boot=20, on="external")
    assert again == out  # a DataFrame with y is the same records
    del model.metrics_


def test_audit_model_returns_the_audit_and_leaves_the_model_alone(
    model: TransferClassifier, data: dict[str, Cohort]
) -> None:
    before = _snapshot(model)
    result = audit_model(model, data["train"], data["test"])
    _same(before, model)
    assert not hasattr(model, "audit_")
    assert 0.0 <= result["attack_auc"] <= 1.0 and result["claimed_epsilon"] is None
    assert model.audit(data["train"], data["test"]) == result == model.audit_
    record = model.evaluation()
    assert record is not None and record["audit"] == result and record["metrics"] == []
    del model.audit_


def test_refitting_drops_the_measurements_of_the_previous_fit(
    model: TransferClassifier, data: dict[str, Cohort]
) -> None:
    twin = TransferClassifier(**model.get_params()).fit(data["train"])
    twin.add_metrics(data["test"], n_boot=10)
    assert twin.evaluation() is not None
    twin.fit(data["train"])
    assert not hasattr(twin, "metrics_") and twin.evaluation() is None


def test_an_unfitted_model_cannot_be_measured(
    model: TransferClassifier, data: dict[str, Cohort]
) -> None:
    unfitted = TransferClassifier(**model.get_params())
    with pytest.raises(NotFittedError):
        measure(unfitted, data["test"])
    with pytest.raises(NotFittedError):
        audit_model(unfitted, data["train"], data["test"])
