"""Cohorts: a data frame together with its schema, validated on construction."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from graphxfer.exceptions import (
    AlignmentError,
    AllMissingColumnError,
    CohortError,
    DuplicateIdError,
    EmptyCohortError,
    GraphxferWarning,
    IdentifierLikeColumnWarning,
    InfiniteValueError,
    MissingColumnError,
    NonNumericValueError,
    OutOfBoundsError,
    SingleClassError,
    TypeMismatchError,
    UnknownCategoryError,
    UnknownCategoryWarning,
    first_rows,
)
from graphxfer.schema import Column, Schema, canonical_label, canonical_labels

__all__ = ["COERCIONS", "UNKNOWN", "AlignmentReport", "Cohort", "KindCoercionWarning"]

UNKNOWN = "<unknown>"
"""Label that replaces unknown categories when a cohort is built with ``unknown="map"``."""

COERCIONS: tuple[tuple[str, str], ...] = (
    ("binary", "numeric"),
    ("ordinal", "numeric"),
    ("numeric", "categorical"),
    ("binary", "categorical"),
)
"""``(kind here, kind in the source)`` pairs that :meth:`Cohort.align` converts (with a
:class:`KindCoercionWarning` and a record in :attr:`AlignmentReport.coerced`); every other
difference of kind is a :class:`~graphxfer.exceptions.TypeMismatchError`."""


class KindCoercionWarning(GraphxferWarning):
    """:meth:`Cohort.align` converted a column to the source's kind (binary or ordinal into
    numeric, numbers or binary labels into a declared categorical vocabulary)."""


_ID_WARN_MIN_ROWS = 50


class Cohort:
    """A data frame plus its :class:`~graphxfer.Schema`, validated on construction.

    The cohort holds a canonical copy of the schema's columns: numeric and binary columns as
    float64 (binary as 0.0 / 1.0), categorical and ordinal columns as strings, missing values as
    NaN. The caller's data frame is never modified.

    Parameters
    ----------
    data : DataFrame
        One row per record.
    schema : Schema
        The columns to keep and how to read them. Data columns absent from the schema are dropped.
    unknown : {"error", "map"}, default="error"
        What to do with a category outside a column's vocabulary: raise
        :class:`~graphxfer.exceptions.UnknownCategoryError`, or replace it by ``"<unknown>"``,
        count it in :attr:`unknown_counts` and warn.
    all_missing : {"error", "keep", "drop"}, default="error"
        What to do with a feature column that has no observed value (e.g. a site that never
        measured it): raise, keep it as an all-missing column, or drop it from the schema.
    repeated_ids : {"error", "allow"}, default="error"
        Whether one person (id) may have several rows. When allowed, the rows of one person are
        kept together by :meth:`split` and are one privacy unit in DP fine-tuning.
    name : str, optional
        Label used in summaries and reports.

    Examples
    --------
    >>> import pandas as pd
    >>> from graphxfer import Cohort, Schema
    >>> df = pd.DataFrame({"age": [50, 61, 45, 70], "sick": [0, 1, 0, 1]})
    >>> cohort = Cohort(df, Schema.infer(df, target="sick"))
    >>> len(cohort), cohort.y.tolist()
    (4, [0, 1, 0, 1])
    """

    def __init__(
        self,
        data: pd.DataFrame,
        schema: Schema,
        *,
        unknown: Literal["error", "map"] = "error",
        all_missing: Literal["error", "keep", "drop"] = "error",
        repeated_ids: Literal["error", "allow"] = "error",
        name: str | None = None,
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise CohortError(f"a Cohort needs a pandas DataFrame, got {type(data).__name__}")
        if not isinstance(schema, Schema):
            raise CohortError(f"schema must be a graphxfer.Schema, got {type(schema).__name__}")
        for param, value, allowed in (
            ("unknown", unknown, ("error", "map")),
            ("all_missing", all_missing, ("error", "keep", "drop")),
            ("repeated_ids", repeated_ids, ("error", "allow")),
        ):
            if value not in allowed:
                raise CohortError(f"{param}={value!r} is not one of {allowed}")
        self.unknown = unknown
        self.all_missing = all_missing
        self.repeated_ids = repeated_ids
        self.name = name if name is not None else schema.name
        self.unknown_counts: dict[str, int] = {}
        self.schema, self._data = self._validate(data, schema.copy())

    # ------------------------------------------------------------------ validation
    def _validate(self, data: pd.DataFrame, schema: Schema) -> tuple[Schema, pd.DataFrame]:
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
            values = self._canonical(series, col)
            if col.role == "feature" and values.isna().all():
                if self.all_missing == "error":
                    raise AllMissingColumnError(
                        f"feature column {col.name!r} has no observed value in any of the "
                        f"{len(values)} rows; mark it role='ignore', or build the cohort with "
                        "all_missing='keep' (treated as absent for every record) or 'drop'"
                    )
                if self.all_missing == "drop":
                    continue
            out[col.name] = values
            keep_cols.append(col)
        frame = pd.DataFrame(out, index=data.index.copy())
        schema = Schema(keep_cols, name=schema.name)
        self._check_target(frame, schema)
        self._check_ids(frame, schema)
        self._warn_identifier_like(frame, schema)
        return schema, frame

    def _canonical(self, series: pd.Series, col: Column) -> pd.Series:
        if col.missing_values:
            series = series.mask(series.isin(col.missing_values))
        if col.role in ("id", "group"):
            return canonical_labels(series)
        if col.kind == "numeric":
            return _numeric(series, col)
        if col.kind == "binary":
            return self._binary(series, col)
        return self._labels(series, col)

    def _binary(self, series: pd.Series, col: Column) -> pd.Series:
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

    def _labels(self, series: pd.Series, col: Column) -> pd.Series:
        labels = canonical_labels(series)
        vocab = col.vocabulary
        if vocab is None:
            return labels
        bad = labels.notna() & ~labels.isin(vocab)
        if bad.any():
            values = sorted(set(labels[bad]))
            if self.unknown == "error":
                raise UnknownCategoryError(
                    f"column {col.name!r} holds categories {values[:10]} that are not in its "
                    f"vocabulary {vocab[:20]} (rows {first_rows(series.index[bad])}); add them to "
                    "the schema, recode them (Cohort.align(recode=...)), or build the cohort with "
                    "unknown='map'"
                )
            labels = labels.mask(bad, UNKNOWN)
            self.unknown_counts[col.name] = int(bad.sum())
            warnings.warn(
                f"column {col.name!r}: {int(bad.sum())} value(s) {values[:5]} outside the "
                f"vocabulary were mapped to {UNKNOWN!r}",
                UnknownCategoryWarning,
                stacklevel=4,
            )
        return labels

    def _check_target(self, frame: pd.DataFrame, schema: Schema) -> None:
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

    def _check_ids(self, frame: pd.DataFrame, schema: Schema) -> None:
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
        if dup.any() and self.repeated_ids == "error":
            examples = list(dict.fromkeys(ids[dup]))[:5]
            raise DuplicateIdError(
                f"id column {id_col.name!r} repeats ids {examples} (rows "
                f"{first_rows(ids.index[dup])}); a record is one person: reduce to one row per "
                "person, or build the cohort with repeated_ids='allow' so that a person's rows "
                "are kept and privacy-accounted together"
            )

    def _warn_identifier_like(self, frame: pd.DataFrame, schema: Schema) -> None:
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

    # ------------------------------------------------------------------ access
    @classmethod
    def _from_valid(cls, frame: pd.DataFrame, schema: Schema, like: Cohort) -> Cohort:
        """A cohort from already-canonical data (no re-validation of values)."""
        obj = cls.__new__(cls)
        obj.unknown = like.unknown
        obj.all_missing = like.all_missing
        obj.repeated_ids = like.repeated_ids
        obj.name = like.name
        obj.unknown_counts = dict(like.unknown_counts)
        obj.schema = schema
        obj._data = frame
        return obj

    @property
    def data(self) -> pd.DataFrame:
        """A copy of the canonical data (schema columns only)."""
        return self._data.copy()

    @property
    def X(self) -> pd.DataFrame:
        """A copy of the feature columns."""
        return self._data[self.schema.feature_names].copy()

    @property
    def y(self) -> np.ndarray:
        """The 0/1 target as an int64 array."""
        target = self.schema.target
        if target is None:
            raise MissingColumnError("this cohort has no target column (role='target')")
        return self._data[target.name].to_numpy(dtype=np.int64)

    @property
    def has_target(self) -> bool:
        """Whether the schema names a target column."""
        return self.schema.target is not None

    @property
    def groups(self) -> pd.Series | None:
        """The group (site) of every row, or None without a group column."""
        group = self.schema.group
        return None if group is None else self._data[group.name].copy()

    @property
    def ids(self) -> pd.Series | None:
        """The person id of every row, or None without an id column."""
        id_col = self.schema.id
        return None if id_col is None else self._data[id_col.name].copy()

    @property
    def person_index(self) -> np.ndarray:
        """An int array giving each row's person (0..n_persons-1); rows are persons without ids."""
        ids = self.ids
        if ids is None:
            return np.arange(len(self), dtype=np.int64)
        codes, _ = pd.factorize(ids)
        return codes.astype(np.int64)

    @property
    def n_persons(self) -> int:
        """Number of distinct persons (the privacy unit)."""
        return int(self.person_index.max()) + 1

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (
            f"<Cohort{label}: {len(self)} rows, {len(self.schema.features)} features"
            + (f", target {self.schema.target.name!r}" if self.schema.target else "")
            + ">"
        )

    # ------------------------------------------------------------------ subsets
    def subset(self, rows: np.ndarray | Sequence[int] | pd.Series) -> Cohort:
        """The cohort restricted to ``rows`` (a boolean mask or integer positions).

        The schema is unchanged; a subset may therefore hold all-missing columns.
        """
        arr = np.asarray(rows)
        if arr.dtype == bool:
            if len(arr) != len(self):
                raise CohortError(f"mask has {len(arr)} entries, the cohort {len(self)} rows")
            frame = self._data.loc[arr]
        else:
            frame = self._data.iloc[arr.astype(np.int64)]
        if len(frame) == 0:
            raise EmptyCohortError("the selection holds no rows")
        return Cohort._from_valid(frame.copy(), self.schema.copy(), self)

    def select_groups(self, groups: Hashable | Iterable[Hashable]) -> Cohort:
        """The rows whose group (site) is one of ``groups``."""
        group = self.schema.group
        if group is None:
            raise MissingColumnError("this cohort has no group column (role='group')")
        wanted = (
            [canonical_label(groups)]
            if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable)
            else [canonical_label(g) for g in groups]
        )
        present = set(self._data[group.name])
        unknown = [g for g in wanted if g not in present]
        if unknown:
            raise CohortError(
                f"group(s) {unknown} do not occur in column {group.name!r}; "
                f"groups are {sorted(present)}"
            )
        cohort = self.subset(self._data[group.name].isin(wanted).to_numpy())
        cohort.name = "+".join(wanted)
        return cohort

    def by_group(self) -> dict[str, Cohort]:
        """One cohort per group (site), in order of first appearance."""
        groups = self.groups
        if groups is None:
            raise MissingColumnError("this cohort has no group column (role='group')")
        return {str(g): self.select_groups(g) for g in dict.fromkeys(groups)}

    def split(
        self,
        test_size: float | int = 0.25,
        *,
        stratify: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> tuple[Cohort, Cohort]:
        """Split into train and test cohorts, stratified by outcome and seeded.

        All rows of one person (id) fall on the same side.

        Parameters
        ----------
        test_size : float or int, default=0.25
            Share (0 < test_size < 1) or number of persons in the test part.
        stratify : bool, default=True
            Keep the outcome rate equal in both parts (by each person's first outcome).
        random_state : int, Generator or None
            Seed.

        Returns
        -------
        train, test : Cohort
        """
        from sklearn.model_selection import train_test_split

        person = self.person_index
        n_persons = int(person.max()) + 1
        if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.number)):
            raise CohortError(
                f"test_size={test_size!r} must be a share in (0, 1) or a count of persons"
            )
        if isinstance(test_size, np.number):
            test_size = test_size.item()
        if isinstance(test_size, float) and not 0.0 < test_size < 1.0:
            raise CohortError(f"test_size={test_size} must be in (0, 1) or a count of persons")
        if isinstance(test_size, int) and not 0 < test_size < n_persons:
            raise CohortError(f"test_size={test_size} must be between 1 and {n_persons - 1}")
        labels = None
        if stratify and self.has_target:
            first = pd.Series(self.y).groupby(person).first().to_numpy()
            counts = np.bincount(first, minlength=2)
            if counts.min() >= 2:
                labels = first
        seed = _seed(random_state)
        try:
            train_p, test_p = train_test_split(
                np.arange(n_persons), test_size=test_size, stratify=labels, random_state=seed
            )
        except ValueError as exc:
            raise CohortError(
                f"cannot split {n_persons} persons with test_size={test_size}"
                f"{' stratified by outcome' if labels is not None else ''}: {exc}; "
                "use a larger cohort, another test_size, or stratify=False"
            ) from exc
        train_mask = np.isin(person, train_p)
        test_mask = np.isin(person, test_p)
        return self.subset(train_mask), self.subset(test_mask)

    # ------------------------------------------------------------------ summaries
    def summary(self, by: str | None = "group") -> pd.DataFrame:
        """Rows, persons, positive rate and the share of missing values per feature.

        Parameters
        ----------
        by : {"group", None}, default="group"
            One row per group (site), or a single row for the whole cohort.

        Returns
        -------
        DataFrame
            Columns ``rows``, ``persons``, ``positive_rate`` and ``missing:<column>`` per feature.
        """
        group = self.schema.group if by == "group" else None
        label = self.name or "cohort"
        keys = (
            self._data[group.name].to_numpy()
            if group is not None
            else np.full(len(self), label, dtype=object)
        )
        person = self.person_index
        rows = []
        for key in dict.fromkeys(keys):
            mask = keys == key
            part = self._data.loc[mask]
            row: dict[str, Any] = {
                "rows": int(mask.sum()),
                "persons": len(np.unique(person[mask])),
            }
            target = self.schema.target
            row["positive_rate"] = (
                float(part[target.name].mean()) if target is not None else float("nan")
            )
            for col in self.schema.features:
                row[f"missing:{col.name}"] = float(part[col.name].isna().mean())
            rows.append(row)
        out = pd.DataFrame(rows, index=pd.Index(list(dict.fromkeys(keys))))
        out.index.name = group.name if group is not None else None
        return out

    # ------------------------------------------------------------------ alignment
    def align(
        self,
        source_schema: Schema,
        mapping: Mapping[str, str] | None = None,
        *,
        recode: Mapping[str, Mapping[Any, Any]] | None = None,
        convert: Mapping[str, tuple[float, float] | float] | None = None,
        unknown: Literal["error", "map"] | None = None,
    ) -> tuple[Cohort, AlignmentReport]:
        """Express this (target) cohort in the columns and codes of a source schema.

        Parameters
        ----------
        source_schema : Schema
            The schema the encoder was pretrained on.
        mapping : dict, optional
            ``{this_cohort_column: source_column}`` for renamed columns. Columns with equal
            names match without a mapping.
        recode : dict, optional
            ``{source_column: {this_cohort_code: source_code}}`` for categorical, binary or ordinal
            columns whose codes differ.
        convert : dict, optional
            ``{source_column: (factor, offset)}`` (or just ``factor``) for numeric columns in
            other units: ``source_value = factor * value + offset``.
        unknown : {"error", "map"}, optional
            Policy for categories outside the source vocabulary; defaults to this cohort's.

        Returns
        -------
        aligned : Cohort
            Source feature columns in source order (absent ones all missing), then the columns
            only this cohort has, then target, id and group.
        report : AlignmentReport
            What was matched, renamed, recoded, converted, coerced, missing and extra.

        Raises
        ------
        TypeMismatchError
            A column's kind differs between the two schemas and cannot be converted, or a
            column stands in for a source column of another role.
        AlignmentError
            The mapping, recoding or conversion names unknown columns or is inconsistent.

        Warns
        -----
        KindCoercionWarning
            Once per call, naming every column converted to the source's kind.

        Notes
        -----
        A column whose kind here differs from the source's is converted when the conversion
        loses nothing (:data:`COERCIONS`), recorded in ``report.coerced`` and announced by one
        :class:`KindCoercionWarning`:

        - *binary into numeric*: each record gets the number of its label when both labels are
          numbers (``0``/``1``, or ``1``/``2``), otherwise the label's position (0 for the
          negative label, 1 for the positive).
        - *ordinal into numeric*: likewise, the level's own value when every level is a number
          (``["1", "2", "3"]`` gives 1, 2, 3), otherwise its position (0 for the lowest).
        - *numeric or binary into categorical*: only when the source schema declares the
          column's vocabulary (``categories``); the numbers (``1.0`` reads as ``"1"``) or binary
          labels, after ``recode`` if given, must all be categories of it.

        Every other difference is refused, naming the column: categories into numbers
        (categories have no order), numbers into binary or ordinal, and so on.
        """
        if not isinstance(source_schema, Schema):
            raise AlignmentError(
                f"source_schema must be a graphxfer.Schema, got {type(source_schema).__name__}"
            )
        for arg, value in (("mapping", mapping), ("recode", recode), ("convert", convert)):
            if value is not None and not isinstance(value, Mapping):
                raise AlignmentError(
                    f"{arg} must be a dict keyed by column name, got {type(value).__name__}"
                )
        for src, codes in (recode or {}).items():
            if not isinstance(codes, Mapping):
                raise AlignmentError(
                    f"recode[{src!r}] must be a dict {{this_cohort_code: source_code}}, "
                    f"got {codes!r}"
                )
        mapping = dict(mapping or {})
        recode = {k: dict(v) for k, v in (recode or {}).items()}
        convert = dict(convert or {})
        for own, src in mapping.items():
            if own not in self.schema:
                raise AlignmentError(
                    f"mapping names column {own!r}, which this cohort does not have; "
                    f"its columns are {self.schema.names}"
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
        renamed_to_src = {own: mapping.get(own, own) for own in self.schema.names}
        src_to_own: dict[str, str] = {}
        for own, src in renamed_to_src.items():
            if src not in source_schema or self.schema[own].role == "ignore":
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
        report = AlignmentReport()
        frame: dict[str, pd.Series] = {}
        columns: list[Column] = []
        data = self._data

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
            own_col = self.schema[own_name]
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
                values, record, n_recoded = _coerce(
                    values, own_col, src_col, recode.get(src_col.name)
                )
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

        for own_col in self.schema:
            src_name = renamed_to_src[own_col.name]
            if own_col.role == "feature" and src_name not in source_schema:
                report.extra.append(own_col.name)
                frame[own_col.name] = data[own_col.name]
                columns.append(_copy(own_col))
        for own_col in self.schema:
            if own_col.role in ("id", "group") or (
                own_col.role == "target" and own_col.name not in src_to_own.values()
            ):
                if own_col.name in frame:
                    continue
                frame[own_col.name] = data[own_col.name]
                columns.append(_copy(own_col))
        src_target = source_schema.target
        if src_target is not None and src_target.name not in frame and self.has_target:
            raise AlignmentError(
                f"this cohort's target {self.schema.target.name!r} "  # type: ignore[union-attr]
                f"is not aligned to the source target {src_target.name!r}; add "
                f"mapping={{{self.schema.target.name!r}: {src_target.name!r}}}"  # type: ignore[union-attr]
            )
        new_schema = Schema(columns, name=self.name)
        raw = pd.DataFrame(frame, index=data.index.copy())
        # binary columns are already 0/1: relabel the schema's categories so validation passes
        for col in new_schema:
            if col.kind == "binary" and col.role not in ("ignore", "id", "group"):
                raw[col.name] = raw[col.name].map(
                    lambda v, c=col: (
                        np.nan
                        if pd.isna(v)
                        else (c.categories[int(v)] if c.categories is not None else int(v))
                    )
                )
        aligned = Cohort(
            raw,
            new_schema,
            unknown=unknown or self.unknown,
            all_missing="keep",
            repeated_ids=self.repeated_ids,
            name=self.name,
        )
        report.unknown_categories = dict(aligned.unknown_counts)
        return aligned, report


@dataclass
class AlignmentReport:
    """What :meth:`Cohort.align` did, column by column.

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
        here differs from the source's and was converted (see :meth:`Cohort.align`).
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


# ---------------------------------------------------------------------- helpers
def _seed(random_state: int | np.random.Generator | None) -> int | None:
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return random_state


def _copy(col: Column) -> Column:
    return Column.from_dict(col.to_dict())


def _numeric(series: pd.Series, col: Column) -> pd.Series:
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
    """One warning for every column :meth:`Cohort.align` converted to the source's kind."""
    what = "; ".join(
        f"{name!r} {c['from']} -> {c['to']} ({c['values']})" for name, c in coerced.items()
    )
    warnings.warn(
        f"aligned by converting kinds: {what}; the alignment report lists them under "
        "'coerced'. Declare these kinds in this cohort's schema to align without conversion",
        KindCoercionWarning,
        stacklevel=3,  # this helper, Cohort.align, its caller
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
