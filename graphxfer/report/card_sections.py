"""The report sections on what was fitted: the reported cohort and the model card."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.report.blocks import Block, facts, fmt, note, subsection, table, text, warning
from graphxfer.report.context import ReportContext
from graphxfer.report.section_parts import NOT_AVAILABLE, mapping_blocks, share
from graphxfer.report.summary import summary_lines

__all__ = ["cohort_section", "model_card_section"]


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
            [site, int(r["rows"]), int(r["persons"]), share(r["positive_rate"])]
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
        rows.append([col.name, kind, share(values.isna().mean()), _describe(values, col)])
    blocks.append(
        table(["column", "kind", "missing", "distribution"], rows, caption="Feature columns")
    )
    return blocks


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
    blocks.append(subsection("Source cohort", mapping_blocks(card.get("source"))))
    blocks.append(subsection("Encoder", mapping_blocks(card.get("encoder"))))
    tuning = {k: card[k] for k in ("strategy", "target_size") if card.get(k) is not None}
    hyper = card.get("hyperparameters")
    if isinstance(hyper, Mapping):
        tuning.update({k: v for k, v in hyper.items() if k not in tuning})
    blocks.append(
        subsection(
            "Fine-tuning",
            [facts({k.replace("_", " "): v for k, v in tuning.items()})]
            if tuning
            else [note(NOT_AVAILABLE)],
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
            else [note(NOT_AVAILABLE)],
        )
    )
    return blocks


def _alignment(alignment: Any) -> list[Block]:
    if not isinstance(alignment, Mapping) or not alignment:
        return mapping_blocks(alignment)
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


def _transfer_check(ctx: ReportContext, result: Any) -> Block:
    verdict = ctx.fit["transfer_check"]
    if not isinstance(result, Mapping):
        return subsection("Negative-transfer check", [note(NOT_AVAILABLE)])
    badge = verdict["status"] if verdict["status"] != "not available" else None
    blocks: list[Block] = [text(verdict["line"] + ".")]
    if verdict["status"] == "failed":
        blocks = [warning(verdict["line"] + ".")]
    return subsection(
        "Negative-transfer check",
        [*blocks, *mapping_blocks(result)],
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
