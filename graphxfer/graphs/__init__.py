"""Graph encoders: record graphs from cohorts, GNN pretraining on the source, and target
records attached without breaking the privacy unit.

* **Graphs** — a similarity graph of the k nearest source records in the dense feature space
  (:func:`build_knn_graph`, :class:`KNNIndex`), or a relational graph through shared codes
  (:func:`build_code_graph`, :func:`project_code_graph`), checked by :func:`validate_graph`.
* **Encoders** — GraphSAGE, GAT and GIN networks (:class:`GraphSAGEEncoder`,
  :class:`GATEncoder`, :class:`GINEncoder`), registered in ``graphxfer.registry.GRAPH_NETWORKS``.
* **Pretraining** — :func:`pretrain_graph` (supervised, GraphMAE, Deep Graph Infomax) in
  vectorised neighbour-sampled mini-batches (:func:`sample_subgraph`).
* **Attaching** — :meth:`GraphEncoder.attach` gives one row per target record from its own
  features and frozen source data only; :class:`GraphAttachedClassifier` is fine-tuned on them.

See ``docs/graphs.md``.
"""

from __future__ import annotations

from graphxfer.graphs.attach import AttachLayout, GraphAttachedClassifier
from graphxfer.graphs.encoders import (
    GATEncoder,
    GINEncoder,
    GNNEncoder,
    GraphConvBlock,
    GraphSAGEEncoder,
    MeanField,
)
from graphxfer.graphs.features import DenseFeatures
from graphxfer.graphs.graph_encoder import GraphEncoder
from graphxfer.graphs.knn import (
    EXACT_MAX_PAIRS,
    KNNIndex,
    build_knn_graph,
    exact_knn,
    knn_recall,
    neighbors_to_edge_index,
)
from graphxfer.graphs.pretrain import OBJECTIVES, pretrain_graph
from graphxfer.graphs.relational import build_code_graph, project_code_graph
from graphxfer.graphs.sampling import (
    NeighborTable,
    iter_subgraphs,
    sample_neighbors,
    sample_subgraph,
)
from graphxfer.graphs.validate import check_edge_index, isolated_nodes, validate_graph

__all__ = [
    "EXACT_MAX_PAIRS",
    "OBJECTIVES",
    "AttachLayout",
    "DenseFeatures",
    "GATEncoder",
    "GINEncoder",
    "GNNEncoder",
    "GraphAttachedClassifier",
    "GraphConvBlock",
    "GraphEncoder",
    "GraphSAGEEncoder",
    "KNNIndex",
    "MeanField",
    "NeighborTable",
    "build_code_graph",
    "build_knn_graph",
    "check_edge_index",
    "exact_knn",
    "isolated_nodes",
    "iter_subgraphs",
    "knn_recall",
    "neighbors_to_edge_index",
    "pretrain_graph",
    "project_code_graph",
    "sample_neighbors",
    "sample_subgraph",
    "validate_graph",
]
