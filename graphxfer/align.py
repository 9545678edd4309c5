"""Aligning a cohort to a source schema: renamed columns, recoded categories, converted units
and kinds, missing and extra columns, all reported column by column.

:meth:`Cohort.align <graphxfer.cohort.Cohort.align>` runs :func:`align_frame` and builds the
aligned cohort from its result; :class:`AlignmentReport` says what was done.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.exceptions import AlignmentError, GraphxferWarning, TypeMismatchError, first_rows
from graphxfer.schema import Column, Schema, canonical_label, canonical_labels

__all__ = [
    "COERCIONS",
    "AlignmentReport",
    "KindCoercionWarning",
    "align_frame",
    "check_translation_types",
]

COERCIONS: tuple[tuple[str, str], ...] = (
    ("binary", "numeric"),
    ("ordinal", "numeric"),
    ("numeric", "categorical"),
    ("binary", "categorical"),
)
"""``(kind here, kind in the source)`` pairs that
:meth:`Cohort.align <graphxfer.cohort.Cohort.align>` converts (with a
:class:`KindCoercionWarning` and a record in :attr:`AlignmentReport.coerced`); every other
difference of kind is a :class:`~graphxfer.exceptions.TypeMismatchError`."""


class KindCoercionWarning(GraphxferWarning):
    """:meth:`Cohort.align <graphxfer.cohort.Cohort.align>` converted a column to the source's
    kind (binary or ordinal into numeric, numbers or binary labels into a declared categorical
    vocabulary)."""


@dataclass
class AlignmentReport:
    """What :meth:`Cohort.align <graphxfer.cohort.Cohort.align>` did, column by column.

    Attributes
    ----------
    matched : list of str
        Source columns found under the same name.
    renamed : dict
        ``{this_cohort_column: source_column}``.
    recoded : dict
        ``{source_column: number of values whose code changed}``.
    converted : dict
        ``{source_column: (factor, offset)}``.
    missing : list of str
        Source feature columns this cohort lacks (all missing after alignment).
    extra : list of str
        Feature columns only this cohort has (kept; the encoder may add parameters for them).
    unknown_categories : dict
        ``{column: count}`` of categories mapped to ``"<unknown>"``.
    coerced : dict
        ``{source_column: {"from": kind, "to": kind, "values": how}}`` for columns whose kind
        here differs from the source's and was converted (see
        :meth:`Cohort.align <graphxfer.cohort.Cohort.align>`).
    """

    matched: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    recoded: dict[str, int] = field(default_factory=dict)
    converted: dict[str, tuple[float, float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    coerced: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form (JSON-ready)."""
        return {
            "matched": list(self.matched),
            "renamed": dict(self.renamed),
            "recoded": dict(self.recoded),
            "converted": {k: list(v) for k, v in self.converted.items()},
            "coerced": {k: dict(v) for k, v in self.coerced.items()},
            "missing": list(self.missing),
            "extra": list(self.extra),
            "unknown_categories": dict(self.unknown_categories),
        }

    def __str__(self) -> str:
        lines = ["Alignment report"]
        lines.append(f"  matched   ({len(self.matched)}): {', '.join(self.matched) or '-'}")
        ren = ", ".join(f"{a} -> {b}" for a, b in self.renamed.items())
        lines.append(f"  renamed   ({len(self.renamed)}): {ren or '-'}")
        rec = ", ".join(f"{a} ({n} values)" for a, n in self.recoded.items())
        lines.append(f"  recoded   ({len(self.recoded)}): {rec or '-'}")
        conv = ", ".join(f"{a} (x{f:g} {o:+g})" for a, (f, o) in self.converted.items())
        lines.append(f"  converted ({len(self.converted)}): {conv or '-'}")
        coe = ", ".join(f"{a} ({c['from']} -> {c['to']})" for a, c in self.coerced.items())
        lines.append(f"  coerced   ({len(self.coerced)}): {coe or '-'}")
        lines.append(f"  missing   ({len(self.missing)}): {', '.join(self.missing) or '-'}")
        lines.append(f"  extra     ({len(self.extra)}): {', '.join(self.extra) or '-'}")
        if self.unknown_categories:
            unk = ", ".join(f"{a} ({n})" for a, n in self.unknown_categories.items())
            lines.append(f"  unknown categories: {unk}")
        return "\n".join(lines)


def align_frame(
    data: pd.DataFrame,
    schema: Schema,
    source_schema: Schema,
    mapping: Mapping[str, str] | None = None,
    *,
    recode: Mapping[str, Mapping[Any, Any]] | None = None,
    convert: Mapping[str, tuple[float, float] | float] | None = None,
    name: str | None = None,
) -> tuple[pd.DataFrame, Schema, AlignmentReport]:
    """Express a cohort's canonical data in the columns and codes of a source schema.

    The work of :meth:`Cohort.align <graphxfer.cohort.Cohort.align>`, which builds the aligned
    cohort from the result.

    Parameters
    ----------
    data : DataFrame
        The cohort's canonical data (as :class:`~graphxfer.cohort.Cohort` holds it).
    schema : Schema
        The cohort's schema.
    source_schema : Schema
        The schema the encoder was pretrained on.
    mapping, recode, convert : dict, optional
        As in :meth:`Cohort.align <graphxfer.cohort.Cohort.align>`.
    name : str, optional
        Name of the aligned schema.

    Returns
    -------
    raw : DataFrame
        The aligned columns, binary ones under their source labels, ready to build a
        :class:`~graphxfer.cohort.Cohort` with the aligned schema.
    schema : Schema
        The aligned schema: source feature columns in source order, then the columns only
        this cohort has, then target, id and group.
    report : AlignmentReport
        What was matched, renamed, recoded, converted, coerced, missing and extra
        (``unknown_categories`` is filled when the cohort is built).

    Raises
    ------
    TypeMismatchError
        A column's kind differs and cannot be converted, or a column stands in for a source
        column of another role.
    AlignmentError
        The mapping, recoding or conversion names unknown columns or is inconsistent.

    Warns
    -----
    KindCoercionWarning
        Once per call, naming every column converted to the source's kind.

    Examples
    --------
    >>> source = Schema([Column("age"), Column("sick", "binary", "target")])
    >>> own = Schema([Column("age_years"), Column("sick", "binary", "target")])
    >>> data = pd.DataFrame({"age_years": [50.0, 61.0], "sick": [0.0, 1.0]})
    >>> raw, schema, report = align_frame(data, own, source, {"age_years": "age"})
    >>> schema.names, report.renamed
    (['age', 'sick'], {'age_years': 'age'})
    """
    mapping, recode, convert = _checked_arguments(schema, source_schema, mapping, recode, convert)
    renamed_to_src, src_to_own = _paired_columns(schema, source_schema, mapping)
    report = AlignmentReport()
    frame: dict[str, pd.Series] = {}
    columns: list[Column] = []

    for src_col in source_schema:
        if src_col.role in ("ignore",):
            continue
        own_name = src_to_own.get(src_col.name)
        if own_name is None:
            if src_col.role == "feature":
                report.missing.append(src_col.name)
                frame[src_col.name] = _empty_like(src_col, len(data))
                columns.append(_copy(src_col))
            continue
        own_col = schema[own_name]
        if src_col.role in ("id", "group") or own_col.role in ("id", "group"):
            if src_col.role in ("feature", "target"):
                raise TypeMismatchError(
                    f"column {own_name!r} is the {own_col.role} column here but source column "
                    f"{src_col.name!r} is a {src_col.role}; rename this cohort's column so "
                    "that it does not stand in for the source column"
                )
            continue  # handled below with this cohort's own id / group
        if own_col.role == "ignore":
            report.missing.append(src_col.name)
            frame[src_col.name] = _empty_like(src_col, len(data))
            columns.append(_copy(src_col))
            continue
        if own_col.role == "target" and src_col.role != "target":
            raise TypeMismatchError(
                f"column {own_name!r} is the target here but {src_col.name!r} is a "
                f"{src_col.role} in the source"
            )
        values = data[own_name]
        coerced = own_col.kind != src_col.kind
        if coerced:
            values, record, n_recoded = _coerce(values, own_col, src_col, recode.get(src_col.name))
            report.coerced[src_col.name] = record
            if n_recoded is not None:
                report.recoded[src_col.name] = n_recoded
        if own_name != src_col.name:
            report.renamed[own_name] = src_col.name
        else:
            report.matched.append(src_col.name)
        if src_col.name in convert:
            values, factor, offset = _convert(values, src_col, convert[src_col.name])
            report.converted[src_col.name] = (factor, offset)
        if src_col.name in recode and src_col.name not in report.recoded:
            values, n_changed = _recode(values, own_col, src_col, recode[src_col.name])
            report.recoded[src_col.name] = n_changed
        elif (
            not coerced
            and own_col.kind == "binary"
            and (own_col.categories or ["0", "1"]) != (src_col.categories or ["0", "1"])
        ):
            raise AlignmentError(
                f"binary column {own_name!r} is labelled {own_col.categories or ['0', '1']} "
                f"here and {src_col.categories or ['0', '1']} in the source; say which label "
                f"is which with recode={{{src_col.name!r}: {{own_label: source_label}}}}"
            )
        frame[src_col.name] = values
        columns.append(_copy(src_col))
    if report.coerced:
        _warn_coerced(report.coerced)

    for own_col in schema:
        src_name = renamed_to_src[own_col.name]
        if own_col.role == "feature" and src_name not in source_schema:
            report.extra.append(own_col.name)
            frame[own_col.name] = data[own_col.name]
            columns.append(_copy(own_col))
    for own_col in schema:
        if own_col.role in ("id", "group") or (
            own_col.role == "target" and own_col.name not in src_to_own.values()
        ):
            if own_col.name in frame:
                continue
            frame[own_col.name] = data[own_col.name]
            columns.append(_copy(own_col))
    src_target = source_schema.target
    own_target = schema.target
    if src_target is not None and src_target.name not in frame and own_target is not None:
        raise AlignmentError(
            f"this cohort's target {own_target.name!r} "
            f"is not aligned to the source target {src_target.name!r}; add "
            f"mapping={{{own_target.name!r}: {src_target.name!r}}}"
        )
    new_schema = Schema(columns, name=name)
    raw = pd.DataFrame(frame, index=data.index.copy())
    # binary columns are already 0/1: relabel the schema's categories so validation passes
    for col in new_schema:
        if col.kind == "binary" and col.role not in ("ignore", "id", "group"):
            raw[col.name] = _binary_labels(raw[col.name], col)
    return raw, new_schema, report


# ---------------------------------------------------------------------- helpers
def check_translation_types(mapping: Any, recode: Any, convert: Any) -> None:
    """Raise :class:`AlignmentError` unless ``mapping``, ``recode`` and ``convert`` are None
    or dicts keyed by column name, and every entry of ``recode`` is a dict of codes.

    Parameters
    ----------
    mapping, recode, convert : object
        The arguments of :meth:`Cohort.align <graphxfer.cohort.Cohort.align>` (or of a
        ``TransferClassifier``), e.g. as read from a JSON file.

    Raises
    ------
    AlignmentError
        One of them has the wrong type.

    Examples
    --------
    >>> check_translation_types({"Age": "age"}, None, {"chol": 38.67})
    >>> check_translation_types("Age", None, None)
    Traceback (most recent call last):
    ...
    graphxfer.exceptions.AlignmentError: mapping must be a dict keyed by column name, got str
    """
    for arg, value in (("mapping", mapping), ("recode", recode), ("convert", convert)):
        if value is not None and not isinstance(value, Mapping):
            raise AlignmentError(
                f"{arg} must be a dict keyed by column name, got {type(value).__name__}"
            )
    for src, codes in (recode or {}).items():
        if not isinstance(codes, Mapping):
            raise AlignmentError(
                f"recode[{src!r}] must be a dict {{this_cohort_code: source_code}}, got {codes!r}"
            )


def _checked_arguments(
    schema: Schema,
    source_schema: Schema,
    mapping: Mapping[str, str] | None,
    recode: Mapping[str, Mapping[Any, Any]] | None,
    convert: Mapping[str, tuple[float, float] | float] | None,
) -> tuple[dict[str, str], dict[str, Mapping[Any, Any]], dict[str, tuple[float, float] | float]]:
    """The arguments of :func:`align_frame` as plain dicts, after checking every name in them."""
    if not isinstance(source_schema, Schema):
        raise AlignmentError(
            f"source_schema must be a graphxfer.Schema, got {type(source_schema).__name__}"
        )
    check_translation_types(mapping, recode, convert)
    mapping = dict(mapping or {})
    recode = {k: dict(v) for k, v in (recode or {}).items()}
    convert = dict(convert or {})
    for own, src in mapping.items():
        if own not in schema:
            raise AlignmentError(
                f"mapping names column {own!r}, which this cohort does not have; "
                f"its columns are {schema.names}"
            )
        if src not in source_schema:
            raise AlignmentError(
                f"mapping sends {own!r} to {src!r}, which the source schema does not have; "
                f"source columns are {source_schema.names}"
            )
    targets = list(mapping.values())
    if len(set(targets)) != len(targets):
        raise AlignmentError(f"mapping sends two columns to the same source column: {mapping}")
    for kind_arg, entries in (("recode", recode), ("convert", convert)):
        for src in entries:
            if src not in source_schema:
                raise AlignmentError(
                    f"{kind_arg} names {src!r}, which is not a source column; "
                    "use the source column name"
                )
    return mapping, recode, convert


def _paired_columns(
    schema: Schema, source_schema: Schema, mapping: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``{own column: source name}`` for every column of ``schema`` (its own name when not
    mapped) and ``{source column: own column}`` for the source columns this cohort has."""
    renamed_to_src = {own: mapping.get(own, own) for own in schema.names}
    src_to_own: dict[str, str] = {}
    for own, src in renamed_to_src.items():
        if src not in source_schema or schema[own].role == "ignore":
            continue
        if src in src_to_own:
            raise AlignmentError(
                f"columns {src_to_own[src]!r} and {own!r} of this cohort both align to source "
                f"column {src!r}; map one of them to another source column or give it "
                "role='ignore'"
            )
        src_to_own[src] = own
    for own, src in renamed_to_src.items():
        if src in source_schema and src not in src_to_own:
            src_to_own[src] = own  # an ignored column: reported missing below
    return renamed_to_src, src_to_own


def _binary_labels(values: pd.Series, col: Column) -> pd.Series:
    """Canonical 0.0 / 1.0 values of a binary column as its labels (``categories``, else the
    integers 0 and 1); missing values stay NaN."""
    numbers = values.to_numpy(dtype="float64")
    observed = ~np.isnan(numbers)
    labels: list[Any] = list(col.categories) if col.categories is not None else [0, 1]
    table = np.empty(2, dtype=object)
    table[:] = labels
    out = np.full(len(numbers), np.nan, dtype=object)
    out[observed] = table[numbers[observed].astype(np.int64)]
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def _copy(col: Column) -> Column:
    return Column.from_dict(col.to_dict())


def _label_numbers(labels: Sequence[str]) -> tuple[list[float], bool]:
    """The number each label stands for: its own value when every label is a (finite) number,
    else its position (0 for the first); and whether the labels' own values were used."""
    try:
        numbers = [float(label) for label in labels]
    except ValueError:
        numbers = []
    if numbers and all(np.isfinite(numbers)):
        return numbers, True
    return [float(i) for i in range(len(labels))], False


def _coerce(
    values: pd.Series, own: Column, src: Column, codes: Mapping[Any, Any] | None
) -> tuple[pd.Series, dict[str, str], int | None]:
    """``values`` (canonical data of ``own``) in the kind of the source column ``src``.

    Returns the converted values, the record for :attr:`AlignmentReport.coerced` and, when
    ``codes`` (the user's recoding) was applied on the way, the number of values it changed.
    Raises :class:`TypeMismatchError` for pairs outside :data:`COERCIONS` and for numbers or
    labels that name no category of the source's declared vocabulary.
    """
    where = f"column {own.name!r} is {own.kind} here but source column {src.name!r} is {src.kind}"
    pair = (own.kind, src.kind)
    if pair not in COERCIONS:
        if src.kind == "numeric" and own.kind == "categorical":
            why = (
                "categories have no order or scale, so they are not turned into numbers: if the "
                "codes are numbers, declare the column numeric (or ordinal with its levels) in "
                "this cohort's schema"
            )
        else:
            why = f"change this cohort's schema (kind={src.kind!r})"
        raise TypeMismatchError(f"{where}; {why}, or map the column elsewhere")
    record = {"from": own.kind, "to": src.kind}
    if src.kind == "numeric":
        labels = (own.categories or ["0", "1"]) if own.kind == "binary" else list(own.levels or [])
        numbers, own_values = _label_numbers(labels)
        if own.kind == "binary":  # canonical binary data is 0.0 / 1.0 (the label's position)
            table: dict[Any, float] = {0.0: numbers[0], 1.0: numbers[1]}
            how = "0 for the negative label, 1 for the positive"
        else:  # ordinal data holds the level labels; "<unknown>" has no number
            table = dict(zip(labels, numbers, strict=True))
            how = "the level's position, 0 for the lowest"
        # the rule, not the labels: the record and the warning show no label of this cohort
        named = "labels" if own.kind == "binary" else "levels"
        record["values"] = f"the {named}' own numbers" if own_values else how
        out = values.map(lambda v: table.get(v, np.nan) if not pd.isna(v) else np.nan)
        return out.astype("float64"), record, None
    # into a categorical column: only into the source's declared vocabulary
    if src.categories is None:
        raise TypeMismatchError(
            f"{where} with an open vocabulary, so this cohort's values cannot be checked against "
            f"it; declare the source column's categories, or declare {own.name!r} categorical "
            "in this cohort's schema"
        )
    if own.kind == "binary":
        names = own.categories or ["0", "1"]
        labels = values.map(lambda v: np.nan if pd.isna(v) else names[int(v)]).astype(object)
        record["values"] = "the labels as categories"
    else:
        labels = canonical_labels(values)
        record["values"] = "numbers read as category labels"
    n_changed: int | None = None
    if codes is not None:
        table_ = {canonical_label(k): canonical_label(v) for k, v in codes.items()}
        changed = labels.isin(list(table_))
        labels = labels.map(lambda v: table_.get(v, v) if isinstance(v, str) else v)
        n_changed = int(changed.sum())
        record["values"] += ", then recoded"
    bad = labels.notna() & ~labels.isin(src.categories)
    if bad.any():
        found = sorted(set(labels[bad]), key=str)
        raise TypeMismatchError(
            f"{where}; its values {found[:10]} (rows {first_rows(values.index[bad])}) are not "
            f"categories of the source {src.categories[:20]}: recode them "
            f"(recode={{{src.name!r}: {{value: source_category}}}}), or map the column elsewhere"
        )
    return labels.astype(object), record, n_changed


def _warn_coerced(coerced: Mapping[str, Mapping[str, str]]) -> None:
    """One warning for every column converted to the source's kind."""
    what = "; ".join(
        f"{name!r} {c['from']} -> {c['to']} ({c['values']})" for name, c in coerced.items()
    )
    warnings.warn(
        f"aligned by converting kinds: {what}; the alignment report lists them under "
        "'coerced'. Declare these kinds in this cohort's schema to align without conversion",
        KindCoercionWarning,
        stacklevel=4,  # this helper, align_frame, Cohort.align, its caller
    )


def _empty_like(col: Column, n: int) -> pd.Series:
    if col.kind in ("numeric",):
        return pd.Series(np.full(n, np.nan))
    return pd.Series([np.nan] * n, dtype=object)


def _convert(
    values: pd.Series, col: Column, spec: tuple[float, float] | float
) -> tuple[pd.Series, float, float]:
    if col.kind != "numeric":
        raise AlignmentError(f"convert applies to numeric columns; {col.name!r} is {col.kind}")
    if isinstance(spec, numbers.Real):
        factor, offset = float(spec), 0.0
    else:
        try:
            factor, offset = (float(v) for v in spec)  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise AlignmentError(
                f"convert[{col.name!r}] must be a factor or a (factor, offset) pair, got {spec!r}"
            ) from exc
    if not np.isfinite([factor, offset]).all() or factor == 0.0:
        raise AlignmentError(
            f"convert[{col.name!r}] = ({factor}, {offset}) is not a valid unit map"
        )
    return values * factor + offset, factor, offset


def _recode(
    values: pd.Series, own: Column, src: Column, codes: Mapping[Any, Any]
) -> tuple[pd.Series, int]:
    if src.kind == "numeric":
        raise AlignmentError(f"recode applies to coded columns; {src.name!r} is numeric")
    table = {canonical_label(k): canonical_label(v) for k, v in codes.items()}
    if own.kind == "binary":
        # current values are 0/1 under this cohort's labels; recode operates on labels
        labels = own.categories or ["0", "1"]
        as_label = values.map(lambda v: np.nan if pd.isna(v) else labels[int(v)])
        changed = as_label.isin(list(table))
        mapped = as_label.map(lambda v: table.get(v, v) if isinstance(v, str) else v)
        src_labels = src.categories or ["0", "1"]
        bad = mapped.notna() & ~mapped.isin(src_labels)
        if bad.any():
            raise AlignmentError(
                f"recode[{src.name!r}] leaves values {sorted(set(mapped[bad]))} outside the "
                f"source labels {src_labels}"
            )
        out = mapped.map(lambda v: np.nan if pd.isna(v) else float(src_labels.index(v)))
        return out.astype("float64"), int(changed.sum())
    changed = values.isin(list(table))
    out = values.map(lambda v: table.get(v, v) if isinstance(v, str) else v)
    return out.astype(object), int(changed.sum())
