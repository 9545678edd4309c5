"""Schema inference: a proposed :class:`~graphxfer.schema.Schema` for a data frame.

:meth:`Schema.infer <graphxfer.schema.Schema.infer>` reads each column's kind and vocabulary from
the data with the rules below; the proposal is meant to be reviewed and edited before use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from graphxfer.exceptions import SchemaError, first_rows
from graphxfer.schema import KINDS, Column, canonical_label, canonical_labels

__all__ = ["infer_columns"]


def infer_columns(
    df: pd.DataFrame,
    *,
    target: str | None = None,
    id: str | None = None,
    group: str | None = None,
    ignore: Sequence[str] = (),
    kinds: Mapping[str, str] | None = None,
    max_categories: int = 50,
) -> list[Column]:
    """The proposed columns of :meth:`Schema.infer <graphxfer.schema.Schema.infer>`, in the
    data's order.

    Parameters
    ----------
    df : DataFrame
        The data.
    target, id, group : str, optional
        Names of the target (0/1), id (one per person) and group (site) columns.
    ignore : sequence of str
        Columns to mark ``role="ignore"``.
    kinds : dict, optional
        ``{column: kind}`` for feature columns whose kind is declared rather than inferred.
    max_categories : int, default=50
        Text columns with more distinct values keep an open vocabulary (``categories=None``).

    Returns
    -------
    list of Column

    Raises
    ------
    SchemaError
        A named column is absent, the target is not binary, a declared kind is unknown, or
        a text column is mostly numbers.

    Examples
    --------
    >>> [c.kind for c in infer_columns(pd.DataFrame({"age": [50, 61], "sex": ["f", "m"]}))]
    ['numeric', 'binary']
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"Schema.infer needs a pandas DataFrame, got {type(df).__name__}")
    for arg, col in (("target", target), ("id", id), ("group", group)):
        if col is not None and col not in df.columns:
            raise SchemaError(
                f"{arg}={col!r} is not a column of the data; columns are {list(df.columns)}"
            )
    bad_names = [c for c in df.columns if not isinstance(c, str) or c == ""]
    if bad_names:
        raise SchemaError(
            f"column names must be non-empty strings, got {bad_names[:5]}; rename them, "
            "e.g. df.columns = df.columns.astype(str)"
        )
    if isinstance(ignore, str):
        ignore = [ignore]
    for col in ignore:
        if col not in df.columns:
            raise SchemaError(f"ignore={col!r} is not a column of the data")
    kinds = dict(kinds or {})
    for col, kind in kinds.items():
        if col not in df.columns:
            raise SchemaError(
                f"kinds names {col!r}, which is not a column of the data; columns are "
                f"{list(df.columns)[:30]}"
            )
        if kind not in KINDS:
            raise SchemaError(f"kinds[{col!r}] = {kind!r} is not one of {KINDS}")
        if col in (target, id, group) or col in ignore:
            raise SchemaError(
                f"kinds[{col!r}]: the kind is declared for feature columns only; {col!r} "
                "is the target, id, group or an ignored column"
            )
    columns: list[Column] = []
    for col in df.columns:
        name_ = str(col)
        series = df[col]
        if col == target:
            columns.append(_infer_target(series, name_))
        elif col == id:
            columns.append(Column(name_, "categorical", "id"))
        elif col == group:
            columns.append(Column(name_, "categorical", "group"))
        elif col in ignore:
            columns.append(Column(name_, "categorical", "ignore"))
        elif col in kinds:
            columns.append(_declared_feature(series, name_, kinds[col], max_categories))
        else:
            columns.append(_infer_feature(series, name_, max_categories))
    return columns


def _observed_labels(series: pd.Series) -> list[str]:
    labels = {canonical_label(v) for v in series.dropna().unique()}
    return sorted((lab for lab in labels if isinstance(lab, str)), key=_sort_key)


def _sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _infer_target(series: pd.Series, name: str) -> Column:
    labels = _observed_labels(series)
    if set(labels) <= {"0", "1"}:
        return Column(name, "binary", "target")
    if len(labels) == 2:
        return Column(name, "binary", "target", categories=labels)
    raise SchemaError(
        f"target column {name!r} has {len(labels)} distinct values {labels[:10]}; "
        "a target must be binary: derive a 0/1 column (e.g. df['y'] = (df[col] > 0).astype(int))"
    )


def _infer_feature(series: pd.Series, name: str, max_categories: int) -> Column:
    if pd.api.types.is_bool_dtype(series):
        return Column(name, "binary")
    if pd.api.types.is_numeric_dtype(series):
        values = series.dropna().unique()
        if len(values) > 0 and set(np.asarray(values, dtype=float).tolist()) <= {0.0, 1.0}:
            return Column(name, "binary")
        return Column(name, "numeric")
    _refuse_mostly_numeric(series, name)
    labels = _observed_labels(series)
    if len(labels) == 2:
        return Column(name, "binary", categories=labels)
    if len(labels) == 0 or len(labels) > max_categories:
        # no observed value (the cohort reports it) or too many for a closed vocabulary
        return Column(name, "categorical")
    return Column(name, "categorical", categories=labels)


_MOSTLY_NUMERIC = 0.9
"""Share of a text column's non-missing values that read as numbers from which the column is
taken for a numeric column with stray text (and refused) rather than a categorical one."""


def _refuse_mostly_numeric(series: pd.Series, name: str) -> None:
    """Raise :class:`SchemaError` when a text column is mostly numbers with a few text values."""
    observed = series[canonical_labels(series).notna()]  # blank strings are missing
    if observed.empty:
        return
    counts = observed.value_counts(sort=False)
    counts = counts[counts > 0]  # a categorical dtype lists unobserved categories too
    as_text = pd.Series(counts.index.map(str), dtype=object).str.strip()
    is_number = pd.to_numeric(as_text, errors="coerce").notna().to_numpy()
    n_text = int(counts.to_numpy()[~is_number].sum())
    if n_text == 0 or (len(observed) - n_text) / len(observed) < _MOSTLY_NUMERIC:
        return
    text_values = list(counts.index[~is_number])
    rows = observed.index[observed.isin(text_values)]
    shown = [str(v) for v in text_values[:5]]
    raise SchemaError(
        f"column {name!r} is mostly numbers, but {n_text} of its {len(observed)} values "
        f"{'is' if n_text == 1 else 'are'} text: {shown} (rows {first_rows(rows)}). Clean "
        f"the data (e.g. df[{name!r}] = pd.to_numeric(df[{name!r}], errors='coerce') makes "
        f"them missing, or read the file with na_values={shown!r}), or declare the column's "
        "kind: "
        f"Schema.infer(df, kinds={{{name!r}: 'categorical'}}) or a Column({name!r}, "
        "'categorical') in the schema"
    )


def _declared_feature(series: pd.Series, name: str, kind: str, max_categories: int) -> Column:
    """A feature column of the declared ``kind``, its vocabulary taken from the data."""
    if kind == "numeric":
        return Column(name, "numeric")
    labels = _observed_labels(series)
    if kind == "binary":
        if set(labels) <= {"0", "1"}:
            return Column(name, "binary")
        if len(labels) != 2:
            raise SchemaError(
                f"kinds[{name!r}] = 'binary', but the column holds {len(labels)} distinct values "
                f"{labels[:10]}; a binary column has two"
            )
        return Column(name, "binary", categories=labels)
    if kind == "ordinal":
        if not labels:
            raise SchemaError(
                f"kinds[{name!r}] = 'ordinal', but the column has no observed value to order; "
                f"declare Column({name!r}, 'ordinal', levels=[...]) in the schema"
            )
        return Column(name, "ordinal", levels=labels)
    if len(labels) == 0 or len(labels) > max_categories:
        return Column(name, "categorical")
    return Column(name, "categorical", categories=labels)
