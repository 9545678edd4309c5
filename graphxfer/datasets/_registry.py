"""The cohorts that load by name: one registry of loaders, from which every list of names derives
(:data:`graphxfer.datasets.DATASETS`, ``graphxfer --dataset``, ``graphxfer cohorts``, the demo).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from graphxfer.cohort import Cohort
from tabular.registry import Registry

__all__ = ["LOADERS", "DatasetLoader", "dataset_loader", "dataset_names", "register_dataset"]

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class DatasetLoader:
    """A cohort that loads by name.

    Parameters
    ----------
    name : str
        Registry name in lower case, digits and ``_`` (``"heart_disease"``); the command line
        writes it with ``-`` for ``_`` (``--dataset heart-disease``).
    load : callable
        Called without arguments; returns the :class:`~graphxfer.Cohort`.
    title : str
        What the cohort is, for people (``"Heart disease (UCI)"``).
    sites : str
        What its sites are (``"4 hospitals"``).
    bundled : bool, default=False
        Whether the data ship with graphxfer together with their source and licence
        (:func:`~graphxfer.datasets.source_info`); False for generated or user data.
    """

    name: str
    load: Callable[[], Cohort]
    title: str
    sites: str
    bundled: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"dataset name {self.name!r}: use lower-case letters, digits and '_', "
                "starting with a letter"
            )
        if not callable(self.load):
            raise ValueError(f"dataset {self.name!r}: load must be callable")

    @property
    def cli_name(self) -> str:
        """The name on the command line (``heart-disease``)."""
        return self.name.replace("_", "-")


LOADERS: Registry[DatasetLoader] = Registry("dataset")
"""Dataset loaders by name: the bundled cohorts and the synthetic one."""


def register_dataset(loader: DatasetLoader) -> DatasetLoader:
    """Register ``loader`` under its name (a name registered before is an error)."""
    return LOADERS.register(loader.name)(loader)


def dataset_loader(name: str) -> DatasetLoader:
    """The loader registered as ``name``, written with ``_`` or, as on the command line, ``-``.

    Raises
    ------
    ValueError
        No loader of that name.
    """
    key = name.replace("-", "_") if isinstance(name, str) else name
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets are {list(LOADERS)}")
    return LOADERS.get(key)


def dataset_names(*, bundled: bool | None = None, cli: bool = False) -> tuple[str, ...]:
    """Registered dataset names, sorted.

    Parameters
    ----------
    bundled : bool, optional
        Only the bundled cohorts (True) or only the others (False); all when None.
    cli : bool, default=False
        Names as the command line writes them (``-`` for ``_``).
    """
    loaders = [LOADERS.get(name) for name in LOADERS]
    return tuple(
        loader.cli_name if cli else loader.name
        for loader in loaders
        if bundled is None or loader.bundled == bundled
    )
