"""Schemas: what each column of a cohort is, and what values it may hold.

A :class:`Schema` is an ordered list of :class:`Column` objects. Each column has a *role*
(``feature``, ``target``, ``id``, ``group`` or ``ignore``) and a *kind* (``numeric`` with optional
bounds and unit, ``categorical`` with a vocabulary, ``binary`` or ``ordinal`` with ordered levels).
Schemas are edited in code or as JSON, and ``Schema.from_json(schema.to_json()) == schema``
always holds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.exceptions import SchemaError

__all__ = ["KINDS", "ROLES", "Column", "Schema", "canonical_label", "canonical_labels"]

ROLES = ("feature", "target", "id", "group", "ignore")
KINDS = ("numeric", "categorical", "binary", "ordinal")
SCHEMA_FORMAT = 1


def canonical_label(value: Any) -> Any:
    """Return the canonical string form of a category label (``1.0`` -> ``"1"``), or NaN.

    Categories are compared as strings so that a code read as ``1``, ``1.0`` or ``"1"`` is one
    category everywhere.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return np.nan
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    text = str(value).strip()
    return text if text != "" else np.nan


def canonical_labels(series: pd.Series) -> pd.Series:
    """Vectorised :func:`canonical_label` over a series (object dtype, NaN for missing).

    Each distinct value is canonicalised once, so the cost is one hash pass over the rows.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [canonical_label(u) for u in uniques]
    table[-1] = np.nan
    return pd.Series(table[codes], index=series.index, dtype=object, name=series.name)


@dataclass
class Column:
    """One column of a cohort.

    Parameters
    ----------
    name : str
        Column name in the data frame.
    kind : {"numeric", "categorical", "binary", "ordinal"}, default="numeric"
        Value type. ``binary`` values are stored as 0.0 / 1.0; when ``categories`` is given
        (``[negative, positive]``), the labels are mapped to 0 and 1.
    role : {"feature", "target", "id", "group", "ignore"}, default="feature"
        What the column is for. The target must be binary.
    lower, upper : float, optional
        Declared bounds of a numeric column. Values outside them are errors. Declared bounds are
        public knowledge: differentially private fine-tuning relies on them, never on target data.
    unit : str, optional
        Unit of a numeric column (for reports and unit conversion during alignment).
    categories : list of str, optional
        Vocabulary of a categorical column, or ``[negative, positive]`` labels of a binary one.
    levels : list of str, optional
        Ordered levels of an ordinal column, lowest first.
    missing_values : list, optional
        Values that mean "missing" in this column (for example ``0`` for a cholesterol that was
        not measured). They become NaN when a cohort is built.
    description : str, default=""
        Free text shown in reports.

    Examples
    --------
    >>> Column("age", "numeric", lower=0, upper=120, unit="years").kind
    'numeric'
    """

    name: str
    kind: str = "numeric"
    role: str = "feature"
    lower: float | None = None
    upper: float | None = None
    unit: str | None = None
    categories: list[str] | None = None
    levels: list[str] | None = None
    missing_values: list[Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the column's own consistency; raise :class:`SchemaError` if it is wrong."""
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or self.name == "":
            raise SchemaError(f"column names must be non-empty strings, got {self.name!r}")
        if self.role not in ROLES:
            raise SchemaError(f"{where}: unknown role {self.role!r}; use one of {ROLES}")
        if self.kind not in KINDS:
            raise SchemaError(f"{where}: unknown kind {self.kind!r}; use one of {KINDS}")
        if self.kind != "numeric" and (self.lower is not None or self.upper is not None):
            raise SchemaError(f"{where}: bounds are only meaningful for numeric columns")
        for bound in ("lower", "upper"):
            value = getattr(self, bound)
            if value is not None:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise SchemaError(
                        f"{where}: {bound} bound must be a number, got {value!r}"
                    ) from None
                if not math.isfinite(value):
                    raise SchemaError(f"{where}: {bound} bound must be finite, got {value}")
                setattr(self, bound, value)
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise SchemaError(
                f"{where}: lower bound {self.lower} is above upper bound {self.upper}; swap them"
            )
        for key in ("categories", "levels", "missing_values"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable)
            ):
                raise SchemaError(f"{where}: {key} must be a list, got {value!r}")
        if self.categories is not None:
            cats = [canonical_label(c) for c in self.categories]
            if any(not isinstance(c, str) for c in cats):
                raise SchemaError(f"{where}: categories must not contain missing values")
            if len(set(cats)) != len(cats):
                raise SchemaError(f"{where}: categories repeat: {self.categories}")
            self.categories = cats
        if self.levels is not None:
            levels = [canonical_label(c) for c in self.levels]
            if any(not isinstance(c, str) for c in levels):
                raise SchemaError(f"{where}: levels must not contain missing values")
            if len(set(levels)) != len(levels):
                raise SchemaError(f"{where}: levels repeat: {self.levels}")
            self.levels = levels
        if self.kind == "binary" and self.categories is not None and len(self.categories) != 2:
            raise SchemaError(
                f"{where}: a binary column has exactly two categories [negative, positive], "
                f"got {self.categories}"
            )
        if self.kind == "ordinal" and self.role == "feature" and not self.levels:
            raise SchemaError(f"{where}: an ordinal column needs its ordered `levels`")
        if self.kind == "categorical" and self.role == "feature" and self.categories is not None:
            if len(self.categories) == 0:
                raise SchemaError(f"{where}: an empty vocabulary; list the categories")
        if self.role == "target" and self.kind != "binary":
            raise SchemaError(
                f"{where}: the target must be binary (kind='binary'), got kind={self.kind!r}; "
                "derive a 0/1 outcome column first"
            )
        if self.missing_values is not None:
            # numpy scalars become plain Python values so that the schema serialises to JSON
            self.missing_values = [
                v.item() if isinstance(v, np.generic) else v for v in self.missing_values
            ]

    @property
    def vocabulary(self) -> list[str] | None:
        """The allowed labels: categories (categorical, binary) or levels (ordinal)."""
        if self.kind == "ordinal":
            return self.levels
        return self.categories

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the non-default fields (``name`` always included)."""
        out: dict[str, Any] = {}
        defaults = {f.name: f.default for f in fields(self)}
        for key, value in asdict(self).items():
            if key == "name" or value != defaults[key]:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"a schema column is a JSON object with a 'name', got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SchemaError(
                f"column {data.get('name')!r}: unknown schema keys {sorted(unknown)}; "
                f"known keys are {sorted(known)}"
            )
        if "name" not in data:
            raise SchemaError(f"a schema column has no 'name': {data}")
        return cls(**data)


@dataclass
class Schema:
    """An ordered list of columns with their roles and kinds.

    Parameters
    ----------
    columns : sequence of Column
        The columns. Names are unique; at most one target, one id and one group column.
    name : str, optional
        A label for the cohort this schema describes.

    Examples
    --------
    >>> schema = Schema([Column("age", lower=0, upper=120), Column("sick", "binary", "target")])
    >>> schema.feature_names
    ['age']
    >>> Schema.from_json(schema.to_json()) == schema
    True
    """

    columns: list[Column] = field(default_factory=list)
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.columns, (str, bytes, Mapping)) or not isinstance(
            self.columns, Iterable
        ):
            raise SchemaError(f"a schema's columns are a list, got {self.columns!r}")
        self.columns = [c if isinstance(c, Column) else Column.from_dict(c) for c in self.columns]
        self.validate()

    def validate(self) -> None:
        """Check the schema's consistency; raise :class:`SchemaError` if it is wrong."""
        names = [c.name for c in self.columns]
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise SchemaError(f"column {n!r} appears twice in the schema")
            seen.add(n)
        for role in ("target", "id", "group"):
            cols = [c.name for c in self.columns if c.role == role]
            if len(cols) > 1:
                raise SchemaError(f"at most one {role} column is allowed, got {cols}")
        for c in self.columns:
            c.validate()

    # ---------------------------------------------------------------- access
    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the schema; columns are {self.names}")

    @property
    def names(self) -> list[str]:
        """All column names, in order."""
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[Column]:
        """The feature columns, in order."""
        return [c for c in self.columns if c.role == "feature"]

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in order."""
        return [c.name for c in self.features]

    def _role(self, role: str) -> Column | None:
        for c in self.columns:
            if c.role == role:
                return c
        return None

    @property
    def target(self) -> Column | None:
        """The target column, if any."""
        return self._role("target")

    @property
    def id(self) -> Column | None:
        """The id column (one person per id), if any."""
        return self._role("id")

    @property
    def group(self) -> Column | None:
        """The group (site) column, if any."""
        return self._role("group")

    # ---------------------------------------------------------------- editing
    def copy(self) -> Schema:
        """A deep copy."""
        return Schema.from_dict(self.to_dict())

    def replace(self, name: str, **changes: Any) -> Schema:
        """A copy with column ``name`` changed, e.g. ``schema.replace("age", upper=110)``."""
        self[name]  # raises a clear KeyError if absent
        known = {f.name for f in fields(Column)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SchemaError(
                f"column {name!r}: cannot set unknown field(s) {unknown}; "
                f"fields are {sorted(known)}"
            )
        cols = [replace(c, **changes) if c.name == name else replace(c) for c in self.columns]
        return Schema(cols, name=self.name)

    def drop(self, names: str | Iterable[str]) -> Schema:
        """A copy without the given columns."""
        drop = {names} if isinstance(names, str) else set(names)
        for n in drop:
            self[n]
        return Schema([replace(c) for c in self.columns if c.name not in drop], name=self.name)

    def add(self, column: Column) -> Schema:
        """A copy with ``column`` appended."""
        return Schema([*(replace(c) for c in self.columns), column], name=self.name)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready representation."""
        return {
            "format": SCHEMA_FORMAT,
            "name": self.name,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "columns" not in data:
            raise SchemaError("a schema document is a JSON object with a 'columns' list")
        fmt = data.get("format", SCHEMA_FORMAT)
        if fmt != SCHEMA_FORMAT:
            raise SchemaError(f"unknown schema format {fmt!r}; this version reads {SCHEMA_FORMAT}")
        return cls(data["columns"], name=data.get("name"))

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Serialise to JSON; when ``path`` is given the file is written atomically."""
        try:
            text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SchemaError(
                f"the schema cannot be written as JSON ({exc}); use plain numbers and strings in "
                "bounds, categories, levels and missing_values"
            ) from exc
        if path is not None:
            from graphxfer._io import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> Schema:
        """Read a schema from a JSON string or a path to a JSON file."""
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise SchemaError(f"schema file {str(path)!r} does not exist")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SchemaError(f"cannot read schema file {str(path)!r}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"the schema is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    # ---------------------------------------------------------------- inference
    @classmethod
    def infer(
        cls,
        df: pd.DataFrame,
        *,
        target: str | None = None,
        id: str | None = None,
        group: str | None = None,
        ignore: Sequence[str] = (),
        kinds: Mapping[str, str] | None = None,
        max_categories: int = 50,
        name: str | None = None,
    ) -> Schema:
        """Propose a schema for ``df``; review and edit it before use.

        Numeric columns get no bounds (declare them: DP fine-tuning needs public bounds);
        columns with two distinct values become binary; other text columns become categorical
        with the observed vocabulary (sorted), or are flagged by a warning at cohort
        construction when nearly every value is distinct.

        A text column whose values are mostly numbers (at least 90% of the non-missing values
        read as numbers, and at least one does not) is refused rather than silently made
        categorical: such text is usually a data-entry artefact (``"n/a"``, ``"<5"``). Clean
        the data, or declare the column's kind with ``kinds``.

        Parameters
        ----------
        df : DataFrame
            The data.
        target, id, group : str, optional
            Names of the target (0/1), id (one per person) and group (site) columns.
        ignore : sequence of str
            Columns to mark ``role="ignore"``.
        kinds : dict, optional
            ``{column: kind}`` for feature columns whose kind is declared rather than inferred
            (one of ``"numeric"``, ``"categorical"``, ``"binary"``, ``"ordinal"``). Categorical,
            binary and ordinal columns get the observed labels as vocabulary (ordinal levels in
            numeric, then alphabetical order); review them.
        max_categories : int, default=50
            Text columns with more distinct values keep an open vocabulary (``categories=None``).
        name : str, optional
            Schema name.

        Returns
        -------
        Schema

        Raises
        ------
        SchemaError
            A named column is absent, the target is not binary, a declared kind is unknown, or
            a text column is mostly numbers (the error names the column, the first offending
            rows and values).

        Examples
        --------
        >>> df = pd.DataFrame({"chol": ["233", "250", "n/a", *map(str, range(200, 217))]})
        >>> Schema.infer(df)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        graphxfer.exceptions.SchemaError: column 'chol' is mostly numbers, but 1 of its 20 ...
        >>> Schema.infer(df, kinds={"chol": "categorical"})["chol"].kind
        'categorical'
        """
        from graphxfer.schema_inference import infer_columns

        columns = infer_columns(
            df,
            target=target,
            id=id,
            group=group,
            ignore=ignore,
            kinds=kinds,
            max_categories=max_categories,
        )
        return cls(columns, name=name)
