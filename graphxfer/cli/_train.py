"""``graphxfer pretrain`` and ``graphxfer finetune``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graphxfer._cli_cohorts import UserError, resolve_cohort
from graphxfer.cli._base import (
    add_columns,
    add_common,
    add_data,
    add_privacy,
    build_parser,
    command,
    dp_hyperparameters,
    fraction,
    need,
    positive_int,
    privacy_config,
)
from graphxfer.exceptions import GraphxferError

__all__ = ["early_stopping_note", "write_records"]


# ---------------------------------------------------------------------- pretrain
def _pretrain_arguments(p: argparse.ArgumentParser) -> None:
    from graphxfer.registry import EncoderNames
    from graphxfer.selection import CANDIDATE_SETS

    add_data(p, what="source cohort")
    add_columns(p)
    # the names are read from the encoder registries when they are needed (metavar: not
    # when the parser is built, which would import torch for every command)
    p.add_argument("--encoder", default="auto",
                   choices=EncoderNames("auto"), metavar="ENCODER",
                   help="the encoder: %(choices)s (default 'auto': chosen by leave-one-site-out "
                        "validation on the source, with the private fine-tuning settings "
                        "simulated there)")  # fmt: skip
    p.add_argument("--candidates", default="fast",
                   help=f"candidates of --encoder auto: {' or '.join(CANDIDATE_SETS)} "
                        "(default 'fast'), or a JSON file with a list of "
                        "{encoder, objective, params}")  # fmt: skip
    p.add_argument("--no-dp-presets", action="store_true",
                   help="with --encoder auto: skip tuning the private fine-tuning settings on "
                        "the source")  # fmt: skip
    p.add_argument("--objective", default="supervised")
    p.add_argument("--site-intercepts", action="store_true",
                   help="--encoder linear: one intercept per source site (coefficients within "
                        "sites; needs --group); --encoder auto uses it for its linear "
                        "candidates")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=50)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--patience", type=positive_int, default=None,
                   help="epochs without a better validation loss before early stopping "
                        "(default: the encoder's)")  # fmt: skip
    p.add_argument("--out", help="model folder or .zip to write (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even when it holds something other than a graphxfer "
                        "model file (a model file is always replaced, atomically)")  # fmt: skip
    p.add_argument("--nproc-per-node", type=positive_int, default=1,
                   help="processes per machine (DistributedDataParallel via torchrun)")  # fmt: skip
    p.add_argument("--nnodes", type=positive_int, default=1, help="machines taking part")
    p.add_argument("--node-rank", type=int, default=0, help="this machine's rank")
    p.add_argument("--master-addr", default="127.0.0.1", help="address of rank 0")
    p.add_argument("--master-port", type=int, default=29500, help="port of rank 0")
    add_common(p)


@command("pretrain", "pretrain an encoder on a source cohort and save it", _pretrain_arguments)
def _pretrain(args: argparse.Namespace) -> int:
    from graphxfer import pretrain

    need(args, "out")
    if args.encoder == "auto":
        return _pretrain_auto(args)
    if args.nproc_per_node > 1 or args.nnodes > 1:  # every process loads the cohort itself
        from graphxfer.distributed import launch_pretrain

        if args.patience is not None or args.site_intercepts:
            flag = "--patience" if args.patience is not None else "--site-intercepts"
            raise UserError(
                f"{flag} applies to pretraining in one process; drop it with "
                "--nproc-per-node or --nnodes"
            )

        return launch_pretrain(args)
    source = resolve_cohort(args).cohort
    params: dict[str, Any] = {
        "epochs": args.epochs,
        "random_state": args.seed,
        "progress": not args.no_progress,
        "device": args.device,
    }
    for name in ("batch_size", "patience"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.site_intercepts:
        params["site_intercepts"] = True
    encoder = pretrain(source, args.encoder, args.objective, **params)
    note = early_stopping_note(encoder.history, args.epochs)
    if note:
        print(note)
    path = encoder.save(args.out, overwrite=args.overwrite)
    print(f"pretrained {encoder.name} ({args.objective}) on {len(source):,} records -> {path}")
    return 0


def early_stopping_note(history: Sequence[Mapping[str, Any]], requested: int) -> str | None:
    """One line saying that early stopping ended pretraining before ``requested`` epochs.

    Parameters
    ----------
    history : sequence of dict
        The encoder's per-epoch pretraining record (``Encoder.history``: ``epoch`` and
        ``val_loss`` per epoch).
    requested : int
        The epochs asked for.

    Returns
    -------
    str or None
        None when every requested epoch ran, or nothing was recorded.

    Examples
    --------
    >>> history = [{"epoch": e, "val_loss": v} for e, v in enumerate([0.6, 0.5, 0.55, 0.58], 1)]
    >>> early_stopping_note(history, 40)
    'early stopping: stopped at epoch 4 of 40, best validation loss 0.5 at epoch 2'
    """
    if not history:
        return None
    last = int(history[-1].get("epoch", len(history)))
    if last >= requested:
        return None
    scored = [
        (row["val_loss"], int(row["epoch"])) for row in history if row.get("val_loss") is not None
    ]
    if not scored:
        return f"early stopping: stopped at epoch {last} of {requested}"
    best_loss, best_epoch = min(scored, key=lambda pair: (pair[0], pair[1]))
    return (
        f"early stopping: stopped at epoch {last} of {requested}, best validation loss "
        f"{best_loss:.4g} at epoch {best_epoch}"
    )


def _pretrain_auto(args: argparse.Namespace) -> int:
    """``pretrain --encoder auto``: choose the encoder on the source, print the leaderboard."""
    from graphxfer import pretrain
    from graphxfer.selection import CANDIDATE_SETS, Leaderboard

    p = build_parser()[1]["pretrain"]
    fixed = [
        f"--{name.replace('_', '-')}"
        for name in (
            "objective",
            "epochs",
            "batch_size",
            "patience",
            "nproc_per_node",
            "nnodes",
            "site_intercepts",
        )
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
    source = resolve_cohort(args).cohort
    encoder = pretrain(
        source,
        "auto",
        candidates=candidates,
        random_state=args.seed,
        progress=not args.no_progress,
        device=args.device,
        dp_presets=not args.no_dp_presets,
    )
    path = encoder.save(args.out, overwrite=args.overwrite)
    board = Leaderboard.from_dict(encoder.metadata["selection"])
    print(board.format(top=10))
    print(
        f"pretrained {encoder.name} ({board.best.objective}), the best of "
        f"{len(board.results)} candidates, on {len(source):,} records -> {path}"
    )
    return 0


# ---------------------------------------------------------------------- finetune
def _finetune_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, what="target cohort")
    add_columns(p)
    p.add_argument("--encoder", help="encoder model file from pretrain (required)")
    p.add_argument("--strategy", default="anchored",
                   choices=("anchored", "linear-probe", "full", "partial", "lp-ft"),
                   help="fine-tuning strategy (default: anchored)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, default=30, help="non-private epochs")
    p.add_argument("--mapping", help="JSON with optional 'mapping', 'recode', 'convert'")
    p.add_argument("--check-transfer", action=argparse.BooleanOptionalAction, default=None,
                   help="guard against negative transfer (default: on with --epsilon and the "
                        "anchored strategy, the private guard paid from the same budget; off "
                        "otherwise, where --check-transfer compares with a target-only "
                        "baseline by cross-fitting)")  # fmt: skip
    p.add_argument("--out", help="model folder or .zip to write (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even when it holds something other than a graphxfer "
                        "model file (a model file is always replaced, atomically)")  # fmt: skip
    p.add_argument("--ledger", help="privacy ledger JSON of the target data set: read (or "
                   "started), charged with this fit and written back, so budgets compose "
                   "across fits")  # fmt: skip
    p.add_argument("--data-id", help="label of the target data set in the ledger "
                   "(default 'target:<cohort name>')")  # fmt: skip
    g = p.add_argument_group("held-out evaluation (on when --test-size is given)")
    g.add_argument("--test-size", type=fraction, default=None, metavar="FRACTION",
                   help="hold out this share of the persons (stratified by outcome, seeded; "
                        "with --epsilon each person independently, by secret randomness): "
                        "the model is fitted on the rest, and measured on them")  # fmt: skip
    g.add_argument("--random-state", type=int, default=None,
                   help="seed of the held-out split and its bootstrap (default: --seed); "
                        "with --epsilon of the bootstrap only")  # fmt: skip
    g.add_argument("--test-out", help="CSV of the held-out records, every column of the data "
                   "(default: <out>-test.csv)")  # fmt: skip
    g.add_argument("--evaluation-out", help="evaluation JSON of the held-out metrics, for "
                   "'graphxfer report --evaluation' (default: <out>-evaluation.json)")  # fmt: skip
    g.add_argument("--n-boot", type=positive_int, default=500,
                   help="bootstrap resamples of the held-out metrics' 95%% confidence "
                        "intervals (default 500)")  # fmt: skip
    add_privacy(p)
    add_common(p)


@command(
    "finetune",
    "fine-tune a pretrained encoder on a target cohort (optionally with DP and a held-out part)",
    _finetune_arguments,
)
def _finetune(args: argparse.Namespace) -> int:
    from graphxfer import TransferClassifier
    from graphxfer.release import format_alignment, released_state, withheld_data_warnings

    need(args, "encoder", "out")
    if args.ledger is not None and args.epsilon is None:
        raise UserError("--ledger records differentially private fits: give --epsilon too")
    if args.epsilon is not None and args.data is not None and args.schema is None:
        # a schema inferred here would come from the private records: their kinds and the
        # vocabularies of columns the source lacks would be released with the model
        raise UserError(
            "--epsilon with --data needs --schema: under differential privacy the target's "
            "schema cannot be inferred from its records (the column kinds and categories "
            "would be released with the model); declare it, e.g. starting from the schema "
            "the encoder was pretrained with"
        )
    p = build_parser()[1]["finetune"]
    for option in ("test_out", "evaluation_out", "random_state", "n_boot"):
        if getattr(args, option) != p.get_default(option) and args.test_size is None:
            raise UserError(f"--{option.replace('_', '-')} needs --test-size")
    mapping = _read_mapping(args.mapping)
    # under DP, reading the records warns without their columns, counts or values, as a fit does
    with withheld_data_warnings(args.epsilon is not None):
        loaded = resolve_cohort(args)
    target, test = loaded.cohort, None
    seed = args.seed if args.random_state is None else args.random_state
    if args.test_size is not None and args.epsilon is not None:
        target, test = private_holdout(target, args.test_size, where=loaded.where)
    elif args.test_size is not None:
        try:
            target, test = target.split(args.test_size, stratify=True, random_state=seed)
        except GraphxferError as exc:
            raise UserError(f"{loaded.where}: --test-size {args.test_size}: {exc}") from exc
    clf = TransferClassifier(
        args.encoder,
        strategy=args.strategy,
        privacy=privacy_config(args),
        dp_hyperparameters=dp_hyperparameters(args),
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
    path = clf.save(args.out, overwrite=args.overwrite)
    # only the released view of the fit: under DP no count computed from the records
    state = released_state(clf)
    print(format_alignment(state["alignment"]))
    if clf.ledger_ is not None:
        print(format_dp_hyperparameters(state["hyperparameters"]))
        print(clf.ledger_)
    if state["transfer_check"] is not None:
        from graphxfer.report.summary import transfer_verdict

        print(transfer_verdict(state["transfer_check"], state["privacy"])["line"])
    if args.ledger is not None:
        print(f"privacy ledger of data set {clf.data_id_!r} updated -> {args.ledger}")
    summary = state["training_summary"]
    n = summary["n_rows"] if summary["n_rows"] is not None else summary["n_persons"]
    print(f"fine-tuned ({args.strategy}) on {n:,} records -> {path}")
    if test is not None:
        _held_out(args, clf, test, loaded.frame, seed)
    return 0


def format_dp_hyperparameters(hp: dict[str, Any] | None) -> str:
    """One line: the DP fine-tuning settings of a private fit and where they came from."""
    if not hp:
        return "DP hyper-parameters: not recorded"
    shown = [
        f"{label} {hp[key]:g}" if isinstance(hp.get(key), float) else f"{label} {hp.get(key)}"
        for key, label in (
            ("epochs", "epochs"),
            ("batch_size", "expected batch"),
            ("learning_rate", "learning rate"),
            ("max_grad_norm", "clipping bound"),
            ("optimizer", "optimizer"),
        )
        if hp.get(key) is not None
    ]
    return f"DP hyper-parameters ({hp.get('source', 'unknown source')}): {', '.join(shown)}"


def private_holdout(cohort: Any, share: float, *, where: str = "the data") -> tuple[Any, Any]:
    """Hold out each person independently with probability ``share``, by secret randomness.

    The split of a private fit's input is part of what ε covers. A seeded, stratified split
    (:meth:`Cohort.split <graphxfer.Cohort.split>`) lets one person change who else is
    trained on: its outcome moves the strata, and its place in the file moves everyone after
    it. Here every person's side is an independent draw from the operating system's entropy
    (as the DP noise is), so a person's presence changes nothing but its own side.

    Returns
    -------
    train, test : Cohort
    """
    import numpy as np

    person = cohort.person_index
    n_persons = int(person.max()) + 1
    held = np.random.default_rng().random(n_persons) < share  # unseeded: OS entropy
    if held.all() or not held.any():
        raise UserError(
            f"{where}: --test-size {share}: the independent draw put every one of the "
            f"{n_persons} persons on one side; use a larger cohort or run again"
        )
    return cohort.subset(~held[person]), cohort.subset(held[person])


def _read_mapping(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--mapping file {path!r} does not exist")
    try:
        mapping = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--mapping file {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(mapping, dict) or set(mapping) - {"mapping", "recode", "convert"}:
        raise UserError(
            f"--mapping file {path!r} must hold a JSON object with optional keys 'mapping', "
            "'recode' and 'convert'"
        )
    return mapping


def _held_out(args: argparse.Namespace, clf: Any, test: Any, frame: Any, seed: int) -> None:
    """Measure the model on the held-out records; write the evaluation and the records."""
    out = Path(args.out)
    stem = out.name[: -len(".zip")] if out.name.endswith(".zip") else out.name
    test_out = Path(args.test_out or out.with_name(f"{stem}-test.csv"))
    evaluation_out = Path(args.evaluation_out or out.with_name(f"{stem}-evaluation.json"))
    metrics = clf.add_metrics(test, on="held-out", n_boot=args.n_boot, random_state=seed)
    shown = ", ".join(
        f"{m['name']} {m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" for m in metrics
    )
    note = " (computed on private records, not covered by epsilon)" if args.epsilon else ""
    print(f"held-out metrics on {len(test):,} records{note}: {shown}")
    print(f"evaluation -> {clf.save_evaluation(evaluation_out)}")
    write_records(frame, test.data.index, test_out)
    ids = test.ids
    keyed = f", keyed by {ids.name!r}" if ids is not None else ""
    print(f"held-out records -> {test_out}{keyed}")


def write_records(frame: Any, rows: Any, path: Path) -> None:
    """Write the rows labelled ``rows`` of ``frame`` (every column, values as read) as CSV,
    atomically, so that the file can be read again with the same schema."""
    from graphxfer._io import atomic_write_text

    atomic_write_text(path, frame.loc[rows].to_csv(index=False))
