"""A query's search method follows the index, never the number of rows queried together.

Choosing exact or approximate search from ``n_query * n_points`` made one target record's
neighbours (hence its attached row, prediction and per-sample gradient) depend on how many
other target records were attached with it: removing one record from a private fit could
switch every other record between exact and approximate neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphxfer.graphs import GraphEncoder, KNNIndex, exact_knn
from graphxfer.graphs import knn as knn_module
from graphxfer.graphs.encoders import graph_encoder_class
from graphxfer.graphs.knn import neighbors_to_edge_index

N_SOURCE, N_TARGET, DIM, K = 300, 40, 4, 5


def _approximate_index(points: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> KNNIndex:
    """An index that answers like an approximate one, without building pynndescent (whose
    numba compilation takes half a minute): per row, the exact neighbours ranked 2..k+1."""
    index = KNNIndex(k=K, method="exact").fit(points)
    index.method_ = "nndescent"

    def per_row(q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx, dist = exact_knn(q, index.points_, k + 1)
        return idx[:, 1:], dist[:, 1:]

    monkeypatch.setattr(index, "_query_nndescent", per_row)
    # the rows of the target just below the old "exact while n_query * n_points <= limit" rule
    monkeypatch.setattr(knn_module, "EXACT_MAX_PAIRS", (N_TARGET - 1) * N_SOURCE)
    return index


def test_query_rows_do_not_depend_on_the_number_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(N_SOURCE, DIM)).astype(np.float32)
    query = rng.normal(size=(N_TARGET, DIM)).astype(np.float32)
    index = _approximate_index(points, monkeypatch)
    full, full_dist = index.query(query)
    for rows in ([0], list(range(N_TARGET - 1)), [3, 17]):
        part, part_dist = index.query(query[rows])
        assert torch.equal(part, full[rows]) and torch.equal(part_dist, full_dist[rows])


def test_removing_one_target_record_keeps_the_other_rows_with_an_approximate_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(N_SOURCE, DIM)).astype(np.float32)
    target = rng.normal(size=(N_TARGET, DIM)).astype(np.float32)
    index = _approximate_index(points, monkeypatch)
    torch.manual_seed(0)
    network = graph_encoder_class("graphsage")(DIM, hidden=8, layers=2)
    edges = neighbors_to_edge_index(exact_knn(points, points, K, exclude_self=True)[0])
    encoder = GraphEncoder(
        network, points, edges, index=index, source_y=rng.integers(0, 2, N_SOURCE)
    )
    with_all = encoder.attach_tensor(target)
    without_last = encoder.attach_tensor(target[:-1])
    assert torch.equal(with_all[:-1], without_last)
    clf = encoder.classifier().eval()
    with torch.no_grad():
        clf.head.weight.normal_()
        assert torch.equal(clf(with_all)[:-1], clf(without_last))
