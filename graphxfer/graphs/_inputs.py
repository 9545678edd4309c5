"""What graph pretraining starts from: dense source features, the outcome, the source graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from graphxfer.exceptions import GraphError
from graphxfer.graphs._utils import as_float_tensor
from graphxfer.graphs.features import DenseFeatures
from graphxfer.graphs.knn import KNNIndex, neighbors_to_edge_index
from graphxfer.graphs.validate import validate_graph
from tabular.distributed import DistributedInfo, broadcast_object, broadcast_tensor

__all__ = ["build_graph", "check_y", "fanouts_per_layer", "source_inputs"]


def source_inputs(
    source: Any, featurizer: Any, max_categories: int
) -> tuple[torch.Tensor, np.ndarray | None, Any, DenseFeatures | None]:
    """``(dense x, y, featurizer, dense map)`` from a Cohort or a ``(features, y)`` pair."""
    if hasattr(source, "schema") and hasattr(source, "X"):  # a Cohort
        frame = source.X
        if featurizer is None:
            from tabular.featurizer import Featurizer

            featurizer = Featurizer().fit(frame, source.schema.features)
        batch = featurizer.transform(frame)
        fitted = DenseFeatures(max_categories=max_categories).fit(
            batch,
            numeric_names=featurizer.numeric_columns_,
            categorical_names=featurizer.categorical_columns_,
        )
        y = source.y if source.has_target else None
        x = as_float_tensor(fitted.transform(batch), name="source features")
        return x, y, featurizer, fitted
    if isinstance(source, tuple) and len(source) == 2:
        features, y = source
        dense: DenseFeatures | None = None
        if hasattr(features, "numeric") and hasattr(features, "categorical"):
            dense = DenseFeatures(max_categories=max_categories).fit(
                features,
                numeric_names=getattr(featurizer, "numeric_columns_", None),
                categorical_names=getattr(featurizer, "categorical_columns_", None),
            )
            features = dense.transform(features)
        elif featurizer is not None:
            raise GraphError("a featurizer only applies to a Cohort or a FeatureBatch source")
        x = as_float_tensor(features, name="source features")
        return x, None if y is None else np.asarray(y), featurizer, dense
    raise GraphError(
        "source must be a Cohort or a (features, y) pair (features: FeatureBatch or a 2-D float "
        f"array; y: 0/1 outcomes or None), got {type(source).__name__}"
    )


def check_y(y: np.ndarray | None, n: int, objective: str) -> torch.Tensor | None:
    """The 0/1 source outcome as a float tensor (None when absent and not needed)."""
    if y is None:
        if objective == "supervised":
            raise GraphError(
                "objective='supervised' needs the source outcome; pass a Cohort with a target, "
                "(features, y), or use objective='graphmae' or 'dgi'"
            )
        return None
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise GraphError(f"y has {len(y)} entries for {n} source records")
    try:
        values = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"y must hold 0/1 outcomes: {exc}") from exc
    if not np.isin(values, (0.0, 1.0)).all():
        raise GraphError("y must hold 0/1 outcomes only")
    if objective == "supervised" and len(np.unique(values)) < 2:
        raise GraphError(
            "the source outcome holds a single class; supervised pretraining needs both"
        )
    return torch.as_tensor(values, dtype=torch.float32)


def fanouts_per_layer(fanout: int | Sequence[int | None] | None, layers: int) -> list[int | None]:
    """One neighbour count per layer (None: all neighbours) from ``fanout``."""
    if fanout is None or isinstance(fanout, (int, np.integer)):
        fanouts: list[int | None] = [None if fanout is None else int(fanout)] * layers
    else:
        fanouts = [None if f is None else int(f) for f in fanout]
    if len(fanouts) != layers:
        raise GraphError(
            f"fanout has {len(fanouts)} entries for {layers} layers; give one per layer"
        )
    if any(f is not None and f < 1 for f in fanouts):
        raise GraphError(
            f"fanouts must be positive integers or None (all neighbours), got {fanouts}"
        )
    return fanouts


def _graph_edges(graph: Any) -> torch.Tensor:
    """The ``edge_index`` of a ``Data`` graph, or ``graph`` itself as a tensor."""
    edge_index = getattr(graph, "edge_index", graph)
    try:
        return torch.as_tensor(edge_index)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise GraphError(f"graph must be a PyG Data or an edge_index tensor: {exc}") from exc


def build_graph(
    x: torch.Tensor,
    graph: Any,
    k: int,
    knn_method: str,
    seed: int,
    isolated: str,
    info: DistributedInfo,
) -> tuple[KNNIndex, torch.Tensor]:
    """The attachment index and the validated source graph.

    Under DDP only rank 0 searches neighbours (NN-descent is randomised and costly); the
    other processes receive its graph, so every process trains on the same edges, and index
    the source for exact search (fitting that index stores the points, nothing more).
    """
    from torch_geometric.data import Data

    n = x.shape[0]
    edge_index: torch.Tensor | None = None
    error: str | None = None
    if info.is_main:
        try:
            index = KNNIndex(k, method=knn_method, random_state=seed).fit(x)
            if graph is None:
                edge_index = neighbors_to_edge_index(index.neighbors())
        except GraphError as exc:
            error = str(exc)
    else:
        index = KNNIndex(k, method="exact", random_state=seed)
    if info.active:
        error = broadcast_object(error)
    if error is not None:
        raise GraphError(error)
    if not info.is_main:
        index.fit(x)
    if graph is None:
        if info.active:
            edge_index = broadcast_tensor(edge_index)
        policy = "error"
    else:
        edge_index = _graph_edges(graph)
        policy = isolated
    checked = validate_graph(Data(x=x, edge_index=edge_index, num_nodes=n), isolated=policy)
    return index, checked.edge_index
