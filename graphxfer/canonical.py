"""The canonical data of a cohort: a data frame read as its schema declares, value by value.

What :class:`~graphxfer.cohort.Cohort` runs on construction: numeric and binary columns become
float64 (binary as 0.0 / 1.0), categorical and ordinal columns strings, declared missing values
NaN; values that do not fit their column, a missing or single-class target and missing or
repeated ids are errors naming the column and the first rows.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

from graphxfer.exceptions import (
    AllMissingColumnError,
    CohortError,
    DuplicateIdError,
    EmptyCohortError,
    IdentifierLikeColumnWarning,
    InfiniteValueError,
    MissingColumnError,
    NonNumericValueError,
    OutOfBoundsError,
    SingleClassError,
    UnknownCategoryError,
    UnknownCategoryWarning,
    first_rows,
)
from graphxfer.schema import Column, Schema, canonical_labels

__all__ = ["UNKNOWN", "canonical_frame"]

UNKNOWN = "<unknown>"
"""Label that replaces unknown categories when a cohort is built with ``unknown="map"``."""

_ID_WARN_MIN_ROWS = 50


def canonical_frame(
    data: pd.DataFrame,
    schema: Schema,
    *,
    unknown: Literal["error", "map"] = "error",
    all_missing: Literal["error", "keep", "drop"] = "error",
    repeated_ids: Literal["error", "allow"] = "error",
) -> tuple[Schema, pd.DataFrame, dict[str, int]]:
    """Read ``data`` as ``schema`` declares it, checking every value.

    What a :class:`~graphxfer.cohort.Cohort` holds.

    Parameters
    ----------
    data : DataFrame
        One row per record; it is not modified.
    schema : Schema
        The columns to keep and how to read them.
    unknown, all_missing, repeated_ids : str
        The policies of :class:`~graphxfer.cohort.Cohort`.

    Returns
    -------
    schema : Schema
        The columns kept (without the feature columns dropped by ``all_missing="drop"``).
    frame : DataFrame
        Numeric and binary columns as float64 (binary as 0.0 / 1.0), categorical and ordinal
        columns as strings, missing values as NaN; ignored columns as given.
    unknown_counts : dict
        ``{column: count}`` of categories mapped to :data:`UNKNOWN` (``unknown="map"``).

    Raises
    ------
    CohortError
        Empty data, repeated or missing columns, values that do not fit their column, a
        missing or single-class target, missing or repeated ids (see the subclasses in
        :mod:`graphxfer.exceptions`).

    Examples
    --------
    >>> import pandas as pd
    >>> from graphxfer.schema import Column, Schema
    >>> smoker = Column("smoker", "binary", categories=["no", "yes"])
    >>> schema = Schema([Column("age", lower=0), smoker])
    >>> data = pd.DataFrame({"age": ["61", None], "smoker": ["yes", "no"]})
    >>> _, frame, _ = canonical_frame(data, schema)
    >>> frame["age"].tolist(), frame["smoker"].tolist()
    ([61.0, nan], [1.0, 0.0])
    """
    unknown_counts: dict[str, int] = {}
    if len(data) == 0:
        raise EmptyCohortError("the data frame has no rows; a cohort needs at least one record")
    if data.columns.duplicated().any():
        dup = list(data.columns[data.columns.duplicated()])
        raise CohortError(f"the data frame repeats columns {dup}; column names must be unique")
    absent = [c.name for c in schema if c.role != "ignore" and c.name not in data.columns]
    if absent:
        raise MissingColumnError(
            f"column(s) {absent} of the schema are missing from the data "
            f"(data columns: {list(map(str, data.columns))[:30]}); rename them, "
            "drop them from the schema, or align this cohort to the source with Cohort.align"
        )
    out: dict[str, pd.Series] = {}
    keep_cols: list[Column] = []
    for col in schema:
        if col.name not in data.columns:
            continue  # an ignored column that is absent
        series = data[col.name]
        if col.role == "ignore":
            out[col.name] = series.copy()
            keep_cols.append(col)
            continue
        values = _canonical(series, col, unknown, unknown_counts)
        if col.role == "feature" and values.isna().all():
            if all_missing == "error":
                raise AllMissingColumnError(
                    f"feature column {col.name!r} has no observed value in any of the "
                    f"{len(values)} rows; mark it role='ignore', or build the cohort with "
                    "all_missing='keep' (treated as absent for every record) or 'drop'"
                )
            if all_missing == "drop":
                continue
        out[col.name] = values
        keep_cols.append(col)
    frame = pd.DataFrame(out, index=data.index.copy())
    schema = Schema(keep_cols, name=schema.name)
    _check_target(frame, schema)
    _check_ids(frame, schema, repeated_ids)
    _warn_identifier_like(frame, schema)
    return schema, frame, unknown_counts


def _canonical(
    series: pd.Series, col: Column, unknown: str, unknown_counts: dict[str, int]
) -> pd.Series:
    if col.missing_values:
        series = series.mask(series.isin(col.missing_values))
    if col.role in ("id", "group"):
        return canonical_labels(series)
    if col.kind == "numeric":
        return _numeric(series, col)
    if col.kind == "binary":
        return _binary(series, col)
    return _labels(series, col, unknown, unknown_counts)


def _binary(series: pd.Series, col: Column) -> pd.Series:
    labels = canonical_labels(series)
    if col.categories is not None:
        mapping = {col.categories[0]: 0.0, col.categories[1]: 1.0}
        allowed = col.categories
        if pd.api.types.is_numeric_dtype(series) and not set(col.categories) & {"0", "1"}:
            # already encoded as 0/1 (e.g. the canonical data of another cohort)
            mapping = {"0": 0.0, "1": 1.0}
    else:
        mapping = {"0": 0.0, "1": 1.0}
        allowed = ["0", "1"]
    bad = labels.notna() & ~labels.isin(list(mapping))
    if bad.any():
        raise UnknownCategoryError(
            f"binary column {col.name!r} holds values {sorted(set(labels[bad]))[:10]} outside "
            f"{allowed} in rows {first_rows(series.index[bad])}; set the column's "
            "categories=[negative, positive] or recode the values"
        )
    return labels.map(mapping).astype("float64")


def _labels(
    series: pd.Series, col: Column, unknown: str, unknown_counts: dict[str, int]
) -> pd.Series:
    labels = canonical_labels(series)
    vocab = col.vocabulary
    if vocab is None:
        return labels
    bad = labels.notna() & ~labels.isin(vocab)
    if bad.any():
        values = sorted(set(labels[bad]))
        if unknown == "error":
            raise UnknownCategoryError(
                f"column {col.name!r} holds categories {values[:10]} that are not in its "
                f"vocabulary {vocab[:20]} (rows {first_rows(series.index[bad])}); add them to "
                "the schema, recode them (Cohort.align(recode=...)), or build the cohort with "
                "unknown='map'"
            )
        labels = labels.mask(bad, UNKNOWN)
        unknown_counts[col.name] = int(bad.sum())
        warnings.warn(
            f"column {col.name!r}: {int(bad.sum())} value(s) {values[:5]} outside the "
            f"vocabulary were mapped to {UNKNOWN!r}",
            UnknownCategoryWarning,
            stacklevel=4,
        )
    return labels


def _check_target(frame: pd.DataFrame, schema: Schema) -> None:
    target = schema.target
    if target is None:
        return
    y = frame[target.name]
    if y.isna().any():
        raise CohortError(
            f"target column {target.name!r} is missing in rows {first_rows(y.index[y.isna()])}"
            "; drop those rows or impute the outcome before building the cohort"
        )
    if y.nunique() < 2:
        only = int(y.iloc[0])
        raise SingleClassError(
            f"target column {target.name!r} holds a single class ({only}) in all "
            f"{len(y)} rows; a classifier needs both outcomes in the training data"
        )


def _check_ids(frame: pd.DataFrame, schema: Schema, repeated_ids: str) -> None:
    group = schema.group
    if group is not None and frame[group.name].isna().any():
        missing = frame[group.name].isna()
        raise CohortError(
            f"group column {group.name!r} is missing in rows "
            f"{first_rows(missing.index[missing])}; give every record its site, or drop "
            "those rows"
        )
    id_col = schema.id
    if id_col is None:
        return
    ids = frame[id_col.name]
    if ids.isna().any():
        raise CohortError(
            f"id column {id_col.name!r} is missing in rows {first_rows(ids.index[ids.isna()])}"
        )
    dup = ids.duplicated(keep=False)
    if dup.any() and repeated_ids == "error":
        examples = list(dict.fromkeys(ids[dup]))[:5]
        raise DuplicateIdError(
            f"id column {id_col.name!r} repeats ids {examples} (rows "
            f"{first_rows(ids.index[dup])}); a record is one person: reduce to one row per "
            "person, or build the cohort with repeated_ids='allow' so that a person's rows "
            "are kept and privacy-accounted together"
        )


def _warn_identifier_like(frame: pd.DataFrame, schema: Schema) -> None:
    n = len(frame)
    if n < _ID_WARN_MIN_ROWS:
        return
    for col in schema.features:
        values = frame[col.name].dropna()
        if len(values) < 0.95 * n:
            continue
        if col.kind == "numeric":
            as_float = values.to_numpy(dtype=float)
            if not np.all(np.mod(as_float, 1) == 0):
                continue
        elif col.kind != "categorical":
            continue
        if values.nunique() == len(values):
            warnings.warn(
                f"feature column {col.name!r} has a distinct value in every row: it is "
                "probably an identifier; give it role='id' or role='ignore'",
                IdentifierLikeColumnWarning,
                stacklevel=4,
            )


def _numeric(series: pd.Series, col: Column) -> pd.Series:
    """The values of the numeric column ``col`` as float64, checked against its bounds.

    Booleans read as 0.0 / 1.0; dates and durations, text that is not a number, infinite
    values and values outside the declared bounds are errors naming the column and rows.
    """
    if pd.api.types.is_bool_dtype(series):
        values = series.astype("float64")
    else:
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(
            series
        ):
            # dates and durations would silently become nanosecond counts (NaT a huge negative)
            values = pd.Series(np.nan, index=series.index, dtype="float64")
        else:
            converted = pd.to_numeric(series, errors="coerce")
            if pd.api.types.is_complex_dtype(converted):
                converted = converted.where(np.imag(converted.to_numpy()) == 0, np.nan)
                converted = pd.Series(np.real(converted.to_numpy()), index=series.index)
            values = converted.astype("float64")
        bad = values.isna() & series.notna()
        if bad.any():
            examples = list(dict.fromkeys(series[bad].astype(str)))[:5]
            raise NonNumericValueError(
                f"numeric column {col.name!r} holds non-numeric values {examples} in rows "
                f"{first_rows(series.index[bad])}; clean them, declare them as "
                "missing_values, or make the column categorical"
            )
    inf = np.isinf(values.to_numpy())
    if inf.any():
        raise InfiniteValueError(
            f"numeric column {col.name!r} holds infinite values in rows "
            f"{first_rows(series.index[inf])}; replace them by NaN (missing) or a finite value"
        )
    for bound, op in (("lower", np.less), ("upper", np.greater)):
        limit = getattr(col, bound)
        if limit is None:
            continue
        out = op(values.to_numpy(), limit) & values.notna().to_numpy()
        if out.any():
            examples = values[out].head(5).tolist()
            raise OutOfBoundsError(
                f"numeric column {col.name!r} holds values {examples} "
                f"{'below its lower' if bound == 'lower' else 'above its upper'} bound "
                f"{limit:g} in rows {first_rows(series.index[out])}; correct the data, widen "
                "the declared bounds, or convert units (Cohort.align(convert=...))"
            )
    return values
