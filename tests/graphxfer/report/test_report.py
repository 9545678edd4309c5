"""Reports: one self-contained, escaped HTML file with every section, plus CSV/JSON exports."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graphxfer.report import ReportError, register_section, report
from graphxfer.report.blocks import facts, note
from graphxfer.report.registry import SECTIONS
from tests.graphxfer.explain._models import SklearnModel, XGBoostModel, make_data

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)

EVIL = "<script>alert(1)</script>"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class CardModel(SklearnModel):
    """The sklearn test model with a complete model card."""

    def model_card(self) -> dict[str, Any]:
        return {
            "title": f"Transfer model {EVIL}",
            "source": {"name": "source cohort", "n_rows": 5000, "positive_rate": 0.31},
            "encoder": {"kind": "ft_transformer", "d_model": 64},
            "strategy": "lp-ft",
            "target_size": 240,
            "metrics": [
                {
                    "name": "AUROC",
                    "value": 0.81,
                    "ci_low": 0.77,
                    "ci_high": 0.85,
                    "on": "held-out",
                    "private": False,
                },
                {
                    "name": "training AUROC",
                    "value": 0.88,
                    "ci_low": None,
                    "ci_high": None,
                    "on": "training",
                    "private": False,
                },
            ],
            "privacy": {
                "epsilon": 3.0,
                "delta": 1e-5,
                "accountant": "prv",
                "ledger": [
                    {
                        "mechanism": "dp-sgd",
                        "noise_multiplier": 1.1,
                        "sample_rate": 0.05,
                        "steps": 400,
                        "accountant": "prv",
                        "epsilon": 3.0,
                        "delta": 1e-5,
                    },
                ],
            },
            "audit": {
                "attack_auc": 0.52,
                "eps_lower_bound": 0.4,
                "claimed_epsilon": 3.0,
                "passed": True,
            },
            "transfer_check": {
                "transfer_auc": 0.81,
                "baseline_auc": 0.78,
                "passed": True,
                "action": "keep transfer",
            },
            "alignment": {"renamed": {"age_years": "age"}, "missing": []},
            "package_versions": {"graphxfer": "0.1.0", "torch": "2.13.0"},
        }


class Links(HTMLParser):
    """Collects tags and the URL-bearing attributes of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "action", "data", "poster") and value is not None:
                self.urls.append(value)


@pytest.fixture(scope="module")
def cohort():
    return make_data(120, n_numeric=3, seed=2, weird_name=EVIL)


@pytest.fixture(scope="module")
def card_report(cohort, tmp_path_factory):
    folder = tmp_path_factory.mktemp("card")
    path = report(CardModel(cohort), cohort, folder / "report.html", progress=False)
    return path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def plain_cohort():
    return make_data(120, n_numeric=3, seed=2)  # XGBoost refuses "<" in column names


@pytest.fixture(scope="module")
def plain_report(plain_cohort, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    model = XGBoostModel(plain_cohort, n_estimators=20)
    path = report(model, plain_cohort, folder / "plain.html", show_ids=True, progress=False)
    return path, path.read_text(encoding="utf-8")


def _section(html: str, name: str) -> str:
    start = html.index(f'<section id="section-{name}">')
    return html[start : html.index("</section>", start)]


def test_every_section_is_there(card_report):
    _, html = card_report
    for name in ("checks", "cohort", "model_card", "evaluation", "global_importance", "records"):
        assert f'<section id="section-{name}">' in html
    for heading in (
        "Source cohort",
        "Encoder",
        "Fine-tuning",
        "Metrics",
        "Calibration",
        "Differential privacy",
        "Privacy audit",
        "Negative-transfer check",
        "Package versions",
    ):
        assert f">{heading}" in html
    assert html.count("Waterfall plot of the attributions") == 6
    assert "Beeswarm plot" in html and "Bar plot" in html and "Reliability diagram" in html


def test_self_contained_and_locked_down(card_report, plain_report):
    for _, html in (card_report, plain_report):
        assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
        assert "<script" not in html.lower()
        assert "http://" not in html and "https://" not in html
        assert "url(" not in html and "@import" not in html
        parser = Links()
        parser.feed(html)
        assert "link" not in parser.tags and "iframe" not in parser.tags
        images = [u for u in parser.urls if not u.startswith("#")]
        assert images and all(u.startswith("data:image/png;base64,") for u in images)


def test_names_and_values_are_escaped(card_report):
    _, html = card_report
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Transfer model &lt;script&gt;" in html


def test_model_card_content(card_report):
    _, html = card_report
    card = _section(html, "model_card")
    for text in ("ε (epsilon)", "δ (delta)", "prv", "noise multiplier", "Privacy ledger"):
        assert text in card
    assert "keep transfer" in card and "ft_transformer" in card and "2.13.0" in card
    # measurements on private records are not next to the guarantee but in their own section
    assert "Privacy audit" not in card and "0.77" not in card and "Reliability" not in card
    evaluation = _section(html, "evaluation")
    assert "Computed on private records — not covered by ε" in evaluation
    assert "not covered by the model&#39;s epsilon" in evaluation
    assert "not private" in evaluation  # the training metric
    assert "0.77 – 0.85" in evaluation  # confidence interval
    assert re.search(r"Privacy audit <span class=\"badge[^\"]*\">passed</span>", evaluation)
    assert "Reliability diagram" in evaluation


def test_missing_card_parts_say_not_available(plain_report):
    _, html = plain_report
    assert "provides no model card" in html
    assert html.count("Not available") >= 8
    assert "path-dependent TreeSHAP" in html  # XGBoost: explained with its own trees


def test_ids_hidden_by_default(card_report, cohort):
    path, html = card_report
    ids = list(cohort.ids)
    # embedded PNGs are base64 text, in which a short id can occur by chance
    readable = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not any(i in readable for i in ids)
    assert "record 1" in html and "record 6" in html
    csv_path = path.with_name("report-explanations.csv")
    json_path = path.with_name("report-explanations.json")
    for exported in (csv_path, json_path):
        text = exported.read_text(encoding="utf-8")
        assert not any(i in text for i in ids)
    assert "id" not in pd.read_csv(csv_path).columns


def test_ids_shown_on_request(plain_report, plain_cohort):
    path, html = plain_report
    assert "pid P0" in html
    table = pd.read_csv(path.with_name("plain-explanations.csv"))
    assert set(table["id"]) <= set(plain_cohort.ids)


def test_exports_match_the_model(card_report, cohort):
    path, _ = card_report
    table = pd.read_csv(path.with_name("report-explanations.csv"))
    document = json.loads(path.with_name("report-explanations.json").read_text("utf-8"))
    assert len(table) == len(document["records"]) == len(cohort)  # 120 <= n_global
    model = CardModel(cohort)
    np.testing.assert_allclose(table["prediction"], model.predict_proba(cohort.X)[:, 1])
    np.testing.assert_allclose(table["output"], table["prediction"], atol=1e-6)
    np.testing.assert_allclose(
        [r["prediction"] for r in document["records"]], table["prediction"], rtol=0, atol=0
    )


def test_written_atomically(card_report):
    path, _ = card_report
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "report-explanations.csv",
        "report-explanations.json",
        "report.html",
    ]


def test_selected_records_by_position_and_id(cohort, tmp_path):
    model = SklearnModel(cohort)
    ids = list(cohort.ids)
    path = report(
        model,
        cohort,
        tmp_path / "r.html",
        records=[5, ids[7]],
        show_ids=True,
        risk_bands=((0.0, 0.5, "below half"), (0.5, 1.0, "above half")),
        title="Custom title",
        progress=False,
    )
    html = path.read_text(encoding="utf-8")
    assert f"pid {ids[5]}" in html and f"pid {ids[7]}" in html
    assert html.count("Waterfall plot of the attributions") == 2
    assert "<title>Custom title</title>" in html and "below half" in html


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"records": [10_000]}, "outside the cohort"),
        ({"records": ["nobody"]}, "no record has id"),
        ({"records": "P0001"}, "list of row positions"),
        ({"risk_bands": ((0.0, 0.4, "a"), (0.5, 1.0, "b"))}, "contiguous"),
        ({"risk_bands": ((0.1, 1.0, "a"),)}, "start at 0.0"),
        ({"risk_bands": ((0.0, 0.5, "a"), (0.5, 1.0, "a"))}, "distinct"),
        ({"explanation": "not one"}, "shape"),
    ],
)
def test_bad_requests(cohort, tmp_path, kwargs, message):
    with pytest.raises(ReportError, match=message):
        report(SklearnModel(cohort), cohort, tmp_path / "bad.html", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_given_explanation_is_used(cohort, tmp_path):
    from graphxfer.explain import explain

    model = SklearnModel(cohort)
    small = cohort.subset(np.arange(40))
    explanation = explain(model, small, progress=False)
    path = report(model, small, tmp_path / "given.html", explanation=explanation, progress=False)
    html = path.read_text(encoding="utf-8")
    assert "supplied with the report request" in html
    with pytest.raises(ReportError, match="one row per cohort record"):
        report(model, cohort, tmp_path / "wrong.html", explanation=explanation, progress=False)


def test_section_registry(cohort, tmp_path):
    @register_section("extra_test_section", title=f"Extra {EVIL}")
    def extra(ctx):
        return [facts({"records": len(ctx.cohort)}), note(EVIL)]

    try:
        with pytest.raises(ReportError, match="already registered"):
            register_section("extra_test_section", title="Again")(extra)
        small = cohort.subset(np.arange(30))
        path = report(SklearnModel(cohort), small, tmp_path / "x.html", progress=False)
        html = path.read_text(encoding="utf-8")
        assert '<section id="section-extra_test_section">' in html
        assert EVIL not in html
        assert html.index("section-records") < html.index("section-extra_test_section")
    finally:
        SECTIONS.pop("extra_test_section", None)
    with pytest.raises(ReportError, match="section name"):
        register_section("Bad Name!", title="x")


def test_figures_are_closed(card_report):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []
