"""Reports of a model that reads renamed and converted columns show them as the cohort has them,
and label the explanation sections as computed outside ε."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort, Column, Schema
from graphxfer.report import report
from tests.graphxfer.explain._models import SklearnModel, frame_of, make_data

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


class Renamed:
    """A model over ``x0`` whose users record it as ``x0_mmol`` (twice ``x0``): the fit's
    ``mapping={"x0_mmol": "x0"}`` and ``convert={"x0": 0.5}``, as a TransferClassifier holds
    them in ``adapter_``."""

    def __init__(self, source: Cohort) -> None:
        self.inner = SklearnModel(source)
        self.feature_schema_ = self.inner.feature_schema_
        self.background_ = self.inner.background_
        self.adapter_ = SimpleNamespace(
            translates=True, mapping={"x0_mmol": "x0"}, convert={"x0": 0.5}, recode=None
        )

    def transform_features(self, X: Any) -> pd.DataFrame:
        frame = frame_of(X)
        if "x0_mmol" in frame.columns:
            frame = frame.rename(columns={"x0_mmol": "x0"})
            frame["x0"] = frame["x0"] * 0.5
        return frame[[c.name for c in self.feature_schema_.features]]

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.inner.predict_proba(self.transform_features(X))


def _own_cohort(cohort: Cohort) -> Cohort:
    data = cohort.data.rename(columns={"x0": "x0_mmol"})
    data["x0_mmol"] = data["x0_mmol"] * 2
    columns = [
        Column("x0_mmol", unit="mmol/l") if c.name == "x0" else c for c in cohort.schema.columns
    ]
    return Cohort(data, Schema(columns))


def _text(path: Any) -> str:
    page = re.sub(r'src="data:[^"]+"', "", path.read_text())
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_records_show_the_cohorts_own_names_and_values(tmp_path) -> None:
    model = Renamed(make_data(200, seed=0))
    target = _own_cohort(make_data(12, seed=3))
    own = float(target.X["x0_mmol"].iloc[0])
    assert not np.isnan(own)
    path = report(
        model, target, tmp_path / "r.html", records=[0], max_evals=90, progress=False
    )  # fmt: skip
    page = _text(path)
    record = page[page.index("Largest attributions") :]
    # the record's row names the column as the cohort does, with the cohort's value
    assert re.search(rf"x0_mmol {re.escape(f'{own:.4g}')} ", record), record[:400]
    assert not re.search(r"\bx0 ", record)
    start = page.index("mean |SHAP|")
    importance = page[start : page.index("Selected records", start)]
    assert "x0_mmol" in importance and not re.search(r"\bx0 ", importance)
    assert "x0_mmol (the model's x0)" in page


def test_explanation_sections_say_they_are_not_covered_by_epsilon(tmp_path) -> None:
    source = make_data(200, seed=0)
    path = report(
        SklearnModel(source), make_data(10, seed=3), tmp_path / "r.html", max_evals=90,
        progress=False,
    )  # fmt: skip
    page = path.read_text()
    for section in ("global_importance", "records"):
        start = page.index(f'<section id="section-{section}">')
        body = page[start : page.index("</section>", start)]
        assert "not covered by the model's ε" in html.unescape(body), section
