"""``graphxfer schema infer`` and ``graphxfer schema check``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from graphxfer._cli_cohorts import (
    UserError,
    build_cohort,
    is_csv,
    read_table,
    require_target,
    with_id_column,
)
from graphxfer.cli._base import command, positive_int
from graphxfer.exceptions import GraphxferError

__all__: list[str] = []


def _infer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="CSV or Parquet file")
    p.add_argument("--target", required=True, help="target column (a 0/1 or two-valued outcome)")
    p.add_argument("--id", metavar="COLUMN", help="person id column (never a feature)")
    p.add_argument("--group", help="group (site) column")
    p.add_argument("--ignore", help="comma-separated columns to keep out of the model")
    p.add_argument("--max-categories", type=positive_int, default=50,
                   help="text columns with more distinct values keep an open vocabulary "
                        "(default 50)")  # fmt: skip
    p.add_argument("--out", help="schema JSON to write (atomically); printed when not given")


@command(
    "schema infer",
    "propose a schema (column roles and kinds) for a data file; review it before use",
    _infer_arguments,
)
def _infer(args: argparse.Namespace) -> int:
    from graphxfer import Schema

    frame = read_table(args.data)
    where = f"data file {args.data!r}"
    columns = list(map(str, frame.columns))
    named = [("--target", args.target), ("--id", args.id), ("--group", args.group)]
    ignore = [c.strip() for c in (args.ignore or "").split(",") if c.strip()]
    named += [("--ignore", c) for c in ignore]
    for option, name in named:
        if name is not None and name not in columns:
            raise UserError(
                f"{where} has no column {name!r} ({option}); its columns are "
                + ", ".join(repr(c) for c in columns[:30])
            )
    roles = [name for _, name in named if name is not None]
    repeated = [name for name, n in Counter(roles).items() if n > 1]
    if repeated:
        raise UserError(f"column {repeated[0]!r} is given two roles; give each column one role")
    try:
        schema = Schema.infer(
            frame,
            target=args.target,
            id=args.id,
            group=args.group,
            ignore=ignore,
            max_categories=args.max_categories,
            name=Path(args.data).name.split(".")[0],
        )
    except GraphxferError as exc:
        raise UserError(f"{where}: {exc}") from exc
    if args.out is None:
        print(schema.to_json())
        return 0
    schema.to_json(args.out)
    kinds = Counter(c.kind for c in schema.features)
    shown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    print(f"inferred {len(schema)} columns of {where}: {len(schema.features)} features ({shown})")
    if any(c.kind == "numeric" and (c.lower is None or c.upper is None) for c in schema.features):
        print(
            "numeric columns have no bounds: declare 'lower' and 'upper' (public knowledge) "
            "before a differentially private fit"
        )
    print(f"wrote {args.out}")
    return 0


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", required=True, help="schema JSON")
    p.add_argument("--data", required=True, help="CSV or Parquet file")
    p.add_argument("--id", metavar="COLUMN", help="person id column, when the schema has none")
    p.add_argument("--repeated-ids", choices=("error", "allow"), default="error",
                   help="whether one id may have several rows (default 'error')")  # fmt: skip


@command(
    "schema check",
    "check a data file against a schema: exit status 0 when it fits, 2 with the first problem",
    _check_arguments,
)
def _check(args: argparse.Namespace) -> int:
    from graphxfer import Schema

    schema = Schema.from_json(Path(args.schema))
    frame = read_table(args.data, schema=schema)
    where = f"data file {args.data!r}"
    columns = list(map(str, frame.columns))
    require_target(schema, columns, where, args.schema)
    schema = with_id_column(schema, columns, args.id, where)
    cohort = build_cohort(
        frame, schema, where, line_numbers=is_csv(args.data), repeated_ids=args.repeated_ids
    )
    extra = [c for c in map(str, frame.columns) if c not in schema]
    print(
        f"{where} fits schema {args.schema!r}: {len(cohort):,} records, "
        f"{len(cohort.schema.features)} features"
        + (f"; columns not in the schema (not used): {', '.join(extra)}" if extra else "")
    )
    return 0
