"""The built-in report sections: checks at a glance, cohort, model card, measurements on private
records (outside ε: metrics, audit, calibration, shift from the source), global importance and
selected records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain._model import link_of
from graphxfer.release import EVALUATION_NOTE, EVALUATION_TITLE
from graphxfer.report import checks, plots
from graphxfer.report.blocks import (
    Block,
    facts,
    fmt,
    image,
    note,
    subsection,
    table,
    text,
    warning,
)
from graphxfer.report.context import ReportContext
from graphxfer.report.registry import register_section
from graphxfer.report.summary import summary_lines

__all__: list[str] = []

_NOT_AVAILABLE = "Not available: the model card does not include it."
_SCALE_WORDS = {"identity": "probability", "logit": "log-odds"}
_ON_REPORTED = "the reported records (not covered by ε)"
_ARTEFACT = "possible site artefact"
_ARTEFACT_WHY = (
    "A column that this site records differently from the source (far more or fewer values "
    "missing, values outside the source's range) can move predictions because of how the site "
    "records data rather than because of the patient, so its attributions are not evidence of "
    "clinical signal."
)


# ---------------------------------------------------------------------------- checks
@register_section("checks", title="Checks")
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
                    "marked. " + _ARTEFACT_WHY
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


# ---------------------------------------------------------------------------- cohort
@register_section("cohort", title="Cohort")
def cohort_section(ctx: ReportContext) -> list[Block]:
    """Size, outcome rate, sites and a per-column summary of the reported cohort."""
    cohort = ctx.cohort
    target = cohort.schema.target
    group = cohort.schema.group
    overview: dict[str, Any] = {
        "name": cohort.name or "—",
        "records": len(cohort),
        "persons": cohort.n_persons,
        "feature columns": len(cohort.schema.features),
    }
    if target is not None:
        overview[f"outcome ({target.name})"] = f"{cohort.y.mean():.1%} positive"
    if group is not None:
        overview[f"sites ({group.name})"] = cohort.data[group.name].nunique()
    blocks = [
        note(
            "Computed on the reported cohort's records, without differential privacy: not "
            "covered by the model's ε."
        ),
        facts(overview),
    ]
    if group is not None:
        summary = cohort.summary(by="group")
        rows = [
            [site, int(r["rows"]), int(r["persons"]), _share(r["positive_rate"])]
            for site, r in summary.iterrows()
        ]
        blocks.append(
            table(["site", "records", "persons", "positive"], rows, caption="Records per site")
        )
    X = cohort.X
    rows = []
    for col in cohort.schema.features:
        values = X[col.name]
        kind = col.kind + (f" ({col.unit})" if col.unit else "")
        rows.append([col.name, kind, _share(values.isna().mean()), _describe(values, col)])
    blocks.append(
        table(["column", "kind", "missing", "distribution"], rows, caption="Feature columns")
    )
    return blocks


def _share(value: Any) -> str:
    value = float(value)
    return "—" if np.isnan(value) else f"{value:.1%}"


def _describe(values: pd.Series, col: Any) -> str:
    observed = values.dropna()
    if len(observed) == 0:
        return "no observed value"
    if col.kind == "numeric":
        q1, median, q3 = np.quantile(observed.to_numpy(dtype=float), [0.25, 0.5, 0.75])
        return f"median {median:.4g} (IQR {q1:.4g}–{q3:.4g})"
    if col.kind == "binary":
        labels = col.categories or ["0", "1"]
        return f"{labels[1]}: {observed.astype(float).mean():.1%}"
    shares = observed.astype(str).value_counts(normalize=True)
    top = ", ".join(f"{label}: {share:.0%}" for label, share in shares.head(4).items())
    more = len(shares) - 4
    return top + (f" (+{more} more)" if more > 0 else "")


# ---------------------------------------------------------------------------- model card
@register_section("model_card", title="Model card")
def model_card_section(ctx: ReportContext) -> list[Block]:
    """What the model releases: source, encoder, strategy, privacy, transfer check, alignment.

    The card holds what the model file holds (under differential privacy nothing computed
    from the training records outside the ledger); measurements on private records are in
    the next section.
    """
    card = ctx.card or {}
    blocks: list[Block] = []
    if ctx.card is None:
        blocks.append(
            note(
                "The model provides no model card (model_card()); its parts below are not "
                "available."
            )
        )
    else:
        if card.get("title"):
            blocks.append(facts({"model": card["title"]}))
        blocks.append(
            note(
                "What the model releases with its weights. Under differential privacy every "
                "figure here that derives from the training records is an accounted release "
                "(its ε is in the privacy ledger); the rest is public (schema, column names, "
                "options, number of records)."
            )
        )
    blocks.append(
        subsection(
            "Summary",
            [text(line) for line in summary_lines(ctx.fit)],
            anchor="fit-summary",
        )
    )
    blocks.append(subsection("Source cohort", _mapping(card.get("source"))))
    blocks.append(subsection("Encoder", _mapping(card.get("encoder"))))
    tuning = {k: card[k] for k in ("strategy", "target_size") if card.get(k) is not None}
    hyper = card.get("hyperparameters")
    if isinstance(hyper, Mapping):
        tuning.update({k: v for k, v in hyper.items() if k not in tuning})
    blocks.append(
        subsection(
            "Fine-tuning",
            [facts({k.replace("_", " "): v for k, v in tuning.items()})]
            if tuning
            else [note(_NOT_AVAILABLE)],
        )
    )
    blocks.append(_privacy(card.get("privacy")))
    blocks.append(_transfer_check(ctx, card.get("transfer_check")))
    reference = ctx.fit["reference"]
    blocks.append(
        subsection(
            "Reference data of the explanations",
            [text(f"By default explanations are measured against {reference['text']}.")]
            if reference
            else [note("Not available: the model records no reference data (background_).")],
        )
    )
    blocks.append(subsection("Alignment to the source schema", _alignment(card.get("alignment"))))
    withheld = card.get("withheld")
    if withheld:
        blocks.append(
            subsection(
                "Withheld under differential privacy",
                [
                    text(
                        "Computed from the training records without noise, so not released: "
                        + "; ".join(str(w) for w in withheld)
                        + "."
                    )
                ],
            )
        )
    versions = card.get("package_versions")
    blocks.append(
        subsection(
            "Package versions",
            [table(["package", "version"], sorted(versions.items()))]
            if isinstance(versions, Mapping) and versions
            else [note(_NOT_AVAILABLE)],
        )
    )
    return blocks


# ---------------------------------------------------------------------------- evaluation
@register_section("evaluation", title=EVALUATION_TITLE)
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


def _mapping(value: Any) -> list[Block]:
    if isinstance(value, Mapping) and value:
        return [facts({str(k).replace("_", " "): v for k, v in value.items()})]
    if value not in (None, {}, []):
        return [text(str(value))]
    return [note(_NOT_AVAILABLE)]


def _alignment(alignment: Any) -> list[Block]:
    if not isinstance(alignment, Mapping) or not alignment:
        return _mapping(alignment)
    shown: dict[str, Any] = {}
    for key, value in alignment.items():
        label = str(key).replace("_", " ")
        if value is None:
            shown[label] = "withheld (computed from the private records)"
        elif isinstance(value, Mapping) and value and all(v is None for v in value.values()):
            shown[label] = ", ".join(map(str, value)) + " (counts withheld)"
        else:
            shown[label] = value
    return [facts(shown)]


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
                + _ARTEFACT_WHY
            )
        )
    rows = [
        [
            r["column"],
            _share(r["missing"]),
            _share(r["source_missing"]),
            "—" if r["outside"] is None else _share(r["outside"]),
            r["source_range"],
            _ARTEFACT if r["reasons"] else "",
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


def _transfer_check(ctx: ReportContext, result: Any) -> Block:
    verdict = ctx.fit["transfer_check"]
    if not isinstance(result, Mapping):
        return subsection("Negative-transfer check", [note(_NOT_AVAILABLE)])
    badge = verdict["status"] if verdict["status"] != "not available" else None
    blocks: list[Block] = [text(verdict["line"] + ".")]
    if verdict["status"] == "failed":
        blocks = [warning(verdict["line"] + ".")]
    return subsection(
        "Negative-transfer check",
        [*blocks, *_mapping(result)],
        badge=badge,
        anchor="transfer-check",
    )


def _privacy(privacy: Any) -> Block:
    if not isinstance(privacy, Mapping):
        return subsection(
            "Differential privacy",
            [
                note(
                    "Not available: the model card records no privacy guarantee (the model was "
                    "not fine-tuned with differential privacy, or the card does not say)."
                )
            ],
        )
    shown = {
        "ε (epsilon)": privacy.get("epsilon"),
        "δ (delta)": privacy.get("delta"),
        "accountant": privacy.get("accountant"),
    }
    if privacy.get("data_id") is not None:
        shown["data set (ledger label)"] = privacy["data_id"]
    spent = privacy.get("spent_on_data")
    if isinstance(spent, Mapping):
        shown["spent on this data set so far"] = (
            f"ε = {fmt(spent.get('epsilon'))}, δ = {fmt(spent.get('delta'))} over "
            f"{fmt(spent.get('releases'))} release(s)"
        )
    blocks: list[Block] = [facts(shown)]
    ledger = privacy.get("ledger") or []
    entries = [e for e in ledger if isinstance(e, Mapping)]
    if entries:
        keys: list[str] = []
        for entry in entries:
            keys.extend(k for k in entry if k not in keys)
        rows = [[entry.get(k) for k in keys] for entry in entries]
        blocks.append(table([k.replace("_", " ") for k in keys], rows, caption="Privacy ledger"))
    else:
        blocks.append(note("The privacy ledger is empty."))
    return subsection("Differential privacy", blocks, badge="DP")


def _check(title: str, result: Any) -> Block:
    if not isinstance(result, Mapping):
        return subsection(title, [note(_NOT_AVAILABLE)])
    passed = result.get("passed")
    badge = None if passed is None else ("passed" if passed else "failed")
    return subsection(title, _mapping(result), badge=badge)


# ---------------------------------------------------------------------------- importance
@register_section("global_importance", title="Global importance")
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
    columns = ["column", f"mean |SHAP| ({scale})", "share"]
    rows = [
        [names[j], float(mean_abs[j]), _share(mean_abs[j] / total if total else np.nan)]
        for j in order
    ]
    if flagged:
        columns.append("note")
        for row in rows:
            row.append(_ARTEFACT if row[0] in flagged else "")
    blocks: list[Block] = [
        text(
            f"SHAP attributions of {len(values):,} records to the model's {scale} of the outcome "
            f"({ctx.method}). Reference data: {ctx.background}. Each attribution is how much a "
            "column moves the output away from the reference average."
        )
    ]
    blocks.extend(_artefact_warning(flagged, names))
    marked = ""
    if any(n in flagged for n in names):
        marked = f' Columns marked "{plots.ARTEFACT_MARK.strip()}" are possible site artefacts.'
    blocks += [
        image(
            plots.beeswarm_plot(exp, marked=flagged),
            "Beeswarm plot of SHAP values per column",
            caption="One dot per record and column; colour shows the column's value (for "
            "categorical columns, its position in the vocabulary)." + marked,
        ),
        image(
            plots.bar_plot(exp, marked=flagged),
            "Bar plot of the mean absolute SHAP value per column",
            caption=f"Mean absolute attribution ({scale}) per column." + marked,
        ),
        table(columns, rows),
    ]
    return blocks


def _artefact_warning(flagged: Mapping[str, str], names: list[str]) -> list[Block]:
    shown = [n for n in names if n in flagged]
    if not shown:
        return []
    why = "; ".join(f"{n}: {flagged[n]}" for n in shown)
    return [
        warning(f"Possible site artefacts ({why}; see Shift from the source). " + _ARTEFACT_WHY)
    ]


# ---------------------------------------------------------------------------- records
@register_section("records", title="Selected records")
def records_section(ctx: ReportContext) -> list[Block]:
    """Prediction, risk band and waterfall plot of each selected record."""
    exp = ctx.explanation
    scale = _SCALE_WORDS[link_of(exp)]
    counts = np.bincount(ctx.band_indices(ctx.predictions), minlength=len(ctx.bands))
    blocks: list[Block] = [
        table(
            ["risk band", "predicted probability", "records"],
            [
                [b.label, f"{b.lower:g} – {b.upper:g}", int(count)]
                for b, count in zip(ctx.bands, counts)
            ],
            caption="Predictions of the whole cohort by risk band",
        )
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
    if any(n in flagged for n in names):
        blocks.append(
            note(
                f'Columns marked "{plots.ARTEFACT_MARK.strip()}" in the waterfalls and '
                f'"{_ARTEFACT}" in the tables are possible site artefacts (see Shift from the '
                "source): their attributions may reflect how this site records them rather "
                "than the record's condition."
            )
        )
    shown = exp.display_data if exp.display_data is not None else exp.data
    for record in ctx.records:
        p = float(ctx.predictions[record.position])
        band = ctx.band_of(p)
        values = np.asarray(exp.values[record.row], dtype=float)
        base = float(np.ravel(exp.base_values)[record.row])
        top = np.argsort(-np.abs(values), kind="stable")[:10]
        columns = ["column", "value", f"attribution ({scale})"]
        rows = [[names[j], _value(shown[record.row][j]), float(values[j])] for j in top]
        if flagged:
            columns.append("note")
            for row in rows:
                row.append(_ARTEFACT if row[0] in flagged else "")
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
                        plots.waterfall_plot(exp, record.row, marked=flagged),
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
