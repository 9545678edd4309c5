"""One dict of fitted state: fit and load_model restore a model from it; files carry the
target adapter, and files written before it was stored still load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
from graphxfer import Cohort, Schema, TransferClassifier
from graphxfer.exceptions import ModelFileError
from graphxfer.model_io import FITTED, fitted_state, load_model, restore
from graphxfer.modelfile import read_model_file, write_model_file
from graphxfer.modelfile._format import RESERVED


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["y"] = (X[:, 0] - X[:, 1] + rng.normal(size=n) > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def model() -> TransferClassifier:
    source = _frame(160, 0)
    encoder = graphxfer.pretrain(
        Cohort(source, Schema.infer(source, target="y"), name="source"), encoder="mlp",
        epochs=1, encoder_params={"width": 8, "n_blocks": 1}, random_state=0,
        progress=False, device="cpu",
    )  # fmt: skip
    target = _frame(80, 1).rename(columns={"a": "a_tenths"})
    target["a_tenths"] *= 10  # the target records column a in tenths
    clf = TransferClassifier(
        encoder, strategy="linear-probe", epochs=2, random_state=0, device="cpu",
        mapping={"a_tenths": "a"}, convert={"a": 0.1},
    )  # fmt: skip
    return clf.fit(target.drop(columns=["y"]), target["y"])


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    data = _frame(30, 2).drop(columns=["y"]).rename(columns={"a": "a_tenths"})
    return data.assign(a_tenths=data["a_tenths"] * 10)


def test_a_model_restored_from_its_fitted_state_predicts_the_same(
    model: TransferClassifier, records: pd.DataFrame
) -> None:
    state = fitted_state(model)
    assert set(state) == {*FITTED, "make_inputs"}
    twin = restore(TransferClassifier(**model.get_params()), state)
    np.testing.assert_array_equal(twin.predict_proba(records), model.predict_proba(records))
    assert list(twin.feature_names_in_) == ["a", "b", "c"] and twin.n_features_in_ == 3
    with pytest.raises(KeyError, match="make_inputs"):
        restore(TransferClassifier(), {k: v for k, v in state.items() if k != "make_inputs"})


def test_the_model_file_carries_the_adapter(
    model: TransferClassifier, records: pd.DataFrame, tmp_path: Path
) -> None:
    path = model.save(tmp_path / "m")
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    assert meta["adapter"] == model.adapter_.to_dict()
    loaded = load_model(path)
    assert loaded.adapter_.to_dict() == model.adapter_.to_dict()
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))
    pd.testing.assert_frame_equal(
        loaded.transform_features(records), model.transform_features(records)
    )
    # the conversion applies once: model-space records are not converted again
    space = model.transform_features(records)
    np.testing.assert_allclose(space["a"], records["a_tenths"] / 10)
    np.testing.assert_array_equal(loaded.predict_proba(space), model.predict_proba(records))


def _rewrite(path: Path, change: object) -> None:
    tensors, meta = read_model_file(path, kind="model")
    meta = {k: v for k, v in meta.items() if k not in (*RESERVED, "extra_file_bytes")}
    change(meta)  # type: ignore[operator]
    write_model_file(path, tensors, meta, kind="model", overwrite=True)


def test_a_file_written_before_the_adapter_was_stored_still_loads(
    model: TransferClassifier, records: pd.DataFrame, tmp_path: Path
) -> None:
    path = model.save(tmp_path / "old")
    _rewrite(path, lambda meta: meta.pop("adapter"))
    loaded = load_model(path)
    # such files do not say which columns the training records had
    expected = {**model.adapter_.to_dict(), "observed_columns": None}
    assert loaded.adapter_.to_dict() == expected
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))


def test_an_unreadable_adapter_is_a_model_file_error(
    model: TransferClassifier, tmp_path: Path
) -> None:
    path = model.save(tmp_path / "bad")
    _rewrite(path, lambda meta: meta["adapter"].update(version=99))
    with pytest.raises(ModelFileError, match="not a target adapter"):
        load_model(path)
