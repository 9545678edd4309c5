"""Bad graphs: NaN features, empty graphs, out-of-range edges, isolated nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data, HeteroData

from graphxfer.exceptions import GraphError
from graphxfer.graphs import pretrain_graph, validate_graph


def _graph(**kwargs) -> Data:
    base = {"x": torch.zeros(4, 2), "edge_index": torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])}
    base.update(kwargs)
    return Data(**base)


def test_a_well_formed_graph_passes_unchanged() -> None:
    g = _graph()
    assert validate_graph(g) is g


def test_nan_features_are_an_error_naming_the_nodes() -> None:
    x = torch.zeros(4, 2)
    x[2, 1] = float("nan")
    with pytest.raises(GraphError, match=r"NaN or inf for 1 nodes \(first \[2\]\)"):
        validate_graph(_graph(x=x))


def test_an_empty_graph_is_an_error() -> None:
    with pytest.raises(GraphError, match="empty"):
        validate_graph(Data(x=torch.zeros(0, 2), edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(GraphError, match="no edges at all"):
        validate_graph(_graph(edge_index=torch.zeros(2, 0, dtype=torch.long)))


@pytest.mark.parametrize(
    ("edge_index", "message"),
    [
        (torch.tensor([[0, 4], [1, 2]]), "outside"),
        (torch.tensor([[0, -1], [1, 2]]), "outside"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), "integer"),
        (torch.tensor([0, 1, 2]), "shape"),
    ],
)
def test_malformed_edges_are_an_error(edge_index: torch.Tensor, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        validate_graph(_graph(edge_index=edge_index))


def test_isolated_nodes_error_self_loops_or_allow() -> None:
    g = _graph(edge_index=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(GraphError, match=r"isolated nodes: 2 of 4 nodes .*\[0, 3\]"):
        validate_graph(g)
    fixed = validate_graph(g, isolated="self_loops")
    assert fixed.edge_index.tolist() == [[0, 1, 0, 3], [1, 2, 0, 3]]
    assert g.edge_index.shape == (2, 2)  # the input is not modified
    assert validate_graph(g, isolated="allow") is g
    with pytest.raises(GraphError, match="isolated="):
        validate_graph(g, isolated="drop")


def test_heterogeneous_graphs_are_checked() -> None:
    g = HeteroData()
    g["record"].num_nodes = 3
    g["code"].num_nodes = 2
    g["record", "has", "code"].edge_index = torch.tensor([[0, 1], [0, 5]])
    with pytest.raises(GraphError, match="outside"):
        validate_graph(g)
    empty = HeteroData()
    with pytest.raises(GraphError, match="empty"):
        validate_graph(empty)


def test_not_a_graph() -> None:
    with pytest.raises(GraphError, match="Data"):
        validate_graph({"edge_index": [[0], [1]]})


def test_pretraining_rejects_bad_inputs(arrays) -> None:
    x, y = arrays
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(GraphError, match="NaN"):
        pretrain_graph((bad, y), epochs=1, progress=False)
    with pytest.raises(GraphError, match="refers to nodes outside"):
        pretrain_graph((x, y), graph=torch.tensor([[0, 999], [1, 2]]), epochs=1, progress=False)
    sparse = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(GraphError, match="isolated"):
        pretrain_graph((x, y), graph=sparse, epochs=1, progress=False)
    enc = pretrain_graph(
        (x, y), graph=sparse, isolated="self_loops", hidden=8, epochs=1, progress=False
    )
    assert enc.edge_index.shape[1] == 2 + len(x) - 2
    with pytest.raises(GraphError, match="supervised"):
        pretrain_graph((x, None), epochs=1, progress=False)
    with pytest.raises(GraphError, match="single class"):
        pretrain_graph((x, np.zeros(len(x))), epochs=1, progress=False)
    with pytest.raises(GraphError, match="0/1"):
        pretrain_graph((x, np.full(len(x), 2)), epochs=1, progress=False)
    with pytest.raises(GraphError, match="not a graph encoder"):
        pretrain_graph((x, y), encoder="mlp-nope", epochs=1, progress=False)
    with pytest.raises(GraphError, match="objective"):
        pretrain_graph((x, y), objective="contrastive", epochs=1, progress=False)
    with pytest.raises(GraphError, match="fanout"):
        pretrain_graph((x, y), fanout=(5,), epochs=1, progress=False)
    with pytest.raises(GraphError, match="source must be"):
        pretrain_graph(x, epochs=1, progress=False)
    with pytest.raises(GraphError, match="multiple of heads"):
        pretrain_graph((x, y), encoder="gat", hidden=10, heads=4, epochs=1, progress=False)
