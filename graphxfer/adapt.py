"""How a target institution's records become the records a fitted transfer model reads.

A :class:`TargetAdapter` is fitted once, in :meth:`TransferClassifier.fit
<graphxfer.TransferClassifier.fit>`, from the encoder's source schema and the user's options
(``mapping``, ``recode``, ``convert``, privacy or not). It owns the whole translation:

- :meth:`~TargetAdapter.to_cohort`: the user's records (a Cohort, a DataFrame or an array) as a
  cohort in the encoder's terms, with the privacy refusals for columns the source schema does
  not declare;
- :meth:`~TargetAdapter.fit`: the alignment of the training cohort and the columns the model
  reads (the policy for target-only columns);
- :meth:`~TargetAdapter.to_model`: any records in *model space*, the model's own feature
  columns in source names and units, as a :class:`ModelFrame`.

Records cross into model space exactly once: a :class:`ModelFrame` passed to
:meth:`~TargetAdapter.to_model` again comes back as it is (the identity), never mapped, recoded
or converted a second time, and the user's path (:meth:`~TargetAdapter.to_cohort`) refuses it.

The adapter travels with the model file (:meth:`~TargetAdapter.to_dict`, JSON-ready): the
source schema, the user's options and the fitted feature columns, all of which the released
state holds already.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from graphxfer.align import check_translation_types
from graphxfer.cohort import AlignmentReport, Cohort
from graphxfer.exceptions import AbsentColumnWarning, GraphxferError
from graphxfer.release import withheld_data_warnings
from graphxfer.schema import Column, Schema, canonical_label

__all__ = ["ModelFrame", "TargetAdapter"]

_FORMAT = "graphxfer.target-adapter"
_VERSION = 1


class ModelFrame(pd.DataFrame):
    """Records in a fitted model's own feature columns (what :meth:`TargetAdapter.to_model`
    returns).

    A DataFrame whose type says that it is in model space: selections, copies and slices keep
    the type, so it is never translated again. ``adapter_key`` names the translation that
    produced it (``None`` once lost, e.g. by ``pd.concat``).
    """

    _metadata: ClassVar[list[str]] = ["adapter_key"]
    adapter_key: str | None = None

    @property
    def _constructor(self) -> type[ModelFrame]:
        return ModelFrame


class TargetAdapter:
    """The translation of target records into a model's feature columns.

    Parameters
    ----------
    source : Schema
        The encoder's source schema.
    mapping, recode, convert : dict, optional
        As in :meth:`Cohort.align <graphxfer.Cohort.align>`.
    private : bool, default=False
        Whether the fit is differentially private: nothing about a column may then be inferred
        from the training records.

    Attributes
    ----------
    feature_schema : Schema or None
        The columns the fitted model reads (source names and order, then the target-only
        columns it uses); ``None`` before :meth:`fit`.
    ignored_columns : list of str
        Target-only columns the encoder cannot read.
    scaled_from_training : list of str
        Target-only numeric columns without declared bounds (a fit without privacy): their
        training range sets their scaling only, so that a later record outside it is still
        read (the featurizer clips it) rather than refused.
    observed_columns : list of str or None
        The model's columns that the training cohort's schema has (the others were absent at
        fit, all missing). Records to predict that lack one of these get an
        :class:`~graphxfer.exceptions.AbsentColumnWarning`. ``None`` for adapters saved
        before it was recorded.
    """

    def __init__(
        self,
        source: Schema,
        *,
        mapping: Mapping[str, str] | None = None,
        recode: Mapping[str, Mapping[Any, Any]] | None = None,
        convert: Mapping[str, Any] | None = None,
        private: bool = False,
    ) -> None:
        check_translation_types(mapping, recode, convert)
        self.source = source
        self.mapping = dict(mapping) if mapping else None
        self.recode = {k: dict(v) for k, v in recode.items()} if recode else None
        self.convert = dict(convert) if convert else None
        self.private = bool(private)
        self.feature_schema: Schema | None = None
        self.ignored_columns: list[str] = []
        self.scaled_from_training: list[str] = []
        self.observed_columns: list[str] | None = None
        self._key: str | None = None

    # ------------------------------------------------------------------ user records
    @property
    def translates(self) -> bool:
        """Whether a mapping, recoding or conversion applies."""
        return bool(self.mapping or self.recode or self.convert)

    def to_cohort(
        self, X: Any, y: Any = None, *, need_target: bool, training: bool = False
    ) -> Cohort:
        """The user's records as a cohort in the encoder's terms (not yet aligned).

        Parameters
        ----------
        X : Cohort, DataFrame or array
            A DataFrame's columns named like source features are read as the source declares
            them, other columns are inferred (refused in a private fit); an array holds the
            source features in order.
        y : array-like, optional
            Outcomes, when ``X`` is not a Cohort.
        need_target : bool
            Whether the outcome is needed (fit, metrics, audits); without it, a cohort's
            target column is dropped and unknown categories map to ``"<unknown>"``.
        training : bool, default=False
            With ``need_target``, ``X`` holds the training records of a fit: under privacy,
            nothing about a column may then be inferred from them.

        Returns
        -------
        Cohort

        Raises
        ------
        GraphxferError
            A :class:`ModelFrame` when this adapter translates (it would be translated twice),
            missing outcomes, mismatched shapes, or (private fit) undeclared columns.
        """
        private_training = need_target and training and self.private
        if isinstance(X, Cohort):
            if y is not None:
                raise GraphxferError("pass y only with a DataFrame or array, not with a Cohort")
            if need_target and not X.has_target:
                raise GraphxferError("the cohort has no target column (role='target')")
            if not need_target and X.schema.target is not None:
                # predictions need no outcome: drop it (a single-class subset is fine here)
                name = X.schema.target.name
                return Cohort._from_valid(X.data.drop(columns=[name]), X.schema.drop(name), X)
            return X
        if isinstance(X, ModelFrame) and self.translates:
            raise GraphxferError(
                "these records are in model space already (see transform_features): pass "
                "them as they were before translation, so that they are translated only once"
            )
        source = self.source
        target_name = source.target.name if source.target is not None else "__target__"
        frame = X.copy() if isinstance(X, pd.DataFrame) else self._array_frame(X)
        columns: list[Column] = []
        for name in frame.columns:
            name = str(name)
            if name in source and source[name].role == "feature":
                columns.append(Column.from_dict(source[name].to_dict()))
            elif name == target_name and y is None:
                continue
            elif private_training:
                raise GraphxferError(
                    f"column {name!r} is not a feature of the encoder's source schema. Under "
                    "differential privacy its kind, bounds and categories cannot be inferred "
                    "from the target records: pass a Cohort whose schema declares the column "
                    "(public knowledge), or drop it"
                )
            else:
                inferred = Schema.infer(frame[[name]]).columns[0]
                columns.append(inferred)
        if y is not None:
            y_arr = np.asarray(y).ravel()
            if len(y_arr) != len(frame):
                raise GraphxferError(f"X has {len(frame)} rows but y has {len(y_arr)}")
            frame[target_name] = y_arr
            columns.append(Column(target_name, "binary", "target"))
        elif target_name in frame.columns and need_target:
            columns.append(Column.from_dict(source[target_name].to_dict()))
        elif need_target:
            raise GraphxferError("fit needs the outcome: pass y, or a Cohort with a target")
        unknown: Literal["error", "map"] = "error" if need_target else "map"
        with withheld_data_warnings(private_training):
            return Cohort(frame, Schema(columns), unknown=unknown, all_missing="keep")

    def _array_frame(self, X: Any) -> pd.DataFrame:
        from scipy import sparse

        if sparse.issparse(X):  # np.asarray would make a 0-d object array of it
            raise GraphxferError(
                "sparse input is not supported: pass a dense array or a DataFrame "
                "(e.g. X.toarray())"
            )
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise GraphxferError(f"X must be 2-D, got an array of shape {arr.shape}")
        names = self.source.feature_names
        if arr.shape[1] != len(names):
            raise GraphxferError(
                f"X has {arr.shape[1]} columns but the encoder's source has {len(names)} "
                f"features ({names}); pass a DataFrame with named columns"
            )
        return pd.DataFrame(arr, columns=names)

    # ------------------------------------------------------------------ fit
    def fit(self, cohort: Cohort, *, keep_extra: bool = True) -> tuple[Cohort, AlignmentReport]:
        """Align the training cohort and decide the columns the model reads.

        Parameters
        ----------
        cohort : Cohort
            The training records (:meth:`to_cohort` with ``need_target=True``).
        keep_extra : bool, default=True
            Whether the encoder can read target-only columns (it gets new parameters for
            them); otherwise they are listed in ``ignored_columns``.

        Returns
        -------
        aligned : Cohort
        report : AlignmentReport
            Its counts are computed from the records: kept by the estimator, never here.

        Raises
        ------
        GraphxferError
            Under privacy, a target-only column without declared bounds or categories.
        """
        with withheld_data_warnings(self.private):
            aligned, report = cohort.align(
                self.source, self.mapping, recode=self.recode, convert=self.convert
            )
        cols: list[Column] = []
        ignored: list[str] = []
        self.scaled_from_training = []
        for col in aligned.schema.features:
            if col.name not in report.extra:
                cols.append(col)
            elif not keep_extra:
                ignored.append(col.name)
            else:
                cols.append(self._declared(col, aligned))
        self.feature_schema = Schema([Column.from_dict(c.to_dict()) for c in cols])
        self.ignored_columns = ignored
        # which columns the training schema declares (not how many values they hold)
        self.observed_columns = [c.name for c in cols if c.name not in report.missing]
        self._key = None
        return aligned, report

    def _declared(self, col: Column, aligned: Cohort) -> Column:
        """A target-only column with its bounds or vocabulary: declared, or (without privacy)
        taken from the training records."""
        if col.kind == "numeric" and (col.lower is None or col.upper is None):
            if self.private:
                raise GraphxferError(
                    f"target-only column {col.name!r} has no declared bounds. Under "
                    "differential privacy its scaling cannot come from target data: declare "
                    "lower/upper in the schema (public knowledge), or drop the column"
                )
            values = aligned.data[col.name].astype(float)
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            col = Column.from_dict({**col.to_dict(), "lower": lo, "upper": max(hi, lo + 1)})
            self.scaled_from_training.append(col.name)
        if col.kind == "categorical" and col.categories is None:
            if self.private:
                raise GraphxferError(
                    f"target-only column {col.name!r} has no declared categories. Under "
                    "differential privacy its vocabulary cannot come from target data: list "
                    "the categories in the schema, or drop the column"
                )
            cats = sorted(str(v) for v in aligned.data[col.name].dropna().unique())
            col = Column.from_dict({**col.to_dict(), "categories": cats})
        return col

    # ------------------------------------------------------------------ model space
    @property
    def feature_names(self) -> list[str]:
        """The model's feature columns, in order."""
        return self._fitted().feature_names

    @property
    def columns(self) -> list[Column]:
        """The model's feature columns (copies of the feature schema's)."""
        return [Column.from_dict(c.to_dict()) for c in self._fitted().features]

    @property
    def key(self) -> str:
        """A fingerprint of the translation (the digest of :meth:`to_dict`)."""
        if self._key is None:
            text = json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)
            self._key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        return self._key

    def _fitted(self) -> Schema:
        if self.feature_schema is None:
            raise GraphxferError("this TargetAdapter is not fitted yet; call fit(cohort) first")
        return self.feature_schema

    def model_frame(self, frame: pd.DataFrame) -> ModelFrame:
        """Records already in model space, read as the feature schema declares (values
        checked, unknown categories mapped to ``"<unknown>"``); nothing is translated."""
        cohort = Cohort(frame, self._readable(), unknown="map", all_missing="keep")
        return self.marked(cohort.X)

    def _readable(self) -> Schema:
        """The feature schema as records are checked against it: bounds taken from the
        training range (:attr:`scaled_from_training`) scale a column, they do not limit it."""
        schema = self._fitted()
        if not self.scaled_from_training:
            return schema
        cols = []
        for col in schema.columns:
            data = col.to_dict()
            if col.name in self.scaled_from_training:
                data.update(lower=None, upper=None)
            cols.append(Column.from_dict(data))
        return Schema(cols)

    def to_model(self, X: Any) -> ModelFrame:
        """Any records in model space, translated once.

        Parameters
        ----------
        X : Cohort, DataFrame, array or ModelFrame
            A Cohort, a DataFrame (target or source column names) or an array in the source
            feature order: the mapping, recoding and conversions are applied. A
            :class:`ModelFrame` is in model space already: it is returned as it is (in the
            model's column order), and refused when another translation produced it.

        Returns
        -------
        ModelFrame
            The model's feature columns (:attr:`feature_names`), as the network reads them.
        """
        names = self.feature_names
        if isinstance(X, ModelFrame):
            if X.adapter_key is not None and X.adapter_key != self.key:
                raise GraphxferError(
                    "these records were translated by another model's mapping, recoding or "
                    "conversions; pass the records as they were before translation"
                )
            if set(X.columns) != set(names):
                raise GraphxferError(
                    f"these records are in model space but their columns {list(X.columns)} "
                    f"are not the model's {names}"
                )
            return self.marked(X[names])
        if isinstance(X, pd.DataFrame) and list(X.columns) == names and not self.translates:
            return self.model_frame(X)  # source columns with nothing to translate
        cohort = self.to_cohort(X, None, need_target=False)
        aligned, report = cohort.align(
            self.source, self.mapping, recode=self.recode, convert=self.convert, unknown="map"
        )
        self._warn_absent(report.missing)
        data = aligned.data
        for name in names:
            if name not in data.columns:
                data[name] = np.nan
        return self.marked(data[names])

    def _warn_absent(self, missing: list[str]) -> None:
        """Warn when records lack columns the training records had (read as missing)."""
        absent = [c for c in missing if c in (self.observed_columns or ())]
        if not absent:
            return
        # (a column the fit's mapping renames is refused by the alignment when absent)
        named = ", ".join(map(repr, absent[:10])) + (" ..." if len(absent) > 10 else "")
        warnings.warn(
            f"{len(absent)} column(s) the model was fitted with are absent from these "
            f"records: {named}; every record is predicted as if they were missing. Name the "
            "columns as at fit, or add them",
            AbsentColumnWarning,
            stacklevel=4,
        )

    def marked(self, frame: pd.DataFrame) -> ModelFrame:
        """A copy of ``frame``, whose columns are already the model's, marked as this
        adapter's model space (nothing is checked or translated); :meth:`to_model` passes it
        through."""
        out = ModelFrame(frame, copy=True)
        out.adapter_key = self.key
        return out

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        """The adapter as JSON-ready data: the source schema, the user's options, whether the
        fit was private and the fitted columns (none of it computed from private records)."""
        schema = self.feature_schema
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "source": self.source.to_dict(),
            "mapping": None if self.mapping is None else dict(self.mapping),
            "recode": _plain_recode(self.recode),
            "convert": _plain_convert(self.convert),
            "private": self.private,
            "feature_schema": None if schema is None else schema.to_dict(),
            "ignored_columns": list(self.ignored_columns),
            "scaled_from_training": list(self.scaled_from_training),
            "observed_columns": (
                None if self.observed_columns is None else list(self.observed_columns)
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetAdapter:
        """An adapter from :meth:`to_dict`'s output."""
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise GraphxferError(
                f"not a target adapter of version {_VERSION} (format={data.get('format')!r}, "
                f"version={data.get('version')!r})"
            )
        adapter = cls(
            Schema.from_dict(data["source"]),
            mapping=data["mapping"],
            recode=data["recode"],
            convert=data["convert"],
            private=data["private"],
        )
        if data["feature_schema"] is not None:
            adapter.feature_schema = Schema.from_dict(data["feature_schema"])
        adapter.ignored_columns = list(data["ignored_columns"])
        adapter.scaled_from_training = list(data.get("scaled_from_training", []))
        observed = data.get("observed_columns")  # absent from earlier files
        adapter.observed_columns = None if observed is None else list(observed)
        adapter._key = None
        return adapter


def _label(value: Any) -> Any:
    """A code as the alignment reads it (:func:`canonical_label`), with None for missing."""
    out = canonical_label(value)
    return None if isinstance(out, float) else out


def _plain_recode(recode: Mapping[str, Mapping[Any, Any]] | None) -> dict[str, Any] | None:
    """``recode`` with every code in its canonical form: the alignment compares codes in that
    form, so the translation is unchanged (a code that reads as missing never matches)."""
    if recode is None:
        return None
    return {
        str(column): {_label(k): _label(v) for k, v in codes.items() if _label(k) is not None}
        for column, codes in recode.items()
    }


def _plain_convert(convert: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if convert is None:
        return None
    out: dict[str, Any] = {}
    for column, spec in convert.items():
        if isinstance(spec, numbers.Real):
            out[str(column)] = float(spec)
        else:
            out[str(column)] = [float(v) for v in spec]
    return out
