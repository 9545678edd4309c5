"""The report's checks (calibration, shift from the source, the transfer verdict) and the reuse
of a given explanation."""

from __future__ import annotations

import html
import importlib
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest

from graphxfer.explain import explain
from graphxfer.report import ReportError, report
from graphxfer.report.checks import (
    ECE_LIMIT,
    MISSING_GAP_LIMIT,
    OUTSIDE_LIMIT,
    calibration_check,
    shift_check,
)
from graphxfer.report.summary import fit_summary, summary_lines, transfer_verdict
from tests.graphxfer.report._shifted import shifted_site

# the package's report() shadows its module of the same name
report_module = importlib.import_module("graphxfer.report.report")

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


@pytest.fixture(scope="module")
def site():
    return shifted_site()


@pytest.fixture(scope="module")
def shifted_report(site, tmp_path_factory):
    model, _, target = site
    path = report(
        model, target, tmp_path_factory.mktemp("shifted") / "r.html", records=[0], progress=False
    )
    return html.unescape(path.read_text(encoding="utf-8"))


def _section(text: str, name: str) -> str:
    start = text.index(f'<section id="section-{name}">')
    return text[start : text.index("</section>", start)]


def _anchored(text: str, anchor: str) -> str:
    start = text.index(f'id="{anchor}"')
    return text[start : text.index('<div class="subsection"', start + 1)]


# ----------------------------------------------------------------------------- calibration
def test_calibration_flags_predictions_far_from_the_outcome_rate():
    y = np.array([1] * 45 + [0] * 15)  # outcome rate 0.75
    p = np.full(60, 0.963)
    result = calibration_check(y, p)
    assert result["miscalibrated"]
    assert result["ece"] == pytest.approx(0.213)
    assert result["mean_prediction"] == pytest.approx(0.963)
    assert "MISCALIBRATED" in result["line"] and "0.963 vs outcome rate 0.750" in result["line"]
    assert f"ECE {ECE_LIMIT:g}" in result["warning"] and "too high" in result["warning"]
    assert "part of the gap can be chance" in result["warning"]  # 60 records


def test_calibration_within_the_limits():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, size=4000)
    y = (rng.random(4000) < p).astype(int)
    result = calibration_check(y, p)
    assert not result["miscalibrated"] and result["warning"] is None
    assert result["ece"] < 0.05 and "within the limits" in result["line"]


# ----------------------------------------------------------------------------- shift
def test_shift_flags_missingness_and_range_against_the_encoders_marginals(site):
    model, source, target = site
    result = shift_check(model, target.X)
    assert result["available"] and set(result["flagged"]) == {"x0", "x2"}
    assert "missing for 100% of these records vs 6% at the source" in result["flagged"]["x2"]
    assert "100% of the observed values are outside" in result["flagged"]["x0"]
    rows = {r["column"]: r for r in result["rows"]}
    assert rows["x1"]["reasons"] == [] and rows["x1"]["outside"] < OUTSIDE_LIMIT
    assert rows["smoker"]["outside"] is None  # binary: no range
    assert abs(rows["x2"]["missing"] - rows["x2"]["source_missing"]) > MISSING_GAP_LIMIT
    # the source compared with itself: nothing to flag
    assert shift_check(model, source.X)["flagged"] == {}


def test_shift_flags_categories_the_source_never_recorded(site):
    model, _, target = site
    frame = target.X.copy()
    frame["colour"] = "purple"
    assert "categories the source never recorded" in shift_check(model, frame)["flagged"]["colour"]


def test_shift_needs_the_source_marginals(site):
    _, _, target = site
    result = shift_check(SimpleNamespace(), target.X)
    assert not result["available"] and result["flagged"] == {} and "not available" in result["line"]


# ----------------------------------------------------------------------------- verdicts
LEDGER = [
    {"purpose": "fine-tune:linear-probe", "epsilon": 2.1},
    {"purpose": "transfer-guard:target-only", "epsilon": 0.3},
    {"purpose": "transfer-guard:selection", "epsilon": 0.3},
]
PRIVACY = {"epsilon": 2.99, "delta": 1e-5, "accountant": "prv", "ledger": LEDGER}


def test_private_guard_verdicts_read_their_epsilon_from_the_ledger():
    check = {"ran": True, "private": True, "candidates": ["fine-tuned", "zero-shot"]}
    shipped = transfer_verdict({**check, "chosen": "zero-shot", "passed": False}, PRIVACY)
    assert shipped["status"] == "failed"
    assert shipped["line"].startswith("Negative-transfer check: FAILED: the private guard shipped")
    assert "zero-shot model instead of the fine-tuned one" in shipped["line"]
    assert shipped["epsilon"] == {
        "transfer-guard:target-only": 0.3,
        "transfer-guard:selection": 0.3,
    }
    assert "ε 0.3 for transfer-guard:selection" in shipped["line"] and "ε 2.99" in shipped["line"]
    kept = transfer_verdict({**check, "chosen": "fine-tuned", "passed": True}, PRIVACY)
    assert kept["status"] == "passed" and "passed" in kept["line"]


def test_other_verdicts():
    failed = transfer_verdict(
        {
            "ran": True,
            "transfer_auc": 0.61,
            "baseline": "logistic",
            "baseline_auc": 0.65,
            "passed": False,
            "action": "fallback",
        }
    )
    assert failed["status"] == "failed"
    assert "0.610 < target-only logistic baseline 0.650" in failed["line"]
    assert "action: fallback" in failed["line"]
    inconclusive = transfer_verdict(
        {
            "ran": True,
            "method": "3-fold cross-fitting on the target training data",
            "transfer_auc": 0.672,
            "baseline": "xgboost",
            "baseline_auc": 0.679,
            "standard_error": 0.03,
            "verdict": "inconclusive",
            "passed": None,
            "action": "none",
        }
    )
    assert inconclusive["status"] == "inconclusive"
    assert "0.672 < target-only xgboost baseline 0.679" in inconclusive["line"]
    assert "within two standard errors (0.060)" in inconclusive["line"]
    assert "transferred model was kept" in inconclusive["line"]
    skipped = transfer_verdict({"ran": False, "reason": "too few records of one class"})
    assert skipped == {
        "status": "not run",
        "line": "Negative-transfer check: not run (too few records of one class)",
    }
    assert transfer_verdict(None)["status"] == "not available"


def test_summary_lines_of_a_model_without_card(site):
    model, _, _ = site
    lines = summary_lines(fit_summary(model))
    assert lines[0] == "Fine-tuning: not recorded"
    assert "not available" in lines[2]
    assert "the model's background_ (50 records)" in lines[3]


# ----------------------------------------------------------------------------- the report
def test_report_warns_and_marks_site_artefacts(shifted_report):
    checks = _section(shifted_report, "checks")
    assert "miscalibrated" in checks and "2 column(s) flagged" in checks
    assert checks.count('class="warning"') == 2
    calibration = _anchored(shifted_report, "calibration")
    assert "MISCALIBRATED" not in calibration  # the section words it for readers
    assert "Warning:" in calibration and "Reliability diagram" in calibration
    assert f"exceeds {ECE_LIMIT:g}" in calibration
    evaluation = _section(shifted_report, "evaluation")
    shift = evaluation[evaluation.index('id="shift"') :]
    assert "x2: missing for 100% of these records" in shift and "flagged" in shift
    importance = _section(shifted_report, "global_importance")
    rows = dict(re.findall(r"<tr><td>(\w+)</td>.*?<td>([^<]*)</td></tr>", importance))
    assert rows["x0"] == rows["x2"] == "possible site artefact" and rows["x1"] == ""
    assert "not evidence of clinical signal" in importance
    records = _section(shifted_report, "records")
    assert "miscalibrated on these records" in records
    assert "possible site artefact" in records


def test_report_without_source_marginals_says_so(tmp_path):
    from tests.graphxfer.explain._models import XGBoostModel, make_data

    cohort = make_data(60, n_numeric=2, seed=1)
    path = report(
        XGBoostModel(cohort, n_estimators=5),
        cohort,
        tmp_path / "r.html",
        records=[0],
        progress=False,
    )
    text = html.unescape(path.read_text(encoding="utf-8"))
    assert "the model records no source distributions" in _section(text, "evaluation")
    assert "possible site artefact" not in text


# ----------------------------------------------------------------------------- explanations
def test_a_given_explanation_is_reused(site, tmp_path, monkeypatch):
    model, _, target = site
    explanation = explain(model, target, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the report recomputed the explanation")

    monkeypatch.setattr(report_module, "explain_details", fail)
    path = report(
        model, target, tmp_path / "r.html", explanation=explanation, records=[0], progress=False
    )
    text = html.unescape(path.read_text(encoding="utf-8"))
    assert "supplied with the report request" in text
    assert "graphxfer.explain uses by default the model's background_" in text


def test_a_given_explanation_must_match_the_records_and_the_model(site, tmp_path):
    from tests.graphxfer.explain._models import XGBoostModel

    model, source, target = site
    explanation = explain(model, target, progress=False)
    shuffled = target.subset(np.r_[1, 0, 2 : len(target)])
    with pytest.raises(ReportError, match=r"does not explain these records: in row 0, column"):
        report(model, shuffled, tmp_path / "a.html", explanation=explanation, progress=False)
    other = XGBoostModel(source, n_estimators=3, seed=5)
    with pytest.raises(ReportError, match="explains another model"):
        report(other, target, tmp_path / "b.html", explanation=explanation, progress=False)
    renamed = explanation[:, :]
    renamed.feature_names = ["a", "b", "c", "d", "e"]
    with pytest.raises(ReportError, match="are not the model's input columns"):
        report(model, target, tmp_path / "c.html", explanation=renamed, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_long_explanation_is_announced_and_the_bar_shows_only_on_a_terminal(
    site, tmp_path, monkeypatch
):
    model, _, target = site
    seen: list[bool] = []
    real = report_module.explain_details

    def spy(*args, **kwargs):
        seen.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(report_module, "explain_details", spy)
    monkeypatch.setattr(report_module, "LONG_EXPLANATION_S", 0.0)
    monkeypatch.setattr(report_module, "_on_terminal", lambda: False)
    stderr = io.StringIO()
    monkeypatch.setattr(report_module.sys, "stderr", stderr)
    small = target.subset(np.arange(12))
    report(model, small, tmp_path / "a.html", records=[0], progress=True)
    assert re.search(r"Explaining 12 records \(method 'tree'\): about \d+ s", stderr.getvalue())
    assert seen == [False, False, False]  # not a terminal: no bar
    seen.clear()
    monkeypatch.setattr(report_module, "_on_terminal", lambda: True)
    report(model, small, tmp_path / "b.html", records=[0], progress=True)
    assert seen == [False, False, True]  # the bar, for the long part only
    seen.clear()
    stderr.truncate(0)
    report(model, small, tmp_path / "c.html", records=[0], progress=False)
    assert seen == [False, False, False] and stderr.getvalue() == ""
    # the parts share one background: one reference average
    exported = (tmp_path / "c-explanations.json").read_text(encoding="utf-8")
    assert len(set(re.findall(r'"base_value": ([-\d.e]+)', exported))) == 1


def test_an_explanation_of_the_feature_frame_is_accepted_too(tmp_path):
    """Explained from ``cohort.X``, a model stating only ``feature_names_in_`` shows a binary
    column as 0/1; explained from the Cohort, as its labels. Both explain the same records."""
    from tests.graphxfer.explain._models import XGBoostModel, make_data

    cohort = make_data(40, n_numeric=2, seed=1)
    inner = XGBoostModel(cohort, n_estimators=5)
    model = SimpleNamespace(
        model_=inner.model_,  # the booster, found by the tree explainer
        feature_names_in_=np.asarray(inner.feature_schema_.feature_names, dtype=object),
        predict_proba=inner.predict_proba,
    )
    for data in (cohort.X, cohort):
        explanation = explain(model, data, progress=False)
        report(
            model, cohort, tmp_path / "r.html", explanation=explanation, records=[0], progress=False
        )
    smoker = list(explanation.feature_names).index("smoker")
    assert explanation.display_data[0, smoker] in ("no", "yes")
