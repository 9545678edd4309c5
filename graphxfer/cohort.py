"""Cohorts: a data frame together with its schema, validated on construction.

The values are read and checked by :func:`graphxfer.canonical.canonical_frame`; alignment to a
source schema is done by :func:`graphxfer.align.align_frame`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from graphxfer.align import COERCIONS, AlignmentReport, KindCoercionWarning, align_frame
from graphxfer.canonical import UNKNOWN, canonical_frame
from graphxfer.exceptions import CohortError, EmptyCohortError, MissingColumnError
from graphxfer.schema import Schema, canonical_label

__all__ = ["COERCIONS", "UNKNOWN", "AlignmentReport", "Cohort", "KindCoercionWarning"]


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
        self.schema, self._data, self.unknown_counts = canonical_frame(
            data,
            schema.copy(),
            unknown=unknown,
            all_missing=all_missing,
            repeated_ids=repeated_ids,
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
        raw, new_schema, report = align_frame(
            self._data,
            self.schema,
            source_schema,
            mapping,
            recode=recode,
            convert=convert,
            name=self.name,
        )
        if self._already_aligned(new_schema, report):
            # every column is this cohort's own, under the same definition, unchanged: the
            # values were checked against it when this cohort was built
            frame = self._data[new_schema.names].copy()
            aligned = Cohort._from_valid(frame, new_schema, like=self)
            return aligned, report
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

    def _already_aligned(self, new_schema: Schema, report: AlignmentReport) -> bool:
        """Whether alignment changed nothing: the aligned columns are this cohort's own
        columns under identical definitions (bounds, vocabulary, missing codes), none renamed,
        recoded, converted, coerced or missing, and no category was mapped to ``<unknown>``
        when this cohort was built (re-reading would count it again)."""
        if report.renamed or report.recoded or report.converted or report.coerced:
            return False
        if report.missing or self.unknown_counts:
            return False
        names = set(self.schema.names)
        return all(col.name in names and col == self.schema[col.name] for col in new_schema)


# ---------------------------------------------------------------------- helpers
def _seed(random_state: int | np.random.Generator | None) -> int | None:
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return random_state
