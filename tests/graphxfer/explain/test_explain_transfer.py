"""The transfer model as a whole (encoder + fine-tuned head) is explained and reported."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
    ),
]


@pytest.fixture(scope="module")
def transfer():
    transfer = pytest.importorskip("graphxfer.transfer")
    encoder_module = pytest.importorskip("graphxfer.encoder")
    from graphxfer.datasets import load_heart_disease

    heart = load_heart_disease()
    encoder = encoder_module.pretrain(
        heart.select_groups(["cleveland", "hungarian"]),
        "mlp",
        epochs=3,
        progress=False,
        random_state=0,
    )
    target = heart.select_groups("va")
    model = transfer.TransferClassifier(
        encoder, strategy="linear-probe", epochs=5, random_state=0, device="cpu"
    ).fit(target)
    return model, target


def test_transfer_model_is_additive(transfer):
    from graphxfer.explain import PROBABILITY
    from graphxfer.explain.explain import explain_details

    model, target = transfer
    X = target.X.iloc[:3]
    explanation, info = explain_details(model, X, n_background=20, random_state=0, progress=False)
    assert info.method == "permutation"  # 13 columns
    assert "background_" in info.background  # the source sample the model carries
    assert explanation.output_names == PROBABILITY
    assert list(explanation.feature_names) == model.feature_schema_.feature_names
    total = explanation.base_values + explanation.values.sum(axis=1)
    # the fine-tuned network computes in float32
    np.testing.assert_allclose(total, model.predict_proba(X)[:, 1], rtol=0, atol=1e-6)


def test_transfer_model_report(transfer, tmp_path):
    from graphxfer.report import report

    model, target = transfer
    path = report(model, target, tmp_path / "va.html", n_global=4, records=[0], progress=False)
    html = path.read_text(encoding="utf-8")
    assert "Selected records" in html and "record 1" in html
    assert "<script" not in html.lower()
