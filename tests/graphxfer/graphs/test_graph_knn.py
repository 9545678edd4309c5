"""Similarity graphs: exact search against a naive reference, approximate recall, queries."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from graphxfer.exceptions import GraphError
from graphxfer.graphs import KNNIndex, build_knn_graph, exact_knn, knn_recall


def _clustered(n: int, d: int, seed: int, centers_seed: int = 0) -> np.ndarray:
    """Points around 20 cluster centres (the same centres for the same ``centers_seed``)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(centers_seed).normal(0, 3.0, (20, d))
    return (centers[rng.integers(0, 20, n)] + rng.normal(0, 1.0, (n, d))).astype(np.float32)


def _naive_knn(query: np.ndarray, points: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    dist = np.sqrt(((query[:, None, :].astype(np.float64) - points[None]) ** 2).sum(-1))
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def test_exact_search_matches_the_naive_reference() -> None:
    points = _clustered(700, 5, seed=0)
    query = _clustered(90, 5, seed=1)
    idx, dist = exact_knn(query, points, 7, query_block=32, point_block=100)
    np.testing.assert_array_equal(idx.numpy(), _naive_knn(query, points, 7, False))
    expected = np.linalg.norm(query[:, None, :] - points[idx.numpy()], axis=2)
    np.testing.assert_allclose(dist.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (dist[:, 1:] >= dist[:, :-1]).all()
    self_idx, _ = exact_knn(points, points, 5, exclude_self=True, query_block=64, point_block=128)
    np.testing.assert_array_equal(self_idx.numpy(), _naive_knn(points, points, 5, True))


def test_ties_are_broken_by_index() -> None:
    points = np.zeros((6, 2), dtype=np.float32)
    idx, _ = exact_knn(points[:1], points, 4)
    assert idx.tolist() == [[0, 1, 2, 3]]


def test_knn_graph_edges_point_from_neighbour_to_record() -> None:
    x = _clustered(300, 4, seed=2)
    edge_index = build_knn_graph(x, k=6, method="exact")
    assert edge_index.shape == (2, 300 * 6)
    assert torch.equal(torch.bincount(edge_index[1], minlength=300), torch.full((300,), 6))
    assert not bool((edge_index[0] == edge_index[1]).any())
    expected = _naive_knn(x, x, 6, True)
    np.testing.assert_array_equal(edge_index[0].reshape(300, 6).numpy(), expected)


def test_queries_are_per_row() -> None:
    points = _clustered(500, 4, seed=3)
    query = _clustered(40, 4, seed=4)
    index = KNNIndex(k=5, method="exact").fit(points)
    full, dist = index.query(query)
    for rows in ([3], [0, 39], list(range(7, 30))):
        part, part_dist = index.query(query[rows])
        assert torch.equal(part, full[rows]) and torch.equal(part_dist, dist[rows])


def _approximate_recall(n: int, d: int, k: int) -> tuple[float, float, float]:
    x = _clustered(n, d, seed=5)
    start = time.perf_counter()
    approx = KNNIndex(k=k, method="nndescent", random_state=0).fit(x).neighbors()
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    exact = KNNIndex(k=k, method="exact").fit(x).neighbors()
    exact_seconds = time.perf_counter() - start
    return knn_recall(approx, exact), seconds, exact_seconds


@pytest.mark.slow  # NN-descent on 20k points: about 30 s on 2 cores
def test_approximate_graph_recall_small() -> None:
    recall, _, _ = _approximate_recall(3000, 16, 10)
    assert recall >= 0.95, recall


@pytest.mark.slow
def test_approximate_graph_recall_20k() -> None:
    recall, seconds, exact_seconds = _approximate_recall(20_000, 32, 10)
    print(
        f"nndescent recall@10 on 20k points: {recall:.4f} in {seconds:.1f} s "
        f"(exact: {exact_seconds:.1f} s)"
    )
    assert recall >= 0.95, recall


@pytest.mark.slow  # NN-descent index and queries: 15-35 s on 2 cores
def test_approximate_queries_are_per_row_and_reproducible() -> None:
    points = _clustered(2000, 8, seed=6)
    query = _clustered(30, 8, seed=7)  # new records from the same population
    index = KNNIndex(k=10, method="nndescent", random_state=3).fit(points)
    full, _ = index._query_nndescent(torch.from_numpy(query), 10)
    part, _ = index._query_nndescent(torch.from_numpy(query[[5, 6]]), 10)
    assert torch.equal(part, full[[5, 6]])
    exact, _ = exact_knn(query, points, 10)
    assert knn_recall(full, exact) >= 0.9
    again = KNNIndex(**index.config()).fit(points)
    assert torch.equal(again.neighbors(), index.neighbors())


def test_knn_errors() -> None:
    with pytest.raises(GraphError, match="at least 6 records"):
        KNNIndex(k=5).fit(np.zeros((5, 2)))
    with pytest.raises(GraphError, match="zero records"):
        KNNIndex(k=1).fit(np.zeros((0, 2)))
    bad = np.zeros((10, 2))
    bad[4, 1] = np.nan
    with pytest.raises(GraphError, match="NaN"):
        build_knn_graph(bad, k=2)
    with pytest.raises(GraphError, match="method"):
        KNNIndex(k=2, method="annoy").fit(np.zeros((10, 2)))
    with pytest.raises(GraphError, match="features"):
        KNNIndex(k=2).fit(np.zeros((10, 2))).query(np.zeros((1, 3)))
    with pytest.raises(GraphError, match="k must"):
        build_knn_graph(np.zeros((10, 2)), k=0)
