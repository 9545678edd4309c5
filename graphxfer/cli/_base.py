"""Building blocks of the command line: the subcommand registry, the parser (whose errors are
one line), option types and shared option groups, and TOML configs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from graphxfer._cli_cohorts import BUNDLED, UserError

__all__ = [
    "COMMANDS",
    "Command",
    "Parser",
    "add_columns",
    "add_common",
    "add_data",
    "add_privacy",
    "apply_config",
    "build_parser",
    "command",
    "fraction",
    "need",
    "positive_float",
    "positive_int",
    "privacy_config",
]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name (``"pretrain"``, or ``"schema infer"`` under a group), help,
    implementation and options."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]


COMMANDS: dict[str, Command] = {}
"""Every subcommand, in the order of ``graphxfer --help``."""

ORDER = ("schema", "pretrain", "finetune", "predict", "explain", "report", "evaluate")
"""Commands listed first by ``graphxfer --help``, in this order; the others follow."""

GROUPS: dict[str, str] = {
    "schema": "infer a schema from a data file, or check a data file against a schema",
}
"""Help of the commands that group subcommands (``graphxfer schema infer``)."""


def command(
    name: str, help_: str, arguments: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register a subcommand: ``run(args) -> exit status`` and the function adding its options."""

    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise RuntimeError(f"subcommand {name!r} registered twice")
        head = name.partition(" ")[0]
        if " " in name and head not in GROUPS:
            raise RuntimeError(f"subcommand {name!r}: no command group {head!r}")
        COMMANDS[name] = Command(name, help_, fn, arguments)
        return fn

    return deco


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a :class:`UserError` (one line, exit status 2)
    instead of a usage message."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> tuple[Parser, dict[str, Parser]]:
    """The ``graphxfer`` parser and the parser of every subcommand and command group."""
    from graphxfer import __version__

    parser = Parser(
        prog="graphxfer",
        description="Transfer learning from a large source cohort to a small private target.",
    )
    parser.add_argument("--version", action="version", version=f"graphxfer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on every error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers: dict[str, Parser] = {}
    groups: dict[str, Any] = {}

    def rank(name: str) -> int:
        head = name.partition(" ")[0]
        return ORDER.index(head) if head in ORDER else len(ORDER)

    for name in sorted(COMMANDS, key=rank):  # stable: registration order within a rank
        cmd = COMMANDS[name]
        head, _, tail = name.partition(" ")
        if tail:
            if head not in groups:
                group = sub.add_parser(head, help=GROUPS[head], description=GROUPS[head])
                parsers[head] = group
                groups[head] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            p = groups[head].add_parser(tail, help=cmd.help, description=cmd.help)
        else:
            p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.add_argument("--config", help="TOML file with default options", default=None)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show a traceback on every error")  # fmt: skip
        cmd.arguments(p)
        parsers[name] = p
    return parser, parsers


# ---------------------------------------------------------------------- option types
def positive_int(text: Any) -> int:
    """An integer >= 1 (an argparse ``type``)."""
    try:
        value = int(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: Any) -> float:
    """A finite number > 0 (an argparse ``type``)."""
    try:
        value = float(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def fraction(text: Any) -> float:
    """A share strictly between 0 and 1 (an argparse ``type``)."""
    try:
        value = float(str(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"must be a share strictly between 0 and 1 (e.g. 0.3), got {text!r}"
        )
    return value


# ---------------------------------------------------------------------- shared options
def add_data(p: argparse.ArgumentParser, prefix: str = "", what: str = "cohort") -> None:
    """``--dataset``, ``--data``, ``--schema`` and ``--sites`` (``--source-data``... with a
    prefix)."""
    flag = prefix.replace("_", "-")
    p.add_argument(f"--{flag}dataset", choices=BUNDLED, help=f"bundled {what}")
    p.add_argument(f"--{flag}data", help=f"{what} as a CSV or Parquet file")
    p.add_argument(f"--{flag}schema", help=f"schema JSON of --{flag}data (see 'graphxfer schema')")
    p.add_argument(f"--{flag}sites", help="comma-separated sites (groups) to keep")


def add_columns(p: argparse.ArgumentParser, *, target_optional: bool = False) -> None:
    """``--target``, ``--group``, ``--id`` and ``--repeated-ids``."""
    target_help = "target (0/1 outcome) column when --data has no schema"
    if target_optional:
        target_help += "; without it the records need no outcome"
    p.add_argument("--target", help=target_help)
    p.add_argument("--group", help="group (site) column when --data has no schema")
    p.add_argument("--id", metavar="COLUMN",
                   help="person id column: never a feature; per-record outputs "
                        "carry it")  # fmt: skip
    p.add_argument("--repeated-ids", choices=("error", "allow"), default="error",
                   help="whether one id may have several rows (kept together when splitting "
                        "and in differential privacy); default 'error'")  # fmt: skip


def add_common(p: argparse.ArgumentParser) -> None:
    """``--seed``, ``--no-progress`` and ``--device``."""
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")


def add_privacy(p: argparse.ArgumentParser) -> None:
    """The differential privacy options of ``finetune``."""
    g = p.add_argument_group("differential privacy (on when --epsilon is given)")
    g.add_argument("--epsilon", type=positive_float, default=None, help="target epsilon")
    g.add_argument("--delta", type=fraction, default=None, help="target delta (default < 1/n)")
    g.add_argument("--accountant", default="prv", choices=("prv", "rdp", "gdp"))
    tuned = "; by default chosen with the encoder's presets (see 'hyperparameters' in the output)"
    g.add_argument("--dp-epochs", type=positive_int, default=None, help=f"epochs{tuned}")
    g.add_argument("--dp-batch-size", type=positive_int, default=None,
                   help="expected batch size (persons)")  # fmt: skip
    g.add_argument("--dp-learning-rate", type=positive_float, default=None,
                   help="learning rate")  # fmt: skip
    g.add_argument("--max-grad-norm", type=positive_float, default=None,
                   help="per-person clipping bound. Any of these four options fixes all four: "
                        "the ones not given take PrivacyConfig's defaults, and the encoder's "
                        "presets are not used")  # fmt: skip
    g.add_argument("--total-budget", type=positive_float, default=None,
                   help="refuse the fit if the epsilon spent on the data set (see --ledger) "
                        "would exceed this")  # fmt: skip


def privacy_config(args: argparse.Namespace) -> Any:
    """The ``PrivacyConfig`` of the options, or None without ``--epsilon``."""
    if args.epsilon is None:
        return None
    from privacy import PrivacyConfig

    given = {
        field: getattr(args, option)
        for field, option in DP_HYPERPARAMETERS.items()
        if getattr(args, option, None) is not None
    }
    return PrivacyConfig(
        epsilon=args.epsilon,
        delta=args.delta,
        accountant=args.accountant,
        total_budget=args.total_budget,
        **given,
    )


DP_HYPERPARAMETERS = {
    "epochs": "dp_epochs",
    "batch_size": "dp_batch_size",
    "learning_rate": "dp_learning_rate",
    "max_grad_norm": "max_grad_norm",
}
"""``PrivacyConfig`` fields set by ``finetune`` options; giving any of them fits with exactly
the config's values (``dp_hyperparameters="config"``) instead of the encoder's presets."""


def dp_hyperparameters(args: argparse.Namespace) -> str:
    """``"config"`` when a DP hyper-parameter option was given, else ``"auto"``."""
    given = any(getattr(args, option, None) is not None for option in DP_HYPERPARAMETERS.values())
    return "config" if given else "auto"


def need(args: argparse.Namespace, *names: str) -> None:
    """Raise a :class:`UserError` unless every option in ``names`` was given."""
    for name in names:
        if getattr(args, name, None) in (None, ""):
            raise UserError(f"--{name.replace('_', '-')} is required (flag or config key)")


# ---------------------------------------------------------------------- TOML configs
def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {path!r} does not exist")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path!r} is not valid TOML: {exc}") from exc


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser, name: str) -> None:
    """Fill options the user did not give on the command line from the TOML config.

    The options of ``graphxfer NAME`` are read from the table ``[NAME]`` (``[schema.infer]``
    for a grouped subcommand), else from the top level of the file. Values go through the
    option's type and choices, like values given on the command line.
    """
    config = _load_config(getattr(args, "config", None))
    if not config:
        return
    head, _, tail = name.partition(" ")
    section = config.get(head, config)
    if tail and isinstance(section.get(tail), dict):
        section = section[tail]
    actions = {a.dest: a for a in parser._actions}
    for key, value in section.items():
        if isinstance(value, dict):
            continue
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("help", "config"):
            raise UserError(
                f"config key {key!r} is not an option of 'graphxfer {name}'; "
                f"see 'graphxfer {name} --help'"
            )
        value = _config_value(key, value, action)
        if getattr(args, dest, None) == parser.get_default(dest):
            setattr(args, dest, value)


def _config_value(key: str, value: Any, action: argparse.Action) -> Any:
    if action.nargs == 0:  # a switch such as --no-progress
        if not isinstance(value, bool):
            raise UserError(f"config key {key!r} is a switch: write true or false, got {value!r}")
        return value
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise UserError(f"config key {key!r} takes one value, got {value!r}")
    if callable(action.type):
        try:
            value = action.type(value if isinstance(value, str) else str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise UserError(f"config key {key!r}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise UserError(f"config key {key!r}: {value!r} is not one of {choices}")
    return value
