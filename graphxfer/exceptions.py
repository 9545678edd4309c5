"""Exceptions and warnings raised by graphxfer.

Every error about user data names the column (and where useful the first offending rows)
and says how to fix it. All of them derive from :class:`GraphxferError`, which is also a
:class:`ValueError` so that generic ``except ValueError`` handlers keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AbsentColumnWarning",
    "AlignmentError",
    "AllMissingColumnError",
    "CohortError",
    "DuplicateIdError",
    "EmptyCohortError",
    "GraphError",
    "GraphxferError",
    "GraphxferWarning",
    "IdentifierLikeColumnWarning",
    "InfiniteValueError",
    "MissingColumnError",
    "ModelFileError",
    "ModelFileExistsError",
    "ModelFileSignatureError",
    "ModelFileTamperedError",
    "ModelFileTooLargeError",
    "NegativeTransferWarning",
    "NonNumericValueError",
    "NotFittedError",
    "OutOfBoundsError",
    "SchemaError",
    "SingleClassError",
    "TypeMismatchError",
    "UnknownCategoryError",
    "UnknownCategoryWarning",
    "first_rows",
]


def first_rows(index: Sequence[Any], limit: int = 5) -> str:
    """Format the first few row labels of ``index`` for an error message."""
    shown = [repr(i) if isinstance(i, str) else str(i) for i in list(index)[:limit]]
    more = len(index) - len(shown)
    text = ", ".join(shown)
    return f"{text} (and {more} more)" if more > 0 else text


class GraphxferError(ValueError):
    """Base class of every error graphxfer raises about user input."""


class SchemaError(GraphxferError):
    """A schema is inconsistent (unknown role or type, bad bounds, duplicate columns...)."""


class CohortError(GraphxferError):
    """The data of a cohort does not satisfy its schema."""


class MissingColumnError(CohortError):
    """A column that the schema requires is absent from the data."""


class EmptyCohortError(CohortError):
    """The data frame has no rows."""


class SingleClassError(CohortError):
    """The target column holds a single class, so no classifier can be fitted."""


class NonNumericValueError(CohortError):
    """A numeric column holds values that are not numbers."""


class InfiniteValueError(CohortError):
    """A numeric column holds +inf or -inf."""


class OutOfBoundsError(CohortError):
    """A numeric column holds values outside the bounds declared in the schema."""


class UnknownCategoryError(CohortError):
    """A categorical, binary or ordinal column holds a value outside its vocabulary."""


class DuplicateIdError(CohortError):
    """The id column repeats where one row per person is required."""


class AllMissingColumnError(CohortError):
    """A feature column holds no observed value at all."""


class TypeMismatchError(GraphxferError):
    """A target column's type does not match the source column it is aligned to."""


class AlignmentError(GraphxferError):
    """A mapping, recoding or unit conversion passed to ``Cohort.align`` is invalid."""


class GraphError(GraphxferError):
    """A record graph is malformed (NaN features, no edges, out-of-range indices...)."""


class ModelFileError(GraphxferError):
    """A model file is missing, tampered with, of an unknown format or otherwise unsafe."""


class ModelFileTamperedError(ModelFileError):
    """A model file's bytes differ from the ones graphxfer wrote (an edit or corruption).

    Raised when ``meta.json`` is not byte for byte as written, or when it or any other file
    of the model does not match the sha256 recorded in its integrity record.
    """


class ModelFileSignatureError(ModelFileError):
    """A key was given but the model file is unsigned, or signed with another key."""


class ModelFileTooLargeError(ModelFileError):
    """A file of a model file exceeds the size limits; refused before it is read."""


class ModelFileExistsError(ModelFileError):
    """``save`` would replace something that is not a graphxfer model file."""


class NotFittedError(GraphxferError, AttributeError):
    """An estimator was used before ``fit``."""


class GraphxferWarning(UserWarning):
    """Base class of graphxfer's warnings."""


class AbsentColumnWarning(GraphxferWarning):
    """Records to predict lack columns the model was fitted with; they are read as missing."""


class IdentifierLikeColumnWarning(GraphxferWarning):
    """A feature column has a distinct value in (almost) every row: probably an identifier."""


class UnknownCategoryWarning(GraphxferWarning):
    """Unknown categories were mapped to the "unknown" level (``unknown="map"``)."""


class NegativeTransferWarning(GraphxferWarning):
    """The transferred model did not beat the target-only baseline."""
