"""Access to the data files bundled with the package, and small shared helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["as_categories", "data_file", "read_bundled_csv", "select"]

_PACKAGE = "graphxfer.datasets"


def data_file(cohort: str, filename: str) -> Traversable:
    """The bundled file ``data/<cohort>/<filename>`` as an importlib resource.

    Works from a source checkout, an installed wheel and a zipped package alike.
    """
    path = resources.files(_PACKAGE) / "data" / cohort / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"the bundled data file data/{cohort}/{filename} is missing from the graphxfer "
            "installation; reinstall the package (the data files ship as package data)"
        )
    return path


def read_bundled_csv(cohort: str, filename: str, **kwargs: Any) -> pd.DataFrame:
    """Read a bundled (optionally gzip-compressed) CSV file with :func:`pandas.read_csv`."""
    compression: Literal["gzip"] | None = "gzip" if filename.endswith(".gz") else None
    with data_file(cohort, filename).open("rb") as handle:
        frame = pd.read_csv(handle, compression=compression, **kwargs)
    assert isinstance(frame, pd.DataFrame)
    return frame


def select(
    requested: str | Iterable[str] | None,
    allowed: Sequence[str],
    param: str,
) -> list[str]:
    """Validate a user's choice of sites / subjects / modules against ``allowed``.

    ``None`` means all of them; a single string means that one. Order follows ``requested``,
    duplicates are removed.
    """
    if requested is None:
        return list(allowed)
    items = [requested] if isinstance(requested, str) else list(requested)
    if not items:
        raise ValueError(f"{param} is empty; choose one or more of {list(allowed)}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or item not in allowed:
            raise ValueError(f"{param} contains {item!r}, which is not one of {list(allowed)}")
        if item not in out:
            out.append(item)
    return out


def as_categories(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Store label columns as pandas categoricals (cheap to validate and to hold in memory)."""
    for name in columns:
        frame[name] = frame[name].astype("category")
    return frame
