"""The built-in report sections: cohort, model card, measurements on private records (outside
ε), global importance and selected records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain._model import link_of
from graphxfer.release import EVALUATION_NOTE, EVALUATION_TITLE
from graphxfer.report import plots
from graphxfer.report.blocks import Block, facts, fmt, image, note, subsection, table, text
from graphxfer.report.context import ReportContext
from graphxfer.report.registry import register_section

__all__: list[str] = []

_NOT_AVAILABLE = "Not available: the model card does not include it."
_SCALE_WORDS = {"identity": "probability", "logit": "log-odds"}


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
    blocks.append(subsection("Source cohort", _mapping(card.get("source"))))
    blocks.append(subsection("Encoder", _mapping(card.get("encoder"))))
    tuning = {k: card[k] for k in ("strategy", "target_size") if card.get(k) is not None}
    blocks.append(
        subsection(
            "Fine-tuning",
            [facts({k.replace("_", " "): v for k, v in tuning.items()})]
            if tuning
            else [note(_NOT_AVAILABLE)],
        )
    )
    blocks.append(_privacy(card.get("privacy")))
    blocks.append(_check("Negative-transfer check", card.get("transfer_check")))
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
    return [
        note(
            EVALUATION_NOTE
            + " The calibration below uses the reported cohort's records and outcomes."
        ),
        subsection("Metrics", _metrics(metrics)),
        _check("Privacy audit", audit),
        subsection("Calibration", _calibration(ctx)),
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
    if not cohort.has_target:
        return [note("Not available: this cohort has no outcome column to compare with.")]
    y = cohort.y
    p = ctx.predictions
    n_bins = int(min(10, max(2, len(y) // 30)))
    if len(np.unique(y)) < 2 or len(y) < 2 * n_bins:
        return [note("Not available: too few records, or a single outcome, to bin.")]
    brier = float(np.mean((p - y) ** 2))
    return [
        text(
            f"Predictions on this cohort's {len(y):,} records against their outcomes. This is "
            "held-out evidence only when the model was not fitted on these records."
        ),
        image(
            plots.calibration_plot(y, p, n_bins),
            "Reliability diagram: observed outcome rate against predicted probability",
        ),
        facts({"Brier score": brier, "mean prediction": float(p.mean()), "outcome rate": y.mean()}),
    ]


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
    """Beeswarm and bar plots of the SHAP values, and the mean absolute attribution table."""
    exp = ctx.explanation
    scale = _SCALE_WORDS[link_of(exp)]
    values = np.asarray(exp.values, dtype=float)
    mean_abs = np.abs(values).mean(axis=0)
    total = mean_abs.sum()
    order = np.argsort(-mean_abs, kind="stable")
    rows = [
        [exp.feature_names[j], float(mean_abs[j]), _share(mean_abs[j] / total if total else np.nan)]
        for j in order
    ]
    return [
        text(
            f"SHAP attributions of {len(values):,} records to the model's {scale} of the outcome "
            f"({ctx.method}). Reference data: {ctx.background}. Each attribution is how much a "
            "column moves the output away from the reference average."
        ),
        image(
            plots.beeswarm_plot(exp),
            "Beeswarm plot of SHAP values per column",
            caption="One dot per record and column; colour shows the column's value (for "
            "categorical columns, its position in the vocabulary).",
        ),
        image(
            plots.bar_plot(exp),
            "Bar plot of the mean absolute SHAP value per column",
            caption=f"Mean absolute attribution ({scale}) per column.",
        ),
        table(["column", f"mean |SHAP| ({scale})", "share"], rows),
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
    if not ctx.records:
        blocks.append(note("No record was selected."))
        return blocks
    blocks.append(
        text(
            f"Each waterfall starts from the reference average of the model's {scale} and adds "
            "the attribution of every column to reach the record's output."
        )
    )
    names = list(exp.feature_names)
    shown = exp.display_data if exp.display_data is not None else exp.data
    for record in ctx.records:
        p = float(ctx.predictions[record.position])
        band = ctx.band_of(p)
        values = np.asarray(exp.values[record.row], dtype=float)
        base = float(np.ravel(exp.base_values)[record.row])
        top = np.argsort(-np.abs(values), kind="stable")[:10]
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
                        plots.waterfall_plot(exp, record.row),
                        f"Waterfall plot of the attributions of {record.label}",
                    ),
                    table(
                        ["column", "value", f"attribution ({scale})"],
                        [[names[j], _value(shown[record.row][j]), float(values[j])] for j in top],
                        caption="Largest attributions",
                    ),
                ],
                badge=band.label,
            )
        )
    return blocks


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    return value
