"""The report sections on explanations: global importance and the selected records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from graphxfer.explain._model import link_of
from graphxfer.report import plots
from graphxfer.report.blocks import Block, facts, image, note, subsection, table, text, warning
from graphxfer.report.context import ReportContext
from graphxfer.report.section_parts import ARTEFACT, ARTEFACT_WHY, share

__all__ = ["global_importance_section", "records_section"]

_SCALE_WORDS = {"identity": "probability", "logit": "log-odds"}


def global_importance_section(ctx: ReportContext) -> list[Block]:
    """Beeswarm and bar plots of the SHAP values, and the mean absolute attribution table;
    columns flagged as shifted from the source are marked as possible site artefacts."""
    exp = ctx.explanation
    scale = _SCALE_WORDS[link_of(exp)]
    values = np.asarray(exp.values, dtype=float)
    mean_abs = np.abs(values).mean(axis=0)
    total = mean_abs.sum()
    order = np.argsort(-mean_abs, kind="stable")
    flagged = ctx.flagged
    names = [str(n) for n in exp.feature_names]
    shown = [str(n) for n in ctx.shown.feature_names]  # as the reported cohort names them
    marks = {shown[j] for j, n in enumerate(names) if n in flagged}
    columns = ["column", f"mean |SHAP| ({scale})", "share"]
    rows = [
        [shown[j], float(mean_abs[j]), share(mean_abs[j] / total if total else np.nan)]
        for j in order
    ]
    if flagged:
        columns.append("note")
        for row, j in zip(rows, order):
            row.append(ARTEFACT if names[j] in flagged else "")
    blocks: list[Block] = [
        note(_NOT_COVERED),
        text(
            f"SHAP attributions of {len(values):,} records to the model's {scale} of the outcome "
            f"({ctx.method}). Reference data: {ctx.background}. Each attribution is how much a "
            "column moves the output away from the reference average."
        ),
    ]
    blocks.extend(_translated_note(ctx))
    blocks.extend(_artefact_warning(flagged, names))
    marked = ""
    if marks:
        marked = f' Columns marked "{plots.ARTEFACT_MARK.strip()}" are possible site artefacts.'
    blocks += [
        image(
            plots.beeswarm_plot(ctx.shown, marked=marks),
            "Beeswarm plot of SHAP values per column",
            caption="One dot per record and column; colour shows the column's value (for "
            "categorical columns, its position in the vocabulary)." + marked,
        ),
        image(
            plots.bar_plot(ctx.shown, marked=marks),
            "Bar plot of the mean absolute SHAP value per column",
            caption=f"Mean absolute attribution ({scale}) per column." + marked,
        ),
        table(columns, rows),
    ]
    return blocks


_NOT_COVERED = (
    "Computed on the reported cohort's records, without differential privacy: not covered by "
    "the model's ε."
)


def _translated_note(ctx: ReportContext) -> list[Block]:
    own = ctx.own_columns
    if not own:
        return []
    pairs = ", ".join(f"{user} (the model's {name})" for name, user in own.items())
    return [
        note(
            f"Columns are named and valued as this cohort records them: {pairs}; the model "
            "reads them renamed, converted or recoded by the fit's mapping."
        )
    ]


def _artefact_warning(flagged: Mapping[str, str], names: list[str]) -> list[Block]:
    shown = [n for n in names if n in flagged]
    if not shown:
        return []
    why = "; ".join(f"{n}: {flagged[n]}" for n in shown)
    return [warning(f"Possible site artefacts ({why}; see Shift from the source). " + ARTEFACT_WHY)]


def records_section(ctx: ReportContext) -> list[Block]:
    """Prediction, risk band and waterfall plot of each selected record."""
    exp = ctx.explanation
    scale = _SCALE_WORDS[link_of(exp)]
    counts = np.bincount(ctx.band_indices(ctx.predictions), minlength=len(ctx.bands))
    blocks: list[Block] = [
        note(_NOT_COVERED),
        table(
            ["risk band", "predicted probability", "records"],
            [
                [b.label, f"{b.lower:g} – {b.upper:g}", int(count)]
                for b, count in zip(ctx.bands, counts)
            ],
            caption="Predictions of the whole cohort by risk band",
        ),
    ]
    calibration = ctx.calibration
    if calibration is not None and calibration["miscalibrated"]:
        blocks.append(
            warning(
                "The risk bands use predicted probabilities that are miscalibrated on these "
                f"records ({'; '.join(calibration['reasons'])}; see Calibration): a record's "
                "band is not its risk."
            )
        )
    if not ctx.records:
        blocks.append(note("No record was selected."))
        return blocks
    blocks.append(
        text(
            f"Each waterfall starts from the reference average of the model's {scale} and adds "
            "the attribution of every column to reach the record's output."
        )
    )
    flagged = ctx.flagged
    names = [str(n) for n in exp.feature_names]
    labels = [str(n) for n in ctx.shown.feature_names]  # as the reported cohort names them
    marks = {labels[j] for j, n in enumerate(names) if n in flagged}
    blocks.extend(_translated_note(ctx))
    if marks:
        blocks.append(
            note(
                f'Columns marked "{plots.ARTEFACT_MARK.strip()}" in the waterfalls and '
                f'"{ARTEFACT}" in the tables are possible site artefacts (see Shift from the '
                "source): their attributions may reflect how this site records them rather "
                "than the record's condition."
            )
        )
    shown = ctx.shown.display_data if ctx.shown.display_data is not None else exp.data
    for record in ctx.records:
        p = float(ctx.predictions[record.position])
        band = ctx.band_of(p)
        values = np.asarray(exp.values[record.row], dtype=float)
        base = float(np.ravel(exp.base_values)[record.row])
        top = np.argsort(-np.abs(values), kind="stable")[:10]
        columns = ["column", "value", f"attribution ({scale})"]
        rows = [[labels[j], _value(shown[record.row][j]), float(values[j])] for j in top]
        if flagged:
            columns.append("note")
            for row, j in zip(rows, top):
                row.append(ARTEFACT if names[j] in flagged else "")
        blocks.append(
            subsection(
                record.label,
                [
                    facts(
                        {
                            "predicted probability": p,
                            "risk band": str(band),
                            f"model output ({scale})": base + values.sum(),
                            f"reference average ({scale})": base,
                        }
                    ),
                    image(
                        plots.waterfall_plot(ctx.shown, record.row, marked=marks),
                        f"Waterfall plot of the attributions of {record.label}",
                    ),
                    table(columns, rows, caption="Largest attributions"),
                ],
                badge=band.label,
            )
        )
    return blocks


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    return value
