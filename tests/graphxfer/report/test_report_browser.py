"""A generated report in a real browser: headless Chromium over the DevTools protocol.

The report must load with no console error, no uncaught exception and no failed or blocked
resource, decode every embedded image, and show every section. The screenshot is kept with the
test's files (``report.png``); set ``GRAPHXFER_SCREENSHOT`` to a path to keep a copy there.
Without a Chromium executable (``apt-get install chromium``, or ``GRAPHXFER_CHROMIUM``) the test
is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from graphxfer.report import report
from tests.graphxfer.report._browser import find_chromium, render
from tests.graphxfer.report._shifted import shifted_site

pytestmark = [
    pytest.mark.skipif(
        find_chromium() is None,
        reason="no Chromium to render the report in (apt-get install chromium, or set "
        "GRAPHXFER_CHROMIUM to a Chromium or Chrome executable)",
    ),
    pytest.mark.filterwarnings(
        "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
    ),
]

SECTIONS = {
    "section-checks": "Checks",
    "section-cohort": "Cohort",
    "section-model_card": "Model card",
    "section-evaluation": "Computed on private records — not covered by ε",
    "section-global_importance": "Global importance",
    "section-records": "Selected records",
}
ANCHORS = ("calibration", "shift", "transfer-check", "fit-summary")
HEADINGS = ("Summary", "Negative-transfer check", "Calibration", "Shift from the source")


def test_the_report_renders_in_chromium_without_errors(tmp_path: Path) -> None:
    model, _, target = shifted_site(n_source=200, n_target=40)
    model.model_card = lambda: {  # a card with a negative-transfer check to show
        "title": "Browser check",
        "strategy": "anchored",
        "transfer_check": {
            "ran": True,
            "transfer_auc": 0.7,
            "baseline": "logistic",
            "baseline_auc": 0.72,
            "passed": False,
            "action": "warned",
        },
    }
    path = report(model, target, tmp_path / "report.html", records=[0], progress=False)

    page = render(path)

    (tmp_path / "report.png").write_bytes(page.screenshot)
    keep = os.environ.get("GRAPHXFER_SCREENSHOT")
    if keep:
        shutil.copyfile(tmp_path / "report.png", keep)
    assert page.errors == [], "\n".join(page.errors)
    dom = page.dom
    assert dom["title"] == "Browser check"
    shown = {s["id"]: s["heading"] for s in dom["sections"]}
    assert shown == SECTIONS
    assert set(ANCHORS) <= set(dom["anchors"])
    for heading in HEADINGS:
        assert any(h.startswith(heading) for h in dom["headings"]), heading
    assert dom["images"] == 4 and dom["broken"] == []  # calibration, beeswarm, bar, waterfall
    warnings = " ".join(dom["warnings"])
    assert "Negative-transfer check: FAILED" in warnings
    assert "do not match what happened" in warnings and "Possible site artefacts" in warnings
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 10_000


def test_the_browser_check_catches_errors(tmp_path: Path) -> None:
    """The check itself: a blocked script, a missing image and a console error are caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:\"><title>bad</title></head><body>"
        '<section id="section-x"><h2>X</h2></section><img src="missing.png" alt="gone">'
        "<script>console.error('oops')</script></body></html>",
        encoding="utf-8",
    )
    page = render(bad)
    assert any("missing.png" in e for e in page.errors)
    assert any("inline script" in e for e in page.errors)
    assert page.dom["sections"] == [{"id": "section-x", "heading": "X"}]
    assert page.dom["broken"] == ["gone"]
