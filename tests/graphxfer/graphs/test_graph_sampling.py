"""Neighbour sampling: vectorised mini-batches that reproduce full-graph embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphxfer.exceptions import GraphError
from graphxfer.graphs import (
    GNNEncoder,
    NeighborTable,
    build_knn_graph,
    iter_subgraphs,
    project_code_graph,
    sample_neighbors,
    sample_subgraph,
)
from graphxfer.graphs._utils import init_parameters
from graphxfer.registry import GRAPH_NETWORKS

KINDS = ("graphsage", "gat", "gin")


def _network(kind: str, in_channels: int, layers: int = 2) -> GNNEncoder:
    net = GRAPH_NETWORKS.get(kind)(in_channels, hidden=16, layers=layers)
    init_parameters(net, torch.Generator().manual_seed(0))
    # Non-trivial epsilon and biases, so that every term of each layer is exercised.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1 and "norm" not in name and "input.1" not in name:
                p.uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(len(name)))
    return net.eval()


def _variable_degree_graph(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n // 8, size=(n, 2)).astype(str)
    import pandas as pd

    frame = pd.DataFrame({"a": codes[:, 0], "b": np.char.add("x", codes[:, 1])})
    graph = project_code_graph(frame, ["a", "b"], max_degree=7, random_state=seed)
    return graph.edge_index


def test_table_round_trip() -> None:
    edge_index = _variable_degree_graph(200, seed=1)
    table = NeighborTable.from_edge_index(edge_index, 200)
    assert table.max_degree <= 7
    assert torch.equal(table.degree, torch.bincount(edge_index[1], minlength=200))
    back = table.to_edge_index()
    key = lambda e: sorted(map(tuple, e.t().tolist()))  # noqa: E731
    assert key(back) == key(edge_index)


def test_sampling_without_replacement_is_seeded() -> None:
    edge_index = build_knn_graph(np.random.default_rng(0).normal(size=(100, 3)), k=8)
    table = NeighborTable.from_edge_index(edge_index, 100)
    nodes = torch.arange(0, 100, 3)
    src, dst = sample_neighbors(table, nodes, 3, torch.Generator().manual_seed(1))
    assert torch.equal(torch.bincount(dst, minlength=100)[nodes], torch.full((len(nodes),), 3))
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == len(src)  # no edge drawn twice
    all_edges = set(map(tuple, edge_index.t().tolist()))
    assert pairs <= all_edges
    again = sample_neighbors(table, nodes, 3, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], src)
    other = sample_neighbors(table, nodes, 3, torch.Generator().manual_seed(2))
    assert not torch.equal(other[0], src)


def test_subgraph_layout() -> None:
    edge_index = build_knn_graph(np.random.default_rng(1).normal(size=(60, 3)), k=4)
    table = NeighborTable.from_edge_index(edge_index, 60)
    seeds = torch.tensor([5, 2, 40])
    batch = sample_subgraph(table, seeds, [2, 3], generator=torch.Generator().manual_seed(0))
    assert batch.batch_size == 3 and torch.equal(batch.n_id[:3], seeds)
    assert len(torch.unique(batch.n_id)) == len(batch.n_id)
    glob = batch.n_id[batch.edge_index]
    assert set(map(tuple, glob.t().tolist())) <= set(map(tuple, edge_index.t().tolist()))
    assert torch.equal(
        torch.bincount(batch.edge_index[1], minlength=batch.num_nodes)[:3], torch.full((3,), 2)
    )
    with pytest.raises(GraphError, match="repeat"):
        sample_subgraph(table, torch.tensor([1, 1]), [2])
    with pytest.raises(GraphError, match="lie in"):
        sample_subgraph(table, torch.tensor([60]), [2])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("graph", ["knn", "variable"])
def test_minibatch_embeddings_equal_full_batch(kind: str, graph: str, array_factory) -> None:
    x_np, _ = array_factory(240, 5, seed=4)
    x = torch.from_numpy(x_np)
    if graph == "knn":
        edge_index = build_knn_graph(x, k=5)
    else:
        edge_index = _variable_degree_graph(240, seed=2)
    table = NeighborTable.from_edge_index(edge_index, 240)
    net = _network(kind, 5)
    full = net.embed(x, edge_index)
    fanout = table.max_degree  # sampling keeps every neighbour
    gen = torch.Generator().manual_seed(0)
    seen = torch.zeros(240, dtype=torch.bool)
    for batch in iter_subgraphs(table, torch.arange(240), [fanout, None], 32, generator=gen, x=x):
        out = net.embed(batch.x, batch.edge_index)[: batch.batch_size]
        seeds = batch.n_id[: batch.batch_size]
        torch.testing.assert_close(out, full[seeds], atol=1e-5, rtol=1e-5)
        seen[seeds] = True
    assert bool(seen.all())
    layerwise = net.layerwise(x, table, chunk_size=50)
    torch.testing.assert_close(layerwise[-1], full, atol=1e-5, rtol=1e-5)
    for got, want in zip(layerwise, net.layer_outputs(x, edge_index)):
        torch.testing.assert_close(got, want.detach(), atol=1e-5, rtol=1e-5)


def test_sampled_minibatches_differ_from_full_when_fanout_is_small(array_factory) -> None:
    x_np, _ = array_factory(120, 5, seed=5)
    x = torch.from_numpy(x_np)
    edge_index = build_knn_graph(x, k=8)
    table = NeighborTable.from_edge_index(edge_index, 120)
    net = _network("graphsage", 5)
    batch = sample_subgraph(table, torch.arange(10), [2, 2], generator=torch.Generator(), x=x)
    out = net.embed(batch.x, batch.edge_index)[:10]
    assert not torch.allclose(out, net.embed(x, edge_index)[:10], atol=1e-4)
