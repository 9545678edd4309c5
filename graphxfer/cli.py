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


# ---------------------------------------------------------------------- demo
@command("demo", "summarise the bundled cohorts and run the main job on the heart-disease sites")
def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from graphxfer import datasets

    loaders: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        ("Heart disease (UCI), 4 hospitals", datasets.load_heart_disease, {}),
        (
            "Student performance (UCI), 2 schools x 2 subjects",
            datasets.load_student_performance,
            {},
        ),
        ("OULAD, 7 course modules", datasets.load_oulad, {}),
        ("Diabetes 130-US hospitals, admission sources", datasets.load_diabetes_130, {}),
    ]
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for title, loader, kwargs in loaders:
            cohort = loader(**kwargs)
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
    _ = subparsers


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphxfer`` console script."""
    parser, subparsers = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from graphxfer.exceptions import GraphxferError

    fn, _ = _COMMANDS[args.command]
    try:
        _apply_config(args, subparsers[args.command])
        return fn(args)
    except (UserError, GraphxferError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"graphxfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
