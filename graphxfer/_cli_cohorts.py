"""Cohorts named on the command line: a bundled data set or a data file, read with one-line errors.

Shared by the ``graphxfer`` command line (:mod:`graphxfer.cli`), the processes of a distributed
``graphxfer pretrain`` (:mod:`graphxfer.distributed`) and the demo (:mod:`graphxfer.demo`), so
that none of them imports another.

Rows of a CSV file are labelled by their line number in the file (the header is line 1), so an
error about a value names the line to open in an editor or a spreadsheet.
"""

from __future__ import annotations

import argparse
import gzip
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.datasets import dataset_loader, dataset_names
from graphxfer.exceptions import CohortError, GraphxferError, GraphxferWarning, SingleClassError
from graphxfer.registry import Names
from graphxfer.schema import Column, Schema

__all__ = [
    "BUNDLED",
    "LoadedCohort",
    "UserError",
    "build_cohort",
    "bundled_cohort",
    "format_summary",
    "is_csv",
    "load_cohort",
    "read_table",
    "require_target",
    "resolve_cohort",
    "with_id_column",
]

BUNDLED = Names(lambda: dataset_names(cli=True))
"""Names of the data sets of ``--dataset``: those of :data:`graphxfer.datasets.LOADERS`."""

_CSV_SUFFIXES = (".csv", ".txt", ".gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 8192
_NA_TEXTS = frozenset(
    (
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    )
)  # fmt: skip
"""Cell texts pandas reads as missing by default (``pandas.read_csv``'s ``na_values``)."""


class UserError(GraphxferError):
    """An error in the user's options or files: reported in one line, exit status 2."""


@dataclass(frozen=True)
class LoadedCohort:
    """A cohort with the rows it was built from.

    Attributes
    ----------
    cohort : Cohort
    frame : DataFrame
        The rows as read (every column of the file, original values), labelled like the
        cohort's rows, so that a subset of the cohort can be written back as the file's rows.
    where : str
        ``data file '...'`` or ``bundled data set '...'``, for messages.
    """

    cohort: Cohort
    frame: pd.DataFrame
    where: str


# ---------------------------------------------------------------------- files
def is_csv(path: str | Path) -> bool:
    """Whether :func:`read_table` reads ``path`` as CSV (rows labelled by line number)."""
    return Path(path).suffix.lower() in _CSV_SUFFIXES


def read_table(
    path: str | Path, *, what: str = "data file", schema: Schema | None = None
) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file; every problem is a one-line UserError.

    A CSV file's rows are labelled by their line number (the header is line 1). An empty
    cell is missing, and so are pandas' usual missing-value markers (``NA``, ``NULL``,
    ``None``, ``nan``, ...), except where ``schema`` says that such a word is a value: a
    category, level or binary label the schema declares for that column, or any value of
    the schema's id and group columns (which are never missing). So a file written from a
    cohort whose vocabulary holds ``"None"`` reads back with the same values.

    Parameters
    ----------
    path : str or Path
    what : str, default="data file"
        How messages name the file.
    schema : Schema, optional
        The schema the file will be read with.

    Raises
    ------
    UserError
        A missing file, a folder, an unreadable, empty, binary or malformed file, a header
        that repeats a column name, or a file without records.
    """
    p = Path(path)
    name = f"{what} {str(path)!r}"
    if not p.exists():
        raise UserError(f"{name} does not exist")
    if p.is_dir():
        raise UserError(f"{name} is a folder; give the path of a .csv or .parquet file")
    suffix = p.suffix.lower()
    if suffix not in _CSV_SUFFIXES + _PARQUET_SUFFIXES:
        raise UserError(f"{name}: use a .csv (or .csv.gz) or .parquet file, got {p.suffix!r}")
    try:
        if suffix in _PARQUET_SUFFIXES:
            frame = _read_parquet(p, name)
        else:
            _sniff_text(p, name)
            header = _csv_header(p, name)
            frame = pd.read_csv(p, keep_default_na=False, na_values=_na_values(header, schema))
            frame.index = pd.RangeIndex(2, len(frame) + 2)
    except PermissionError:
        raise UserError(f"{name} cannot be read: permission denied") from None
    except pd.errors.EmptyDataError:
        raise UserError(
            f"{name} is empty: it needs a header line and one line per record"
        ) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{name} is not a readable CSV file: {_one_line(exc)}") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{name} is not UTF-8 text (byte {exc.start} cannot be decoded); save it as a "
            "UTF-8 CSV file"
        ) from None
    except (OSError, EOFError) as exc:  # e.g. a corrupt gzip stream
        raise UserError(f"{name} cannot be read: {_one_line(exc)}") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise UserError(f"{name} holds no records: it needs a header line and one line per record")
    return frame


def _sniff_text(path: Path, name: str) -> None:
    opener: Callable[..., Any] = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise UserError(f"{name} is not a CSV file: it holds binary data")


def _csv_header(path: Path, name: str) -> list[str]:
    """The column names of a CSV file's header line, as written; a repeated name is refused
    (pandas would silently rename the second ``age`` to ``age.1``), and so is a header that
    separates its names by semicolons or tabs rather than commas."""
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return []  # reported by the full read
    header = [str(v) for v in first.iloc[0].tolist()] if len(first) else []
    if len(header) == 1:
        for sep, called in ((";", "semicolons"), ("\t", "tabs")):
            if header[0].count(sep) >= 1:
                raise UserError(
                    f"{name} separates its values by {called}, not commas (its header is one "
                    f"column {header[0][:60]!r}); save it as comma-separated values, with '.' "
                    "as the decimal mark"
                )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise UserError(
            f"{name} repeats the column name(s) {', '.join(repr(c) for c in repeated)} in its "
            "header line; give every column its own name"
        )
    return header


def _na_values(header: list[str], schema: Schema | None) -> dict[str, list[str]]:
    """Per column, the cell texts read as missing: ``""`` and pandas' default markers, less
    those the schema declares as values of the column."""
    default = sorted(_NA_TEXTS)
    out: dict[str, list[str]] = {}
    for name in header:
        kept: set[str] = set()
        if schema is not None and name in schema:
            col = schema[name]
            if col.role in ("id", "group"):
                kept = set(default) - {""}
            else:
                labels = list(col.categories or []) + list(col.levels or [])
                kept = {str(v) for v in labels}
        out[name] = [v for v in default if v not in kept]
    return out


def _read_parquet(path: Path, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"{name} is not a readable Parquet file: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# ---------------------------------------------------------------------- bundled data
def bundled_cohort(name: str) -> Cohort:
    """The bundled data set ``name`` (one of :data:`BUNDLED`)."""
    if name not in BUNDLED:
        raise UserError(f"unknown dataset {name!r}; bundled: {', '.join(BUNDLED)}")
    return dataset_loader(name).load()


# ---------------------------------------------------------------------- schemas
def with_id_column(schema: Schema, columns: list[str], id_name: str | None, where: str) -> Schema:
    """``schema`` with ``id_name`` as its id column (never a feature).

    Parameters
    ----------
    schema : Schema
    columns : list of str
        The data's columns.
    id_name : str or None
        The ``--id`` column; None returns ``schema`` unchanged.
    where : str
        The data's description, for messages.

    Raises
    ------
    UserError
        The data has no such column, it is the target or group column, or the schema names
        another id column.
    """
    if id_name is None:
        return schema
    if id_name not in columns:
        raise UserError(
            f"{where} has no id column {id_name!r} (--id); its columns are {_shown(columns)}"
        )
    current = schema.id
    if current is not None:
        if current.name == id_name:
            return schema
        raise UserError(
            f"--id {id_name!r} disagrees with the schema, whose id column is {current.name!r}; "
            "drop --id or change the schema"
        )
    if id_name not in schema:
        return schema.add(Column(id_name, "categorical", "id"))
    role = schema[id_name].role
    if role in ("target", "group"):
        raise UserError(f"--id {id_name!r} is the {role} column of the schema; choose another")
    kept = [c if c.name != id_name else Column(id_name, "categorical", "id") for c in schema]
    return Schema(kept, name=schema.name)


def require_target(schema: Schema, columns: list[str], where: str, schema_path: str) -> None:
    """Raise a :class:`UserError` when the data lacks the schema's target column."""
    target = schema.target
    if target is not None and target.name not in columns:
        raise UserError(
            f"{where} has no target column {target.name!r} (named by schema "
            f"{schema_path!r}); its columns are {_shown(columns)}"
        )


def _shown(columns: list[str], limit: int = 30) -> str:
    text = ", ".join(repr(c) for c in columns[:limit])
    return text + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


# ---------------------------------------------------------------------- cohorts
def resolve_cohort(
    args: argparse.Namespace, prefix: str = "", *, target_required: bool = True
) -> LoadedCohort:
    """The cohort of ``--{prefix}dataset`` or ``--{prefix}data`` (with ``--{prefix}schema``,
    or ``--target``/``--id``/``--group`` to infer one), restricted to ``--{prefix}sites``.

    With ``target_required=False`` (records to predict or explain) the target column may be
    absent from the data: it is then dropped from the schema.

    Raises
    ------
    UserError
        Every problem with the options or the data, in one line naming the file.
    """
    dataset = getattr(args, f"{prefix}dataset", None)
    data = getattr(args, f"{prefix}data", None)
    sites = getattr(args, f"{prefix}sites", None)
    id_name = getattr(args, "id", None)
    repeats = getattr(args, "repeated_ids", None) or "error"
    flag = prefix.replace("_", "-")
    if (dataset is None) == (data is None):
        raise UserError(f"give exactly one of --{flag}dataset (bundled) or --{flag}data (a file)")
    if dataset is not None:
        where = f"bundled data set {dataset!r}"
        cohort = bundled_cohort(dataset)
        frame = cohort.data
        if id_name is not None:
            schema = with_id_column(cohort.schema, list(frame.columns), id_name, where)
            cohort = build_cohort(
                frame, schema, where, line_numbers=False, repeated_ids=repeats, name=cohort.name
            )
    else:
        path = str(data)
        where = f"data file {path!r}"
        schema_path = getattr(args, f"{prefix}schema", None)
        declared = None if schema_path is None else Schema.from_json(Path(schema_path))
        frame = read_table(path, schema=declared)
        schema = _schema_for(args, prefix, frame, where, target_required, declared)
        schema = with_id_column(schema, list(map(str, frame.columns)), id_name, where)
        try:
            cohort = build_cohort(
                frame, schema, where, line_numbers=is_csv(path), repeated_ids=repeats
            )
        except UserError as exc:
            target = schema.target
            if target_required or target is None or not isinstance(exc.__cause__, SingleClassError):
                raise
            # records to predict or explain need no outcome, and one class is a valid outcome
            warnings.warn(
                f"{where}: target column {target.name!r} holds a single class, so its "
                "outcomes are not used: the records are only predicted and explained",
                GraphxferWarning,
                stacklevel=2,
            )
            schema = schema.drop(target.name)
            cohort = build_cohort(
                frame, schema, where, line_numbers=is_csv(path), repeated_ids=repeats
            )
    if sites:
        wanted = [s.strip() for s in sites.split(",") if s.strip()]
        try:
            cohort = cohort.select_groups(wanted)
        except GraphxferError as exc:
            raise UserError(f"{where}: --{flag}sites: {exc}") from exc
    return LoadedCohort(cohort, frame, where)


def load_cohort(args: argparse.Namespace, prefix: str = "") -> Cohort:
    """:func:`resolve_cohort`'s cohort (the target column required)."""
    return resolve_cohort(args, prefix).cohort


def _schema_for(
    args: argparse.Namespace,
    prefix: str,
    frame: pd.DataFrame,
    where: str,
    target_required: bool,
    declared: Schema | None,
) -> Schema:
    flag = prefix.replace("_", "-")
    columns = list(map(str, frame.columns))
    target = getattr(args, "target", None)
    group = getattr(args, "group", None)
    schema_path = getattr(args, f"{prefix}schema", None)
    if declared is not None:  # read from schema_path by the caller
        schema = declared
        given = schema.target
        if target is not None and (given is None or given.name != target):
            raise UserError(
                f"--target {target!r} disagrees with schema {str(schema_path)!r}, whose target "
                f"is {None if given is None else given.name!r}; drop --target or change the schema"
            )
        if given is not None and given.name not in columns:
            if target_required:
                require_target(schema, columns, where, str(schema_path))
            schema = schema.drop(given.name)
        return schema
    if target is None and target_required:
        raise UserError(f"--{flag}data needs --{flag}schema (a schema JSON) or --target")
    for option, name in (("--target", target), ("--group", group)):
        if name is not None and name not in columns:
            raise UserError(
                f"{where} has no {option[2:]} column {name!r} ({option}); its columns are "
                f"{_shown(columns)}"
            )
    id_name = getattr(args, "id", None)
    try:
        return Schema.infer(
            frame, target=target, id=id_name if id_name in columns else None, group=group
        )
    except GraphxferError as exc:
        raise UserError(f"{where}: {_one_line(exc)}") from exc


def build_cohort(
    frame: pd.DataFrame,
    schema: Schema,
    where: str,
    *,
    line_numbers: bool,
    repeated_ids: str = "error",
    name: str | None = None,
) -> Cohort:
    """``Cohort(frame, schema)`` (all-missing columns kept); an error names ``where``.

    With ``line_numbers`` (rows labelled by :func:`read_table` from a CSV file) a message
    about rows says that they are line numbers.
    """
    try:
        return Cohort(
            frame,
            schema,
            all_missing="keep",
            repeated_ids=repeated_ids,  # type: ignore[arg-type]
            name=name,
        )
    except GraphxferError as exc:
        note = ""
        if line_numbers and isinstance(exc, CohortError) and re.search(r"rows? \d", str(exc)):
            note = " (rows are line numbers in the file, the header being line 1)"
        raise UserError(f"{where}: {_one_line(exc)}{note}") from exc


# ---------------------------------------------------------------------- summaries
def format_summary(summary: pd.DataFrame, max_missing_columns: int = 6) -> str:
    """Per-site table of :meth:`Cohort.summary`: rows, persons, positive rate and the
    most-missing columns."""
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
