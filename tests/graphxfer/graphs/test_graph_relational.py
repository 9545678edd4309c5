"""Relational graphs: record–code HeteroData and the degree-capped record projection."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from graphxfer.exceptions import GraphError, MissingColumnError
from graphxfer.graphs import build_code_graph, project_code_graph


def _diagnoses(n: int, seed: int) -> pd.DataFrame:
    """ICD-9-like diagnoses: a few very common codes and a long tail, some missing."""
    rng = np.random.default_rng(seed)
    vocab = np.array(["250", "428", "276", "414", "401", *[f"V{i}" for i in range(300)]])
    p = np.r_[[0.2, 0.1, 0.1, 0.05, 0.05], np.full(300, 0.5 / 300)]
    frame = pd.DataFrame({f"diag_{i}": rng.choice(vocab, n, p=p) for i in (1, 2, 3)})
    frame.loc[rng.random(n) < 0.1, "diag_3"] = None
    return frame


def test_code_graph_is_bipartite_with_one_edge_per_record_code_pair() -> None:
    frame = pd.DataFrame(
        {"diag_1": ["250", "401", "250.01", None], "diag_2": ["401", "401", None, "V27"]}
    )
    g = build_code_graph(frame, ["diag_1", "diag_2"])
    assert g["code"].names == ["250", "250.01", "401", "V27"]
    assert g["code"].count.tolist() == [1, 1, 2, 1]
    edges = sorted(map(tuple, g["record", "has", "code"].edge_index.t().tolist()))
    assert edges == [(0, 0), (0, 2), (1, 2), (2, 1), (3, 3)]  # record 1's repeat counts once
    assert torch.equal(
        g["code", "rev_has", "record"].edge_index, g["record", "has", "code"].edge_index.flip(0)
    )
    split = build_code_graph(frame, ["diag_1", "diag_2"], shared_vocabulary=False, min_count=2)
    assert split["code"].names == ["diag_2=401"]


def test_code_graph_errors() -> None:
    frame = pd.DataFrame({"a": ["x", None], "b": [None, None]})
    with pytest.raises(MissingColumnError):
        build_code_graph(frame, ["zz"])
    with pytest.raises(GraphError, match="no code"):
        build_code_graph(frame, ["a"], min_count=2)
    with pytest.raises(GraphError, match="hold no code"):
        build_code_graph(frame, ["a"], isolated="error")
    with pytest.raises(GraphError, match="empty"):
        build_code_graph(frame, [])


def test_projection_links_only_records_sharing_a_code_with_a_degree_cap() -> None:
    frame = _diagnoses(3000, seed=0)
    g = project_code_graph(frame, ["diag_1", "diag_2", "diag_3"], max_degree=8, random_state=0)
    src, dst = g.edge_index
    codes = [set(row) - {None} for row in frame.itertuples(index=False)]
    loops = src == dst
    assert all(codes[s] & codes[d] for s, d in zip(src[~loops].tolist(), dst[~loops].tolist()))
    assert int(torch.bincount(dst, minlength=3000).max()) <= 8
    assert int(torch.bincount(dst, minlength=3000).min()) >= 1  # isolated records: self-loops
    pairs = src * 3000 + dst
    assert len(torch.unique(pairs)) == len(pairs)
    again = project_code_graph(frame, ["diag_1", "diag_2", "diag_3"], max_degree=8, random_state=0)
    assert torch.equal(again.edge_index, g.edge_index)


def test_small_codes_link_all_their_members() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "a", "b", "b", "z"]})
    g = project_code_graph(frame, ["c"], max_degree=10, random_state=1, isolated="allow")
    assert sorted(map(tuple, g.edge_index.t().tolist())) == [
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 2),
        (2, 0),
        (2, 1),
        (3, 4),
        (4, 3),
    ]
    with pytest.raises(GraphError, match="isolated"):
        project_code_graph(frame, ["c"], isolated="error")


def test_projection_memory_is_linear_for_a_code_everyone_shares() -> None:
    n = 60_000
    frame = pd.DataFrame({"module": np.where(np.arange(n) % 2 == 0, "AAA", "BBB")})
    start = time.perf_counter()
    g = project_code_graph(frame, ["module"], max_degree=6, random_state=0)
    assert time.perf_counter() - start < 10
    assert g.edge_index.shape[1] == n * 6  # not the (n/2)^2 pairs of a full projection
    assert bool(
        (
            frame["module"].to_numpy()[g.edge_index[0]]
            == frame["module"].to_numpy()[g.edge_index[1]]
        ).all()
    )


def test_projection_of_a_code_graph_with_record_features() -> None:
    frame = _diagnoses(200, seed=1)
    x = np.random.default_rng(0).normal(size=(200, 3))
    hetero = build_code_graph(frame, ["diag_1", "diag_2"], x=x)
    g = project_code_graph(hetero, max_degree=5, random_state=0)
    assert g.x.shape == (200, 3) and g.num_nodes == 200
    with pytest.raises(GraphError, match="code_columns"):
        project_code_graph(frame)
