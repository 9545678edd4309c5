"""Pretrained encoders as users meet them: :func:`pretrain`, :class:`Encoder`, :func:`load_encoder`.

An :class:`Encoder` wraps a tabular encoder (``tabular.TabularEncoder``) or a graph encoder
(``graphxfer.graphs.GraphEncoder``) together with the source schema and a summary of the source
cohort that holds no records: row counts, outcome rate, sites, and per-column marginal
distributions (quantiles and category frequencies), from which SHAP backgrounds are drawn.

``TABULAR_ENCODERS`` and ``GRAPH_ENCODERS`` are the names of the registered tabular and graph
encoders (sorted tuples), read from the registries of :mod:`graphxfer.registry` at each use,
so that they include encoders registered since the import.

The parts: the :class:`Encoder` class and its files (``_encoder``), :func:`pretrain`
(``_pretrain``) and the source summary (``_summary``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphxfer.encoder._encoder import Encoder, load_encoder
from graphxfer.encoder._encoder import copy_encoder as copy_encoder
from graphxfer.encoder._pretrain import pretrain
from graphxfer.encoder._summary import background_from_summary as background_from_summary
from graphxfer.encoder._summary import source_summary as source_summary
from graphxfer.registry import graph_encoder_names, tabular_encoder_names

if TYPE_CHECKING:
    TABULAR_ENCODERS: tuple[str, ...]
    GRAPH_ENCODERS: tuple[str, ...]

__all__ = ["GRAPH_ENCODERS", "TABULAR_ENCODERS", "Encoder", "load_encoder", "pretrain"]


def __getattr__(name: str) -> Any:
    if name == "TABULAR_ENCODERS":
        return tabular_encoder_names()
    if name == "GRAPH_ENCODERS":
        return graph_encoder_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
