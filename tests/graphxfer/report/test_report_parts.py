"""Blocks, risk bands and plots, on their own."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from graphxfer.report import ReportError
from graphxfer.report.blocks import facts, fmt, image, table
from graphxfer.report.context import DEFAULT_RISK_BANDS, risk_bands
from graphxfer.report.plots import calibration_plot


def test_fmt():
    assert fmt(None) == "—" and fmt(float("nan")) == "—"
    assert fmt(True) == "yes" and fmt(12345) == "12,345"
    assert fmt(0.123456) == "0.1235" and fmt(1e-5) == "1.000e-05"
    assert fmt(["a", 1]) == "a, 1" and fmt({"b": 1}) == '{"b": 1}'


def test_blocks_format_their_values():
    assert facts({"n": 3})["items"] == [("n", "3")]
    assert table(["a"], [[np.float64(0.5)]])["rows"] == [["0.5"]]
    with pytest.raises(ValueError, match="PNG data URIs"):
        image("https://example.org/x.png", "remote")


def test_risk_bands():
    bands = risk_bands(DEFAULT_RISK_BANDS)
    assert [b.label for b in bands] == ["low", "medium", "high"]
    assert str(bands[1]) == "medium (0.2–0.5)"
    with pytest.raises(ReportError, match="triples"):
        risk_bands([(0.0, 1.0)])
    with pytest.raises(ReportError, match="empty"):
        risk_bands([])


def test_band_edges(tmp_path):
    from graphxfer.report.context import ReportContext

    ctx = ReportContext(
        model=None,
        cohort=None,  # type: ignore[arg-type]
        card=None,
        predictions=np.array([0.0, 0.2, 0.4999, 0.5, 1.0]),
        bands=risk_bands(DEFAULT_RISK_BANDS),
        explanation=None,
        explained_rows=np.arange(0),
        records=(),
        show_ids=False,
        method="",
        background="",
        title="",
    )
    assert ctx.band_indices(ctx.predictions).tolist() == [0, 1, 1, 2, 2]
    assert ctx.band_of(1.0).label == "high"


def test_calibration_plot_is_a_png():
    rng = np.random.default_rng(0)
    p = rng.random(200)
    y = (rng.random(200) < p).astype(int)
    uri = calibration_plot(y, p, n_bins=5)
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_built_in_sections_in_report_order():
    import graphxfer.report  # noqa: F401  (registers the built-in sections)
    from graphxfer.release import EVALUATION_TITLE
    from graphxfer.report.card_sections import cohort_section
    from graphxfer.report.explanation_sections import records_section
    from graphxfer.report.registry import SECTIONS

    built_in = [(s.name, s.title) for s in SECTIONS.values()][:6]
    assert built_in == [
        ("checks", "Checks"),
        ("cohort", "Cohort"),
        ("model_card", "Model card"),
        ("evaluation", EVALUATION_TITLE),
        ("global_importance", "Global importance"),
        ("records", "Selected records"),
    ]
    assert SECTIONS["cohort"].build is cohort_section
    assert SECTIONS["records"].build is records_section


def test_shared_section_formatters():
    from graphxfer.report.section_parts import NOT_AVAILABLE, mapping_blocks, share

    assert share(0.1234) == "12.3%" and share(float("nan")) == "—"
    assert mapping_blocks({"a_b": 1})[0]["items"] == [("a b", "1")]
    assert mapping_blocks("free text")[0]["text"] == "free text"
    assert mapping_blocks(None) == [{"kind": "note", "text": NOT_AVAILABLE}]
