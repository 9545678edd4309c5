"""``graphxfer predict``, ``explain``, ``report`` and ``evaluate``: what a fitted model says
about records, and how transfer compares with the baselines."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from graphxfer._cli_cohorts import UserError, resolve_cohort
from graphxfer.cli._base import (
    add_columns,
    add_common,
    add_data,
    command,
    need,
    positive_int,
)

__all__: list[str] = []

T = TypeVar("T")


def _add_model_data(p: argparse.ArgumentParser) -> None:
    add_data(p)
    add_columns(p, target_optional=True)
    p.add_argument("--model", help="fitted model file from finetune (required)")


def _add_explainer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="auto",
                   choices=("auto", "tree", "exact", "permutation", "deep",
                            "gradient"))  # fmt: skip
    p.add_argument("--n-background", type=positive_int, default=50,
                   help="background records of the explainer (default 50)")  # fmt: skip
    p.add_argument("--max-evals", type=positive_int, default=None,
                   help="model evaluations per record (permutation budget)")  # fmt: skip


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The fitted model of ``--model`` and the records (their outcome optional)."""
    from graphxfer import load_model

    model = load_model(args.model)
    return model, resolve_cohort(args, target_required=False).cohort


# ---------------------------------------------------------------------- predict
def _predict_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_data(p)
    p.add_argument("--out", help="CSV of the predictions to write (required)")
    add_common(p)


@command("predict", "predicted probability of every record, keyed by --id", _predict_arguments)
def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from graphxfer._io import write_csv_atomic

    need(args, "model", "out")
    model, cohort = _load(args)
    table = pd.DataFrame(index=range(len(cohort)))
    ids = cohort.ids
    if ids is not None:
        table[ids.name] = ids.to_numpy(dtype=object)
    table["prediction"] = model.predict_proba(cohort)[:, 1]
    write_csv_atomic(args.out, table)
    print(f"wrote {args.out}: {len(table):,} predictions{_keyed(ids)}")
    return 0


def _keyed(ids: Any) -> str:
    return f", keyed by {ids.name!r}" if ids is not None else ", by row (no --id column)"


# ---------------------------------------------------------------------- explain
def _explain_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_data(p)
    _add_explainer(p)
    p.add_argument("--out", help="path prefix of CSV/JSON (required)")
    add_common(p)


@command(
    "explain",
    "SHAP explanations of a saved model's predictions (CSV + JSON, keyed by --id)",
    _explain_arguments,
)
def _explain(args: argparse.Namespace) -> int:
    from graphxfer.explain import explain, export_explanations

    need(args, "model", "out")
    model, cohort = _load(args)
    explanation = explain(
        model,
        cohort,
        method=args.method,
        n_background=args.n_background,
        max_evals=args.max_evals,
        random_state=args.seed,
        progress=not args.no_progress,
    )
    p = model.predict_proba(cohort)[:, 1]
    ids = cohort.ids
    paths = export_explanations(explanation, p, args.out, ids=ids)
    where = f" (column 'id' holds {ids.name!r})" if ids is not None else ""
    print("wrote " + ", ".join(str(x) for x in paths) + where)
    return 0


# ---------------------------------------------------------------------- report
def _report_arguments(p: argparse.ArgumentParser) -> None:
    _add_model_data(p)
    _add_explainer(p)
    p.add_argument("--out", default="report.html", help="HTML file")
    p.add_argument("--records",
                   help="records with their own part: comma-separated ids with --id, else row "
                        "positions (default: the 3 highest- and 3 lowest-risk)")  # fmt: skip
    p.add_argument("--show-ids", action="store_true",
                   help="show the id column in the report and its CSV/JSON")  # fmt: skip
    p.add_argument("--hide-ids", action="store_true",
                   help="with --id: keep ids out of the report and its CSV/JSON")  # fmt: skip
    p.add_argument("--evaluation",
                   help="evaluation JSON (finetune --test-size, model.save_evaluation): metrics "
                        "and audit on private records, shown in their own section, outside "
                        "epsilon")  # fmt: skip
    p.add_argument("--n-global", type=positive_int, default=200,
                   help="records explained for the global plots")  # fmt: skip
    add_common(p)


@command("report", "self-contained HTML report of a saved model on a cohort", _report_arguments)
def _report(args: argparse.Namespace) -> int:
    from graphxfer.report import report

    need(args, "model")
    if args.show_ids and args.hide_ids:
        raise UserError("--show-ids and --hide-ids contradict each other; give one")
    if args.evaluation is not None and not Path(args.evaluation).is_file():
        raise UserError(f"evaluation file {args.evaluation!r} does not exist")
    records = _records(args.records, by_id=args.id is not None)
    model, cohort = _load(args)
    path = report(
        model,
        cohort,
        args.out,
        records=records,
        evaluation=args.evaluation,
        show_ids=args.show_ids or (args.id is not None and not args.hide_ids),
        method=args.method,
        n_background=args.n_background,
        max_evals=args.max_evals,
        n_global=args.n_global,
        progress=not args.no_progress,
        random_state=args.seed,
    )
    print(f"wrote {path}")
    return 0


def _records(text: str | None, *, by_id: bool) -> list[Any] | None:
    """``--records``: ids (strings) with ``--id``, else row positions."""
    if not text:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if by_id:
        return list(items)
    return _parse_list(text, "--records", int, "row positions (with --id: ids)")


# ---------------------------------------------------------------------- evaluate
CURVE_BASELINES = ("logistic-source", "logistic", "xgboost", "logistic-pooled", "zero-shot")
"""The default baselines of ``evaluate``: those of :func:`graphxfer.evaluate.transfer_curve`."""


def _pretrain_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"device": args.device}
    if args.pretrain_epochs is not None:
        if args.encoder == "auto":
            raise UserError(
                "--pretrain-epochs sets the epochs of a named encoder; with --encoder auto "
                "each candidate has its own"
            )
        params["epochs"] = args.pretrain_epochs
    return params


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, "source_", "source cohort")
    add_data(p, "target_", "target cohort")
    add_columns(p)
    p.add_argument("--encoder", default="auto",
                   help="encoder to pretrain on the source (default 'auto': chosen by "
                        "leave-one-site-out validation, as 'pretrain --encoder auto')")  # fmt: skip
    p.add_argument("--pretrain-epochs", type=positive_int, default=None,
                   help="pretraining epochs of a named encoder (not with 'auto', whose "
                        "candidates carry their own)")  # fmt: skip
    p.add_argument("--sizes", default="25,50,100", help="target training sizes")
    p.add_argument(
        "--strategies",
        default="anchored,lp-ft",
        help="fine-tuning strategies, comma-separated (default: anchored,lp-ft)",
    )
    p.add_argument("--epsilons", default="none,1", help="'none' = not private")
    p.add_argument("--baselines", default=",".join(CURVE_BASELINES),
                   help="comma-separated (default: the yardstick, logistic regression on the "
                        "source only, on the target only and pooled, target-only XGBoost, "
                        "and the zero-shot source model)")  # fmt: skip
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--out", default="reports/transfer-curve", help="path prefix of outputs")
    add_common(p)


@command(
    "evaluate",
    "transfer curve: strategies, DP and baselines on the same target splits",
    _evaluate_arguments,
)
def _evaluate(args: argparse.Namespace) -> int:
    from graphxfer._io import atomic_write_bytes, write_csv_atomic
    from graphxfer.evaluate import transfer_curve

    sizes = _parse_list(args.sizes, "--sizes", positive_int, "positive integers")
    epsilons = _parse_list(args.epsilons, "--epsilons", _epsilon, "positive numbers or 'none'")
    source = resolve_cohort(args, "source_").cohort
    target = resolve_cohort(args, "target_").cohort
    curve = transfer_curve(
        source,
        target,
        encoder=args.encoder,
        pretrain_params=_pretrain_params(args),
        target_sizes=sizes,
        strategies=args.strategies.split(","),
        epsilons=epsilons,
        baselines=args.baselines.split(","),
        repeats=args.repeats,
        random_state=args.seed,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    write_csv_atomic(out.with_suffix(".csv"), curve.results)
    write_csv_atomic(out.with_name(out.stem + "-summary.csv"), curve.summary)
    buf = io.BytesIO()
    curve.plot().savefig(buf, format="png", dpi=120)
    atomic_write_bytes(out.with_suffix(".png"), buf.getvalue())
    cols = ["label", "n", "repeats", "auroc_mean", "auroc_ci_low", "auroc_ci_high"]
    print(curve.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        "computed on the target cohort's records without differential privacy: not covered "
        "by ε (an ε names the budget of each private fit, which no ledger records)"
    )
    print(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
    return 0


def _epsilon(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _parse_list(text: str, option: str, parse: Callable[[str], T], what: str) -> list[T]:
    """A comma-separated option, each item through ``parse``; a bad item is a UserError."""
    out: list[T] = []
    for item in (s.strip() for s in text.split(",")):
        try:
            out.append(parse(item))
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            raise UserError(f"{option} takes comma-separated {what}, got {item!r}") from None
    return out
