"""The ``graphxfer`` command line: from a raw CSV file to a report.

::

    graphxfer schema infer --data cohort.csv --target outcome --id person --group site \\
                           --out schema.json
    graphxfer pretrain --data cohort.csv --schema schema.json --sites a,b --out encoder
    graphxfer finetune --data cohort.csv --schema schema.json --sites c --encoder encoder \\
                       --test-size 0.3 --out model   # + model-test.csv, model-evaluation.json
    graphxfer explain  --data model-test.csv --schema schema.json --model model --out ex
    graphxfer report   --data model-test.csv --schema schema.json --model model \\
                       --evaluation model-evaluation.json --out report.html

Every subcommand takes flags and an optional TOML config (``--config file.toml``; flags win over
the file). ``--id COLUMN`` names the person id column: it is never a feature, and every
per-record output carries it. User errors (bad files, bad options, bad data) print one line on
stderr, ``graphxfer: error: ...``, and exit with status 2, without a traceback (``--debug``
shows one); warnings print one line each, ``graphxfer: warning: ...``.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence

from graphxfer._cli_cohorts import UserError, format_summary

# the subcommands register themselves on import
from graphxfer.cli import _bundled, _outputs, _schema, _train  # noqa: F401
from graphxfer.cli._base import COMMANDS, apply_config, build_parser, command
from graphxfer.cli._train import early_stopping_note

__all__ = [
    "UserError",
    "command",
    "early_stopping_note",
    "format_summary",
    "main",
    "message",
    "user_errors",
]


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix: one line and exit status 2, no traceback."""
    import pandas as pd

    from graphxfer.exceptions import GraphxferError
    from privacy.exceptions import PrivacyError
    from tabular.exceptions import TabularError

    return (
        GraphxferError,  # UserError, and every error about the user's data, schema or model files
        TabularError,
        PrivacyError,
        pd.errors.EmptyDataError,
        pd.errors.ParserError,
        UnicodeDecodeError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    )


def message(exc: BaseException) -> str:
    """The one-line text of a user error."""
    import pandas as pd

    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or exc}: {str(exc.filename)!r}"
    elif isinstance(exc, pd.errors.EmptyDataError):
        text = f"a data file is empty ({exc})"
    elif isinstance(exc, UnicodeDecodeError):
        text = f"a file is not UTF-8 text ({exc})"
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    for api, cli in _CLI_ADVICE:
        text = text.replace(api, cli)
    return text


_CLI_ADVICE = (
    ("pass overwrite=True to replace it", "pass --overwrite to replace it"),
    ("build the cohort with repeated_ids='allow'", "pass --repeated-ids allow"),
    (
        ", recode them (Cohort.align(recode=...)), or build the cohort with unknown='map'",
        ', or recode them (a --mapping file with "recode")',
    ),
    (
        "convert units (Cohort.align(convert=...))",
        'convert units (a --mapping file with "convert")',
    ),
)
"""Advice in the library's errors as the command line gives it: flags, not arguments."""


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Print each warning as one ``graphxfer: warning: ...`` line (filters are untouched)."""
    original = warnings.formatwarning

    def fmt(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        return f"graphxfer: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = fmt
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``graphxfer`` console script; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a user error (one line on stderr), 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    errors = user_errors()
    with _one_line_warnings():
        try:
            parser, parsers = build_parser()
            args = parser.parse_args(argv)
            debug = bool(getattr(args, "debug", False))
            name = args.command
            if name is None:
                parser.print_help()
                return 2
            if getattr(args, "subcommand", "") is None:
                parsers[name].print_help()
                return 2
            if hasattr(args, "subcommand"):
                name = f"{name} {args.subcommand}"
            apply_config(args, parsers[name], name)
            return COMMANDS[name].run(args)
        except errors as exc:
            if debug:
                raise
            print(f"graphxfer: error: {message(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("graphxfer: interrupted", file=sys.stderr)
            return 130
