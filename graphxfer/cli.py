"""The ``graphxfer`` command line.

Every subcommand takes flags and an optional TOML config (``--config file.toml``; flags win over
the file). User errors (bad files, bad options, bad data) print one clear line on stderr and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register a subcommand implementation (its parser is built in :func:`_parser`)."""

    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in _COMMANDS:
            raise RuntimeError(f"subcommand {name!r} registered twice")
        _COMMANDS[name] = (fn, help_)
        return fn

    return deco


class UserError(Exception):
    """An error in the user's options or files: reported in one line, exit status 2."""


def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {path!r} does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path!r} is not valid TOML: {exc}") from exc


def _apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill options the user did not give on the command line from the TOML config."""
    config = _load_config(getattr(args, "config", None))
    if not config:
        return
    section = config.get(args.command, config)
    known = {a.dest for a in parser._actions}
    for key, value in section.items():
        if isinstance(value, dict):
            continue
        dest = key.replace("-", "_")
        if dest not in known:
            raise UserError(
                f"config key {key!r} is not an option of 'graphxfer {args.command}'; "
                f"see 'graphxfer {args.command} --help'"
            )
        if getattr(args, dest) == parser.get_default(dest):
            setattr(args, dest, value)


# ---------------------------------------------------------------------- data
BUNDLED = ("heart-disease", "student-performance", "oulad", "diabetes-130", "synthetic")


def _load_cohort(args: argparse.Namespace, prefix: str = "") -> Any:
    """A Cohort from ``--{prefix}dataset`` / ``--{prefix}sites`` or ``--{prefix}data``."""
    from graphxfer import Cohort, Schema, datasets

    dataset = getattr(args, f"{prefix}dataset")
    data = getattr(args, f"{prefix}data")
    sites = getattr(args, f"{prefix}sites")
    flag = prefix.replace("_", "-")
    if (dataset is None) == (data is None):
        raise UserError(f"give exactly one of --{flag}dataset (bundled) or --{flag}data (a file)")
    if dataset is not None:
        loaders: dict[str, Callable[[], Any]] = {
            "heart-disease": datasets.load_heart_disease,
            "student-performance": datasets.load_student_performance,
            "oulad": datasets.load_oulad,
            "diabetes-130": datasets.load_diabetes_130,
            "synthetic": lambda: datasets.make_multisite(random_state=0),
        }
        if dataset not in loaders:
            raise UserError(f"unknown dataset {dataset!r}; bundled: {', '.join(BUNDLED)}")
        cohort = loaders[dataset]()
    else:
        path = Path(data)
        if not path.is_file():
            raise UserError(f"data file {data!r} does not exist")
        import pandas as pd

        if path.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif path.suffix in (".csv", ".gz", ".txt"):
            frame = pd.read_csv(path)
        else:
            raise UserError(f"data file {data!r}: use .csv or .parquet")
        schema_path = getattr(args, f"{prefix}schema", None)
        if schema_path is not None:
            schema = Schema.from_json(Path(schema_path))
        else:
            target = getattr(args, "target", None)
            if target is None:
                raise UserError(f"--{flag}data needs --{flag}schema (a schema JSON) or --target")
            schema = Schema.infer(frame, target=target, group=getattr(args, "group", None))
        cohort = Cohort(frame, schema, all_missing="keep")
    if sites:
        cohort = cohort.select_groups([s.strip() for s in sites.split(",") if s.strip()])
    return cohort


def _add_data(p: argparse.ArgumentParser, prefix: str = "", what: str = "cohort") -> None:
    flag = prefix.replace("_", "-")
    p.add_argument(f"--{flag}dataset", choices=BUNDLED, help=f"bundled {what}")
    p.add_argument(f"--{flag}data", help=f"{what} as a CSV or Parquet file")
    p.add_argument(f"--{flag}schema", help=f"schema JSON of --{flag}data")
    p.add_argument(f"--{flag}sites", help="comma-separated sites (groups) to keep")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")


def _need(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name, None) in (None, ""):
            raise UserError(f"--{name.replace('_', '-')} is required (flag or config key)")


def _privacy_config(args: argparse.Namespace) -> Any:
    if args.epsilon is None:
        return None
    from privacy import PrivacyConfig

    return PrivacyConfig(
        epsilon=args.epsilon,
        delta=args.delta,
        accountant=args.accountant,
        epochs=args.dp_epochs,
        batch_size=args.dp_batch_size,
        max_grad_norm=args.max_grad_norm,
        learning_rate=args.dp_learning_rate,
        total_budget=args.total_budget,
    )


def _add_privacy(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("differential privacy (on when --epsilon is given)")
    g.add_argument("--epsilon", type=float, default=None, help="target epsilon")
    g.add_argument("--delta", type=float, default=None, help="target delta (default < 1/n)")
    g.add_argument("--accountant", default="prv", choices=("prv", "rdp", "gdp"))
    g.add_argument("--dp-epochs", type=int, default=10)
    g.add_argument("--dp-batch-size", type=int, default=32)
    g.add_argument("--dp-learning-rate", type=float, default=1e-2)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--total-budget", type=float, default=None,
                   help="refuse the fit if the epsilon spent on the data set (see --ledger) "
                        "would exceed this")  # fmt: skip


# ---------------------------------------------------------------------- commands
@command("pretrain", "pretrain an encoder on a source cohort and save it")
def _pretrain(args: argparse.Namespace) -> int:
    from graphxfer import pretrain

    _need(args, "out")
    if args.encoder == "auto":
        return _pretrain_auto(args)
    if args.nproc_per_node > 1 or args.nnodes > 1:  # every process loads the cohort itself
        from graphxfer.distributed import launch_pretrain

        return launch_pretrain(args)
    source = _load_cohort(args)
    params: dict[str, Any] = {
        "epochs": args.epochs,
        "random_state": args.seed,
        "progress": not args.no_progress,
        "device": args.device,
    }
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    encoder = pretrain(source, args.encoder, args.objective, **params)
    path = encoder.save(args.out)
    print(f"pretrained {encoder.name} ({args.objective}) on {len(source):,} records -> {path}")
    return 0


def _pretrain_auto(args: argparse.Namespace) -> int:
    """``pretrain --encoder auto``: choose the encoder on the source, print the leaderboard."""
    from graphxfer import pretrain
    from graphxfer.selection import CANDIDATE_SETS, Leaderboard

    p = _parser()[1]["pretrain"]
    fixed = [
        f"--{name.replace('_', '-')}"
        for name in ("objective", "epochs", "batch_size", "nproc_per_node", "nnodes")
        if getattr(args, name) != p.get_default(name)
    ]
    if fixed:
        raise UserError(
            f"{', '.join(fixed)} cannot be combined with --encoder auto: every candidate "
            "carries its own objective and training options, and the selection runs in one "
            "process (choose the set with --candidates)"
        )
    candidates: Any = args.candidates
    if candidates not in CANDIDATE_SETS:
        import json

        file = Path(candidates)
        if not file.is_file():
            raise UserError(
                f"--candidates {candidates!r} is neither {' nor '.join(CANDIDATE_SETS)} nor a "
                "JSON file"
            )
        try:
            candidates = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"--candidates file {str(file)!r} is not valid JSON: {exc}") from exc
        if not isinstance(candidates, list):
            raise UserError(
                f"--candidates file {str(file)!r} must hold a list of "
                '{"encoder": ..., "objective": ..., "params": {...}} objects'
            )
    source = _load_cohort(args)
    encoder = pretrain(
        source,
        "auto",
        candidates=candidates,
        random_state=args.seed,
        progress=not args.no_progress,
        device=args.device,
        dp_presets=not args.no_dp_presets,
    )
    path = encoder.save(args.out)
    board = Leaderboard.from_dict(encoder.metadata["selection"])
    print(board.format(top=10))
    print(
        f"pretrained {encoder.name} ({board.best.objective}), the best of "
        f"{len(board.results)} candidates, on {len(source):,} records -> {path}"
    )
    return 0


@command("finetune", "fine-tune a pretrained encoder on a target cohort (optionally with DP)")
def _finetune(args: argparse.Namespace) -> int:
    import json

    from graphxfer import TransferClassifier
    from graphxfer.release import format_alignment, released_state

    _need(args, "encoder", "out")
    if args.ledger is not None and args.epsilon is None:
        raise UserError("--ledger records differentially private fits: give --epsilon too")
    target = _load_cohort(args)
    mapping = json.loads(Path(args.mapping).read_text()) if args.mapping else {}
    clf = TransferClassifier(
        args.encoder,
        strategy=args.strategy,
        privacy=_privacy_config(args),
        check_transfer=args.check_transfer,
        epochs=args.epochs,
        mapping=mapping.get("mapping"),
        recode=mapping.get("recode"),
        convert=mapping.get("convert"),
        random_state=args.seed,
        device=args.device,
        progress=not args.no_progress,
        ledger=args.ledger,
        data_id=args.data_id,
    ).fit(target)
    path = clf.save(args.out)
    # only the released view of the fit: under DP no count computed from the records
    state = released_state(clf)
    print(format_alignment(state["alignment"]))
    if clf.ledger_ is not None:
        print(clf.ledger_)
    if args.ledger is not None:
        print(f"privacy ledger of data set {clf.data_id_!r} updated -> {args.ledger}")
    summary = state["training_summary"]
    n = summary["n_rows"] if summary["n_rows"] is not None else summary["n_persons"]
    print(f"fine-tuned ({args.strategy}) on {n:,} records -> {path}")
    return 0


@command("explain", "SHAP explanations of a saved model's predictions (CSV + JSON)")
def _explain(args: argparse.Namespace) -> int:
    from graphxfer import load_model
    from graphxfer.explain import explain, export_explanations

    _need(args, "model", "out")
    model = load_model(args.model)
    cohort = _load_cohort(args)
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
    paths = export_explanations(explanation, p, args.out)
    print("wrote " + ", ".join(str(x) for x in paths))
    return 0


@command("report", "self-contained HTML report of a saved model on a cohort")
def _report(args: argparse.Namespace) -> int:
    from graphxfer import load_model
    from graphxfer.report import report

    _need(args, "model")
    model = load_model(args.model)
    cohort = _load_cohort(args)
    records = [int(r) for r in args.records.split(",")] if args.records else None
    path = report(
        model,
        cohort,
        args.out,
        records=records,
        evaluation=args.evaluation,
        show_ids=args.show_ids,
        method=args.method,
        n_background=args.n_background,
        max_evals=args.max_evals,
        n_global=args.n_global,
        progress=not args.no_progress,
    )
    print(f"wrote {path}")
    return 0


@command("evaluate", "transfer curve: strategies, DP and baselines on the same target splits")
def _evaluate(args: argparse.Namespace) -> int:
    from graphxfer._io import atomic_write_bytes, write_csv_atomic
    from graphxfer.evaluate import transfer_curve

    source = _load_cohort(args, "source_")
    target = _load_cohort(args, "target_")
    epsilons = [None if e.lower() == "none" else float(e) for e in args.epsilons.split(",")]
    curve = transfer_curve(
        source,
        target,
        encoder=args.encoder,
        pretrain_params={"epochs": args.pretrain_epochs, "device": args.device},
        target_sizes=[int(n) for n in args.sizes.split(",")],
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
    import io

    buf = io.BytesIO()
    curve.plot().savefig(buf, format="png", dpi=120)
    atomic_write_bytes(out.with_suffix(".png"), buf.getvalue())
    cols = ["label", "n", "repeats", "auroc_mean", "auroc_ci_low", "auroc_ci_high"]
    print(curve.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
    return 0


@command("demo", "the main job on the bundled heart-disease cohorts, with an HTML report")
def _demo(args: argparse.Namespace) -> int:
    from graphxfer.demo import run_demo

    return run_demo(out_dir=Path(args.out), progress=not args.no_progress, seed=args.seed,
                    quick=args.quick)  # fmt: skip


@command("cohorts", "per-site summary of every bundled cohort")
def _cohorts(args: argparse.Namespace) -> int:
    import pandas as pd

    from graphxfer import datasets

    loaders: list[tuple[str, Callable[..., Any]]] = [
        ("Heart disease (UCI), 4 hospitals", datasets.load_heart_disease),
        ("Student performance (UCI), 2 schools x 2 subjects", datasets.load_student_performance),
        ("OULAD, 7 course modules", datasets.load_oulad),
        ("Diabetes 130-US hospitals, admission sources", datasets.load_diabetes_130),
    ]
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for title, loader in loaders:
            cohort = loader()
            print(f"\n== {title}: {len(cohort):,} rows, {len(cohort.schema.features)} features")
            print(format_summary(cohort.summary()))
    return 0


def format_summary(summary: Any, max_missing_columns: int = 6) -> str:
    """Per-site table: rows, persons, positive rate and the most-missing columns."""
    import pandas as pd

    table = summary.copy()
    miss = [c for c in table.columns if c.startswith("missing:")]
    overall = table[miss].mean().sort_values(ascending=False)
    shown = [c for c in overall.index[:max_missing_columns] if overall[c] > 0]
    out = pd.DataFrame(index=table.index)
    out["rows"] = table["rows"].astype(int)
    out["persons"] = table["persons"].astype(int)
    out["positive rate"] = table["positive_rate"].map(lambda v: f"{v:.3f}")
    for c in shown:
        out[c.replace("missing:", "miss ")] = table[c].map(lambda v: f"{v:.0%}")
    rest = len([c for c in miss if c not in shown])
    text = out.to_string()
    if rest:
        text += f"\n({rest} more feature columns; see Cohort.summary() for every column)"
    return text


# ---------------------------------------------------------------------- parser
def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="graphxfer",
        description="Transfer learning from a large source cohort to a small private target.",
    )
    from graphxfer import __version__

    parser.add_argument("--version", action="version", version=f"graphxfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, (_, help_) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", help="TOML file with default options", default=None)
        subparsers[name] = p
    _add_arguments(subparsers)
    return parser, subparsers


def _add_arguments(subparsers: dict[str, argparse.ArgumentParser]) -> None:
    """Per-subcommand options."""
    from graphxfer.encoder import GRAPH_ENCODERS, TABULAR_ENCODERS
    from graphxfer.selection import CANDIDATE_SETS

    p = subparsers["pretrain"]
    _add_data(p, what="source cohort")
    p.add_argument("--target", help="target column when --data has no schema")
    p.add_argument("--group", help="group (site) column when --data has no schema")
    p.add_argument("--encoder", default="ft-transformer",
                   choices=(*TABULAR_ENCODERS, *GRAPH_ENCODERS, "auto"),
                   help="an encoder, or 'auto': chosen by leave-one-site-out validation on "
                        "the source")  # fmt: skip
    p.add_argument("--candidates", default="fast",
                   help=f"candidates of --encoder auto: {' or '.join(CANDIDATE_SETS)} "
                        "(default 'fast'), or a JSON file with a list of "
                        "{encoder, objective, params}")  # fmt: skip
    p.add_argument("--no-dp-presets", action="store_true",
                   help="with --encoder auto: skip tuning the private fine-tuning settings on "
                        "the source")  # fmt: skip
    p.add_argument("--objective", default="supervised")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", help="model folder or .zip to write (required)")
    p.add_argument("--nproc-per-node", type=int, default=1,
                   help="processes per machine (DistributedDataParallel via torchrun)")  # fmt: skip
    p.add_argument("--nnodes", type=int, default=1, help="machines taking part")
    p.add_argument("--node-rank", type=int, default=0, help="this machine's rank")
    p.add_argument("--master-addr", default="127.0.0.1", help="address of rank 0")
    p.add_argument("--master-port", type=int, default=29500, help="port of rank 0")
    _add_common(p)

    p = subparsers["finetune"]
    _add_data(p, what="target cohort")
    p.add_argument("--target", help="target column when --data has no schema")
    p.add_argument("--group", help="group (site) column when --data has no schema")
    p.add_argument("--encoder", help="encoder model file from pretrain (required)")
    p.add_argument("--strategy", default="lp-ft",
                   choices=("linear-probe", "full", "partial", "lp-ft"))  # fmt: skip
    p.add_argument("--epochs", type=int, default=30, help="non-private epochs")
    p.add_argument("--mapping", help="JSON with optional 'mapping', 'recode', 'convert'")
    p.add_argument("--check-transfer", action="store_true")
    p.add_argument("--out", help="model folder or .zip to write (required)")
    p.add_argument("--ledger", help="privacy ledger JSON of the target data set: read (or "
                   "started), charged with this fit and written back, so budgets compose "
                   "across fits")  # fmt: skip
    p.add_argument("--data-id", help="label of the target data set in the ledger "
                   "(default 'target:<cohort name>')")  # fmt: skip
    _add_privacy(p)
    _add_common(p)

    for name in ("explain", "report"):
        p = subparsers[name]
        _add_data(p)
        p.add_argument("--target", help="target column when --data has no schema")
        p.add_argument("--group", help="group (site) column when --data has no schema")
        p.add_argument("--model", help="fitted model file from finetune (required)")
        p.add_argument("--method", default="auto",
                       choices=("auto", "tree", "exact", "permutation", "deep",
                                "gradient"))  # fmt: skip
        p.add_argument("--n-background", type=int, default=50,
                       help="background records of the explainer (default 50)")  # fmt: skip
        p.add_argument("--max-evals", type=int, default=None,
                       help="model evaluations per record (permutation budget)")  # fmt: skip
        _add_common(p)
    subparsers["explain"].add_argument("--out", help="path prefix of CSV/JSON (required)")
    subparsers["report"].add_argument("--out", default="report.html", help="HTML file")
    subparsers["report"].add_argument("--records", help="comma-separated row positions")
    subparsers["report"].add_argument("--show-ids", action="store_true")
    subparsers["report"].add_argument(
        "--evaluation",
        help="evaluation JSON (model.save_evaluation): metrics and audit on private records, "
        "shown in their own section, outside epsilon",
    )
    subparsers["report"].add_argument(
        "--n-global", type=int, default=200, help="records explained for the global plots"
    )

    p = subparsers["evaluate"]
    _add_data(p, "source_", "source cohort")
    _add_data(p, "target_", "target cohort")
    p.add_argument("--target", help="target column when a --*-data file has no schema")
    p.add_argument("--group", help="group column when a --*-data file has no schema")
    p.add_argument("--encoder", default="ft-transformer")
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--sizes", default="25,50,100")
    p.add_argument("--strategies", default="linear-probe,lp-ft")
    p.add_argument("--epsilons", default="none,1", help="'none' = not private")
    p.add_argument("--baselines", default="xgboost,logistic,source-only,pooled")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="reports/transfer-curve", help="path prefix of outputs")
    _add_common(p)

    p = subparsers["demo"]
    p.add_argument("--out", default="reports", help="folder for the report and model files")
    p.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    _add_common(p)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphxfer`` console script."""
    parser, subparsers = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from graphxfer.exceptions import GraphxferError
    from privacy.exceptions import PrivacyError
    from tabular.exceptions import TabularError

    fn, _ = _COMMANDS[args.command]
    try:
        _apply_config(args, subparsers[args.command])
        return fn(args)
    except (UserError, GraphxferError, TabularError, PrivacyError, FileNotFoundError) as exc:
        print(f"graphxfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
