"""Per-record training data: checks, person grouping and a batched tensor dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from privacy.exceptions import InputDataError

__all__ = ["PersonGroups", "RowData", "prepare_rows"]


@dataclass(frozen=True)
class PersonGroups:
    """Rows grouped by person.

    Attributes
    ----------
    codes : numpy.ndarray of shape (n_rows,)
        Person number (0 .. n_persons-1) of every row.
    order : numpy.ndarray of shape (n_rows,)
        Row indices sorted by person.
    starts, counts : numpy.ndarray of shape (n_persons,)
        Person ``p`` owns rows ``order[starts[p] : starts[p] + counts[p]]``.
    """

    codes: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @property
    def n_persons(self) -> int:
        return len(self.counts)

    def rows_of(self, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``persons`` and, for each row, the position of its person in ``persons``."""
        counts = self.counts[persons]
        if len(persons) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        local = np.repeat(np.arange(len(persons)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = self.order[np.repeat(self.starts[persons], counts) + offsets]
        return rows, local


@dataclass(frozen=True)
class RowData:
    """Validated training tensors (kept on the CPU) and, optionally, person groups."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor
    groups: PersonGroups | None

    @property
    def n_rows(self) -> int:
        return int(self.target.shape[0])

    @property
    def n_persons(self) -> int:
        return self.n_rows if self.groups is None else self.groups.n_persons


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InputDataError(
        f"{name} must be a torch.Tensor (or numpy array), got {type(value).__name__}; "
        "convert it with torch.as_tensor(...)."
    )


def prepare_rows(
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    person_index: np.ndarray | Sequence[Any] | None = None,
    *,
    person_level: bool = False,
) -> RowData:
    """Check per-record tensors and group rows by person.

    Parameters
    ----------
    inputs : Tensor or sequence of Tensor
        Model inputs; the model is called as ``model(*inputs)``. Each has the row dimension
        first.
    y : Tensor of shape (n_rows,) or (n_rows, k)
        Targets.
    person_index : array-like of shape (n_rows,) or None
        Person identifier of every row. ``None`` (or all distinct) means one row per person.
    person_level : bool, default=False
        Group rows by ``person_index`` even when every person has one row. Whether anyone
        has several rows is a fact about the private data; deciding the mechanism (and the
        ledger's ``unit``) from it releases that bit. Callers who know from public facts
        (a declared id column) that rows are grouped by person pass ``True``.

    Returns
    -------
    RowData
    """
    tensors = (inputs,) if isinstance(inputs, torch.Tensor | np.ndarray) else tuple(inputs)
    if not tensors:
        raise InputDataError("inputs is empty; pass at least one tensor of model inputs.")
    xs = tuple(_as_tensor(f"inputs[{i}]", t) for i, t in enumerate(tensors))
    target = _as_tensor("y", y)
    n = int(target.shape[0]) if target.ndim else 0
    if n == 0:
        raise InputDataError("y is empty (or a scalar); pass one target per row.")
    for i, t in enumerate(xs):
        if t.ndim == 0 or t.shape[0] != n:
            raise InputDataError(
                f"inputs[{i}] has {t.shape[0] if t.ndim else 0} rows but y has {n}; every "
                "input tensor must have one row per target, row dimension first."
            )
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = torch.nonzero(~torch.isfinite(t.reshape(n, -1)).all(dim=1)).flatten()[:5]
            raise InputDataError(
                f"inputs[{i}] holds NaN or infinite values (rows {bad.tolist()}...); impute "
                "them with values that do not depend on the private data (e.g. source "
                "statistics) before training."
            )
    if target.is_floating_point() and not bool(torch.isfinite(target).all()):
        raise InputDataError("y holds NaN or infinite values; drop or fix those rows first.")
    groups = None
    if person_level and person_index is None:
        raise InputDataError("person_level=True needs person_index (the person of every row).")
    if person_index is not None:
        ids = np.asarray(person_index)
        if ids.ndim != 1 or len(ids) != n:
            raise InputDataError(
                f"person_index must be one-dimensional with one entry per row ({n}), got "
                f"shape {ids.shape}."
            )
        if ids.dtype.kind == "f" and np.isnan(ids).any():
            raise InputDataError(
                "person_index holds NaN; every row needs the id of the person it belongs to."
            )
        _, codes = np.unique(ids, return_inverse=True)
        codes = codes.astype(np.int64).reshape(-1)
        counts = np.bincount(codes)
        if counts.max() > 1 or person_level:
            order = np.argsort(codes, kind="stable")
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            groups = PersonGroups(codes=codes, order=order, starts=starts, counts=counts)
    return RowData(inputs=xs, target=target, groups=groups)


class RowDataset(Dataset):
    """Tensors indexed by row, fetched a whole batch at a time (``__getitems__``)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def collate_rows(batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Collate function for :class:`RowDataset` (the batch is already stacked)."""
    return list(batch)
