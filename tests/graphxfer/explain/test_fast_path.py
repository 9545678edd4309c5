"""The fast inference path of the Shapley methods on transfer models.

Records and background rows are translated into the network's per-column inputs once; masked
rows are assembled from them and run through the fine-tuned network. Its outputs must be
``predict_proba``'s, and explanations through it must be those through ``predict_proba``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from graphxfer.explain._codec import FeatureCodec, model_columns
from graphxfer.explain._methods import ExplainTask, row_function
from graphxfer.explain._rows import FrameRows, TorchRows
from graphxfer.explain.explain import explain_details

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


@pytest.fixture(scope="module", params=["ft-transformer", "mlp"])
def transfer(request: pytest.FixtureRequest) -> tuple[Any, pd.DataFrame]:
    import graphxfer as gx
    from graphxfer import datasets

    heart = datasets.load_heart_disease()
    params = {"d_token": 16, "n_heads": 2} if request.param == "ft-transformer" else {"width": 16}
    encoder = gx.pretrain(
        heart.select_groups(["cleveland", "hungarian"]), request.param, epochs=2,
        encoder_params=params, progress=False, random_state=0, device="cpu",
    )  # fmt: skip
    target = heart.select_groups("va")
    clf = gx.TransferClassifier(
        encoder, strategy="lp-ft", epochs=2, random_state=0, device="cpu"
    ).fit(target)
    return clf, clf.transform_features(heart.X.iloc[::23])  # 40 records, missing values too


class Opaque:
    """The same model without its per-column path: explained through predict_proba."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.feature_schema_ = model.feature_schema_
        self.background_ = model.background_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba_features(X)


def _task(model: Any, frame: pd.DataFrame, link: str = "identity") -> ExplainTask:
    background = model.background_
    codec = FeatureCodec.build(model_columns(model, frame), [frame, background])
    return ExplainTask(
        model=model, codec=codec, frame=frame, matrix=codec.encode(frame),
        background=background, background_matrix=codec.encode(background), link=link,
        max_evals=None, seed=0, progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("link", ["identity", "logit"])
def test_masked_rows_through_the_fast_path_equal_predict_proba(transfer, link) -> None:
    model, frame = transfer
    task = _task(model, frame, link)
    fast, how = row_function(task)
    assert isinstance(fast, TorchRows) and "per-column inputs" in how
    reference = FrameRows(model, task.codec, link, task.matrix, task.background_matrix)
    rng = np.random.default_rng(0)
    n = 3000
    records = rng.integers(0, len(frame), n)
    rows = rng.integers(0, len(task.background), n)
    take = rng.random((n, task.n_features)) < rng.random((n, 1))
    np.testing.assert_allclose(
        fast.proba(records, rows, take),
        to_probability(reference(records, rows, take), link),
        rtol=0, atol=1e-6,
    )  # fmt: skip


def to_probability(values: np.ndarray, link: str) -> np.ndarray:
    return values if link == "identity" else 1 / (1 + np.exp(-values))


def test_a_model_without_the_path_goes_through_predict_proba(transfer) -> None:
    model, frame = transfer
    rows, how = row_function(_task(Opaque(model), frame))
    assert isinstance(rows, FrameRows) and "predict_proba" in how


@pytest.mark.parametrize("method", ["permutation", "exact"])
def test_explanations_through_either_path_agree(transfer, method) -> None:
    model, frame = transfer
    frame = pd.concat([frame.iloc[:4], frame.iloc[[1]]])  # with a repeated record
    kwargs: dict[str, Any] = {"random_state": 0, "progress": False}
    if method == "exact":  # 2**13 coalitions: a small background
        kwargs["n_background"] = 3
    fast, info = explain_details(model, frame, method, **kwargs)
    slow, _ = explain_details(Opaque(model), frame, method, **kwargs)
    np.testing.assert_allclose(fast.values, slow.values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.base_values, slow.base_values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(fast.values[1], fast.values[4])  # identical records
    total = fast.base_values + fast.values.sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(frame)[:, 1], rtol=0, atol=1e-6)
    if method == "permutation":
        assert info.summary.startswith("split")


class Mixing:
    """A torch model whose internal inputs mix the columns (a rotation of the one-hot and
    standardised inputs): right on whole records, wrong for per-column assembly."""

    def __init__(self, model: Any) -> None:
        import torch

        self.model = model
        self.feature_schema_ = model.feature_schema_
        self.background_ = model.background_
        width = sum(len(g) for g in model.groups_.values())
        rotation, _ = torch.linalg.qr(
            torch.randn(width, width, generator=torch.Generator().manual_seed(0)).double()
        )
        self.rotation = rotation
        undo = torch.nn.Linear(width, width, bias=False).double()
        with torch.no_grad():
            undo.weight.copy_(rotation)  # (x @ R) @ R.T == x: the rotation undone
        self.module_ = torch.nn.Sequential(undo, model.module_)

    def encode(self, X: pd.DataFrame) -> Any:
        return self.model.encode(X) @ self.rotation

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X)

    def torch_explain_parts(self) -> dict[str, Any]:
        return {"module": self.module_, "encode": self.encode, "groups": self.model.groups_}


def test_inputs_that_mix_columns_are_not_assembled_per_column(models, small_cohort) -> None:
    plain = models["torch"]
    frame = small_cohort.X.iloc[:10]
    fast, _ = row_function(_task(plain, frame))
    assert isinstance(fast, TorchRows)  # one-hot and standardised inputs: per column
    mixing = Mixing(plain)
    task = _task(mixing, frame)
    rows, how = row_function(task)
    assert isinstance(rows, FrameRows) and "predict_proba" in how
    explanation = explain_details(mixing, frame, "exact", progress=False)[0]
    expected = explain_details(plain, frame, "exact", progress=False)[0]
    np.testing.assert_allclose(explanation.values, expected.values, rtol=0, atol=1e-10)
