"""The report sections on checks: the verdicts at a glance, and the measurements on private
records (metrics, audit, calibration, shift from the source), none of them covered by ε."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from graphxfer.release import EVALUATION_NOTE
from graphxfer.report import checks, plots
from graphxfer.report.blocks import Block, facts, image, note, subsection, table, text, warning
from graphxfer.report.context import ReportContext
from graphxfer.report.section_parts import (
    ARTEFACT,
    ARTEFACT_WHY,
    NOT_AVAILABLE,
    mapping_blocks,
    share,
)

__all__ = ["checks_section", "evaluation_section"]

_ON_REPORTED = "the reported records (not covered by ε)"


def checks_section(ctx: ReportContext) -> list[Block]:
    """The verdict of every check at a glance: the negative-transfer check (released with the
    model), calibration and shift from the source (computed on the reported records)."""
    verdict = ctx.fit["transfer_check"]
    rows = [["Negative-transfer check", verdict["status"], _guard_basis(ctx), verdict["line"]]]
    blocks: list[Block] = []
    if verdict["status"] == "failed":
        blocks.append(warning(verdict["line"] + "."))
    calibration = ctx.calibration
    if calibration is None:
        rows.append(["Calibration", "not available", "—", "the cohort has no outcome column"])
    else:
        status = "miscalibrated" if calibration["miscalibrated"] else "within the limits"
        rows.append(["Calibration", status, _ON_REPORTED, calibration["line"]])
        if calibration["warning"]:
            blocks.append(warning(calibration["warning"]))
    shift = ctx.shift
    if not shift["available"]:
        rows.append(
            [
                "Shift from the source",
                "not available",
                "—",
                "the model records no source distributions (an encoder's source summary)",
            ]
        )
    else:
        flagged = ctx.flagged
        status = f"{len(flagged)} column(s) flagged" if flagged else "no column flagged"
        detail = "; ".join(f"{c}: {why}" for c, why in flagged.items()) or (
            f"{len(shift['rows'])} columns compared with the source"
        )
        rows.append(["Shift from the source", status, _ON_REPORTED, detail])
        if flagged:
            blocks.append(
                warning(
                    "Possible site artefacts: " + ", ".join(flagged) + " (see Shift from the "
                    "source). Their attributions in the importance table and the waterfalls are "
                    "marked. " + ARTEFACT_WHY
                )
            )
    return [table(["check", "result", "computed on", "details"], rows), *blocks]


def _guard_basis(ctx: ReportContext) -> str:
    verdict = ctx.fit["transfer_check"]
    if verdict["status"] in ("not run", "not available"):
        return "—"
    if "chosen" in verdict:
        return "the training records, as a differentially private release (ε in the ledger)"
    return "the training records (released with the model)"


def evaluation_section(ctx: ReportContext) -> list[Block]:
    """Metrics and audit on private records (the evaluation), and the calibration on the
    reported cohort: none of it is covered by the model's ε or part of the model file."""
    evaluation = ctx.evaluation or {}
    card = ctx.card or {}
    # a third-party model may still carry measurements in its card
    metrics = evaluation.get("metrics") if ctx.evaluation else card.get("metrics")
    audit = evaluation.get("audit") if ctx.evaluation else card.get("audit")
    calibration = ctx.calibration
    badge = None
    if calibration is not None:
        badge = "miscalibrated" if calibration["miscalibrated"] else "within the limits"
    flagged = ctx.flagged
    return [
        note(
            EVALUATION_NOTE + " The calibration and the shift from the source below use the "
            "reported cohort's records (and outcomes)."
        ),
        subsection("Metrics", _metrics(metrics)),
        _check("Privacy audit", audit),
        subsection("Calibration", _calibration(ctx), badge=badge, anchor="calibration"),
        subsection(
            "Shift from the source",
            _shift(ctx),
            badge=("flagged" if flagged else "none flagged") if ctx.shift["available"] else None,
            anchor="shift",
        ),
    ]


def _metrics(metrics: Any) -> list[Block]:
    if not metrics:
        return [note("Not available: no measurement on records was recorded.")]
    rows = []
    unprotected = False
    for m in metrics:
        m = m if isinstance(m, Mapping) else {"name": str(m)}
        low, high = m.get("ci_low"), m.get("ci_high")
        ci = "—" if low is None or high is None else f"{low:.3g} – {high:.3g}"
        on = m.get("on")
        private = bool(m.get("private", False))
        if private:
            mark = "DP (in the ledger)"
        elif on == "training":
            mark = "not private"
            unprotected = True
        else:
            mark = "not covered by ε"
        rows.append([m.get("name", "—"), m.get("value"), ci, on or "—", mark])
    blocks = [table(["metric", "value", "95% interval", "computed on", "privacy"], rows)]
    if unprotected:
        blocks.append(
            note(
                "not private: computed on the private training records without a "
                "differential-privacy guarantee; sharing it may reveal information about them."
            )
        )
    return blocks


def _calibration(ctx: ReportContext) -> list[Block]:
    cohort = ctx.cohort
    result = ctx.calibration
    if result is None:
        return [note("Not available: this cohort has no outcome column to compare with.")]
    y = cohort.y
    p = ctx.predictions
    blocks: list[Block] = [
        text(
            f"Predictions on this cohort's {len(y):,} records against their outcomes. This is "
            "held-out evidence only when the model was not fitted on these records. They are "
            f"called miscalibrated when the expected calibration error exceeds "
            f"{checks.ECE_LIMIT:g} or the mean prediction and the outcome rate differ by more "
            f"than {checks.MEAN_GAP_LIMIT:g}."
        )
    ]
    if result["warning"]:
        blocks.append(warning(result["warning"]))
    n_bins = int(min(10, max(2, len(y) // 30)))
    if len(np.unique(y)) >= 2 and len(y) >= 2 * n_bins:
        blocks.append(
            image(
                plots.calibration_plot(y, p, n_bins),
                "Reliability diagram: observed outcome rate against predicted probability",
            )
        )
    else:
        blocks.append(note("No reliability diagram: too few records, or a single outcome."))
    blocks.append(
        facts(
            {
                "expected calibration error (10 equal-width bins)": result["ece"],
                "mean prediction": result["mean_prediction"],
                "outcome rate": result["outcome_rate"],
                "Brier score": result["brier"],
            }
        )
    )
    return blocks


def _shift(ctx: ReportContext) -> list[Block]:
    shift = ctx.shift
    if not shift["available"]:
        return [
            note(
                "Not available: the model records no source distributions (a graphxfer "
                "encoder's source summary) to compare with."
            )
        ]
    blocks: list[Block] = [
        text(
            f"Each column of these records against the source cohort "
            f"{shift['source'] or '(unnamed)'} as its encoder records it (share missing, "
            "percentiles, categories; no source record). A column is flagged when its share "
            f"missing differs by more than {checks.MISSING_GAP_LIMIT:g}, or when more than "
            f"{checks.OUTSIDE_LIMIT:.0%} of its observed values lie outside the source's "
            "1st-99th percentile range (numeric) or are categories the source never recorded."
        )
    ]
    flagged = ctx.flagged
    if flagged:
        blocks.append(
            warning(
                "Possible site artefacts: "
                + "; ".join(f"{c}: {why}" for c, why in flagged.items())
                + ". "
                + ARTEFACT_WHY
            )
        )
    rows = [
        [
            r["column"],
            share(r["missing"]),
            share(r["source_missing"]),
            "—" if r["outside"] is None else share(r["outside"]),
            r["source_range"],
            ARTEFACT if r["reasons"] else "",
        ]
        for r in shift["rows"]
    ]
    blocks.append(
        table(
            [
                "column",
                "missing here",
                "missing at the source",
                "observed values outside the source's range",
                "source range (1st-99th percentile) or categories",
                "flag",
            ],
            rows,
        )
    )
    if shift["not_compared"]:
        blocks.append(
            note(
                "Not compared (the source does not describe them): "
                + ", ".join(shift["not_compared"])
                + "."
            )
        )
    return blocks


def _check(title: str, result: Any) -> Block:
    if not isinstance(result, Mapping):
        return subsection(title, [note(NOT_AVAILABLE)])
    passed = result.get("passed")
    badge = None if passed is None else ("passed" if passed else "failed")
    return subsection(title, mapping_blocks(result), badge=badge)
