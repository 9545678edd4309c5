"""Explanations as a table and as CSV / JSON files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graphxfer.explain import ExplanationError, explain, explanation_frame, export_explanations

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


@pytest.fixture(scope="module")
def explained(models, small_cohort):
    X = small_cohort.X.iloc[:6]
    model = models["sklearn"]
    return explain(model, X, progress=False), model.predict_proba(X)[:, 1], small_cohort.ids[:6]


def test_frame_layout(explained):
    explanation, predictions, _ = explained
    frame = explanation_frame(explanation, predictions)
    names = ["x0", "x1", "x2", "smoker", "colour"]
    assert list(frame.columns) == [
        "prediction",
        "scale",
        "base_value",
        "output",
        *(f"shap:{n}" for n in names),
        *(f"value:{n}" for n in names),
    ]
    np.testing.assert_allclose(frame["output"], predictions, atol=1e-6)
    np.testing.assert_allclose(frame["shap:x0"], explanation.values[:, 0])
    assert frame["scale"].iloc[0] == "probability of the positive class"
    assert "id" not in frame.columns


def test_ids_only_when_given(explained):
    explanation, predictions, ids = explained
    frame = explanation_frame(explanation, predictions, ids=ids)
    assert list(frame["id"]) == list(ids)
    with pytest.raises(ExplanationError, match="ids"):
        explanation_frame(explanation, predictions, ids=ids[:2])
    with pytest.raises(ExplanationError, match="predictions"):
        explanation_frame(explanation, predictions[:2])


def test_csv_and_json_match(explained, tmp_path):
    explanation, predictions, ids = explained
    csv_path, json_path = export_explanations(explanation, predictions, tmp_path / "out", ids=ids)
    assert csv_path.name == "out.csv" and json_path.name == "out.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.json"]  # no temp files
    table = pd.read_csv(csv_path)
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert document["scale"] == explanation.output_names
    assert document["feature_names"] == list(explanation.feature_names)
    assert len(document["records"]) == len(table) == 6
    for row, record in zip(table.to_dict(orient="records"), document["records"]):
        assert record["id"] == row["id"]
        assert record["prediction"] == pytest.approx(row["prediction"], abs=1e-15)
        for name in document["feature_names"]:
            assert record["attributions"][name] == pytest.approx(row[f"shap:{name}"], abs=1e-15)
            value = row[f"value:{name}"]
            if pd.isna(value):
                assert record["values"][name] is None
            else:
                assert str(record["values"][name]) == str(value)
    total = np.array(
        [r["base_value"] + sum(r["attributions"].values()) for r in document["records"]]
    )
    np.testing.assert_allclose(total, predictions, atol=1e-6)


def test_missing_values_are_null(models, small_cohort, tmp_path):
    X = small_cohort.X
    rows = X.index[X["x0"].isna()][:2]
    explanation = explain(models["sklearn"], X.loc[rows], progress=False)
    _, json_path = export_explanations(explanation, [0.5, 0.5], tmp_path / "m")
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert [r["values"]["x0"] for r in document["records"]] == [None, None]
    assert "id" not in document["records"][0]
