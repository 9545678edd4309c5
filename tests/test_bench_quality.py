"""The quality benchmark: its quick mode end to end, and the pass rule on hand-made inputs.

The quick mode runs with the ``linear`` encoder rather than the default ``auto``: this file
tests the benchmark (splits, baselines, document, verdict), and ``pretrain(source, "auto")``
(the encoder selection, tested on its own) would take most of its time.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from benchmarks import bench_quality as bq

ENCODER = "linear"

GOOD = {
    bq.TRANSFER_EPS1: 0.80,
    bq.TRANSFER_EPS3: 0.81,
    bq.TRANSFER: 0.82,
    bq.LR_SOURCE: 0.75,
    bq.LR_TARGET: 0.70,
    bq.XGB_TARGET: 0.72,
    bq.LR_POOLED: 0.805,
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, list[str]]:
    out = tmp_path_factory.mktemp("quality")
    doc, raw = out / "quality.md", out / "quality.json"
    argv = ["--quick", "--encoder", ENCODER, "--no-progress", "--out", str(doc), "--json", str(raw)]
    assert bq.main(argv) == 0
    return doc.read_text(), json.loads(raw.read_text()), argv


def test_quick_mode_writes_every_method_with_numbers(quick: tuple[str, dict, list[str]]) -> None:
    text, raw, _ = quick
    assert [r["key"] for r in raw["rows"]] == ["heart-va"]
    row = raw["rows"][0]
    assert row["n"] == 50 and row["n_target_persons"] == 200
    for split in row["splits"]:
        assert split["n_train_rows"] == 50 and split["n_test"] == 150
        assert 0 < split["n_train_positive"] < 50
    lines = text.splitlines()
    for method in bq.METHODS:
        line = next(ln for ln in lines if ln.startswith(f"| {method} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6, line
        if raw["rows"][0]["summary"][method]["n_ok"]:
            assert re.fullmatch(r"0\.\d{3} ± 0\.\d{3}", cells[1]), line  # AUROC mean ± sd
            assert re.fullmatch(r"0\.\d{3}", cells[2]), line  # Brier
        else:  # a failed method says why
            assert cells[1] == "n/a" and cells[5], line
    # the verdict table has its PASS/FAIL column and one verdict per row
    header = next(ln for ln in lines if ln.startswith("| row |"))
    assert header.rstrip().endswith("| PASS/FAIL |")
    verdict_line = next(ln for ln in lines if ln.startswith("| heart disease: va (n=50) |"))
    assert verdict_line.rstrip().endswith(("| PASS |", "| FAIL |"))
    assert re.search(r"\*\*quality: (PASS|FAIL) \(", text)
    for field in ("Date:", "Command: `python -m benchmarks.bench_quality --quick", "Git commit:"):
        assert field in text
    assert raw["meta"]["mode"] == "quick" and raw["meta"]["splits"] == 3


def test_quick_mode_baselines_are_sane(quick: tuple[str, dict, list[str]]) -> None:
    _, raw, _ = quick
    s = raw["rows"][0]["summary"]
    for method in (bq.LR_SOURCE, bq.LR_TARGET, bq.LR_POOLED, bq.XGB_TARGET, bq.XGB_POOLED):
        assert s[method]["n_ok"] == 3, (method, s[method]["note"])
        assert 0.0 < s[method]["brier_mean"] < 0.3, method
    assert s[bq.LR_SOURCE]["auroc_mean"] > 0.6
    assert s[bq.LR_POOLED]["auroc_mean"] > 0.6
    assert s[bq.LR_TARGET]["auroc_mean"] > 0.5
    # the stored verdict is the rule applied to the stored means
    judged = {
        m: v["auroc_mean"] if (m not in bq.TOOLKIT_METHODS or v["n_ok"] == 3) else math.nan
        for m, v in s.items()
    }
    expected = bq.judge_row({m: math.nan if v is None else v for m, v in judged.items()})
    assert raw["rows"][0]["verdict"]["passed"] == expected.passed


def test_judge_row_passes_when_both_clauses_hold() -> None:
    v = bq.judge_row(GOOD)
    assert v.passed and v.private_beats_baselines and v.matches_pooled and v.private_near_pooled
    assert v.reasons == ()
    # the margin: not private may trail pooled LR by 0.01, no more
    assert bq.judge_row({**GOOD, bq.TRANSFER: 0.796}).passed
    assert not bq.judge_row({**GOOD, bq.TRANSFER: 0.794}).passed


@pytest.mark.parametrize(
    "change",
    [
        {bq.LR_SOURCE: 0.801},  # (a) private below source-only LR
        {bq.LR_TARGET: 0.801},  # (a) private below target-only LR
        {bq.XGB_TARGET: 0.801},  # (a) private below target-only XGBoost
        {bq.TRANSFER_EPS1: math.nan},  # (a) the private fit failed
    ],
)
def test_judge_row_fails_clause_a(change: dict[str, float]) -> None:
    v = bq.judge_row({**GOOD, **change})
    assert not v.passed and not v.private_beats_baselines and v.matches_pooled
    assert v.reasons


@pytest.mark.parametrize("change", [{bq.TRANSFER: 0.79}, {bq.TRANSFER: math.nan}])
def test_judge_row_fails_clause_b(change: dict[str, float]) -> None:
    v = bq.judge_row({**GOOD, **change})
    assert not v.passed and v.private_beats_baselines and not v.matches_pooled
    assert any(bq.TRANSFER in r for r in v.reasons)


def test_judge_row_missing_baselines() -> None:
    # a baseline that could not be fitted is left out of the maximum...
    assert bq.judge_row({**GOOD, bq.XGB_TARGET: math.nan}).passed
    # ...but a comparison with no baseline at all fails
    v = bq.judge_row({**GOOD, bq.LR_TARGET: math.nan, bq.XGB_TARGET: math.nan})
    assert not v.passed and "no baseline" in v.reasons[0]


def test_judge_summary() -> None:
    ok = bq.judge_row(GOOD)
    far = bq.judge_row({**GOOD, bq.TRANSFER_EPS1: 0.78})  # passes, but private is far from pooled
    assert far.passed and not far.private_near_pooled
    bad = bq.judge_row({**GOOD, bq.TRANSFER: 0.5})
    passed, line = bq.judge_summary([ok] * 5 + [far] * 2)
    assert passed and line.startswith("quality: PASS")
    passed, line = bq.judge_summary([ok] * 4 + [far] * 3)
    assert not passed and line.startswith("quality: FAIL (7 of 7 rows pass;")
    passed, line = bq.judge_summary([ok] * 6 + [bad])
    assert not passed and line.startswith("quality: FAIL (6 of 7 rows pass;")
    assert bq.judge_summary([ok])[0] and not bq.judge_summary([far])[0]
    assert not bq.judge_summary([])[0]


def test_bad_arguments_are_errors() -> None:
    with pytest.raises(SystemExit) as exc:
        bq.parse_args(["--rows", "nowhere"])
    assert exc.value.code != 0
    with pytest.raises(SystemExit):
        bq.parse_args(["--transfer-options", "[1]"])
    args = bq.parse_args(["--rows", "heart-va,synthetic", "--splits", "2"])
    assert args.rows == ["heart-va", "synthetic"] and args.splits == 2
