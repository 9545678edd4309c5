"""Relational graphs: records linked through the codes they share.

Some cohorts carry *codes* that relate records directly: the three ICD-9 diagnoses
``diag_1``..``diag_3`` of the diabetes cohort, or the course module and presentation of an
OULAD registration. Two views are offered:

* :func:`build_code_graph` — the bipartite record–code graph as a PyG
  :class:`~torch_geometric.data.HeteroData` with node types ``"record"`` and ``"code"`` and edge
  types ``("record", "has", "code")`` and ``("code", "rev_has", "record")``. It has one edge per
  (record, distinct code) pair: memory is linear in the cohort.
* :func:`project_code_graph` — a record graph (``Data``) in which records that share a code are
  neighbours. A full projection is quadratic for frequent codes (a code held by 10,000 records
  would create 10⁸ pairs), so the projection is *sampled*: the members of each code are put in a
  random cyclic order and every member is linked to the ``ceil(max_degree / 2)`` members on each
  side of it. Every record then receives at most ``max_degree`` edges (a random subset when it
  has more candidates). All of it is array arithmetic over the ``M`` (record, code) memberships:
  time ``O(M max_degree log)``, memory ``O(M max_degree)``.

Missing codes link nothing. Records with no shared code are isolated; ``project_code_graph``
gives them a self-loop by default (see :func:`~graphxfer.graphs.validate_graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from graphxfer.exceptions import GraphError, MissingColumnError
from graphxfer.graphs._utils import check_positive_int, make_generator, seed_from
from graphxfer.graphs.validate import validate_graph

__all__ = ["build_code_graph", "project_code_graph"]

RECORD, CODE = "record", "code"
HAS = (RECORD, "has", CODE)
REV_HAS = (CODE, "rev_has", RECORD)


def _frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    frame = getattr(data, "data", None)  # a Cohort
    if isinstance(frame, pd.DataFrame):
        return frame
    raise GraphError(f"expected a DataFrame or a Cohort, got {type(data).__name__}")


def _codes(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def build_code_graph(
    data: Any,
    code_columns: Sequence[str],
    *,
    shared_vocabulary: bool = True,
    min_count: int = 1,
    x: Any = None,
    isolated: str = "allow",
) -> Any:
    """The bipartite record–code graph of ``data``.

    Parameters
    ----------
    data : DataFrame or Cohort
        One row per record.
    code_columns : sequence of str
        Columns holding codes, e.g. ``["diag_1", "diag_2", "diag_3"]``.
    shared_vocabulary : bool, default=True
        Whether the columns share one code space (a diagnosis is the same code whether primary
        or secondary). Otherwise codes are namespaced by column (``"col=code"``).
    min_count : int, default=1
        Codes held by fewer records are dropped (``2`` keeps only codes that link records).
    x : array or tensor of shape (n, d), optional
        Record features, stored as ``graph["record"].x``.
    isolated : {"allow", "error"}, default="allow"
        Records without any (kept) code.

    Returns
    -------
    HeteroData
        ``graph["code"].names`` lists the code labels and ``graph["code"].count`` how many
        records hold each.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"d1": ["250", "401", "250"], "d2": ["401", None, "428"]})
    >>> g = build_code_graph(df, ["d1", "d2"])
    >>> g["code"].names, g["code"].count.tolist()
    (['250', '401', '428'], [2, 2, 1])
    """
    from torch_geometric.data import HeteroData

    frame = _frame(data)
    columns = list(code_columns)
    if not columns:
        raise GraphError("code_columns is empty; name the columns that hold codes")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise MissingColumnError(f"code column(s) {absent} are not in the data")
    min_count = check_positive_int(min_count, "min_count")
    n = len(frame)
    if n == 0:
        raise GraphError("the data has no rows: the code graph would be empty")
    records, labels = [], []
    for col in columns:
        values = frame[col].map(_codes)
        present = values.notna().to_numpy()
        records.append(np.flatnonzero(present))
        text = values[present].astype(str)
        labels.append(text if shared_vocabulary else f"{col}=" + text)
    rec = np.concatenate(records) if records else np.zeros(0, dtype=np.int64)
    tokens = pd.concat(labels, ignore_index=True) if labels else pd.Series([], dtype=str)
    code_id, names = pd.factorize(tokens, sort=True)
    pairs = np.unique(rec.astype(np.int64) * max(len(names), 1) + code_id.astype(np.int64))
    rec, code_id = pairs // max(len(names), 1), pairs % max(len(names), 1)
    counts = np.bincount(code_id, minlength=len(names))
    keep_code = counts >= min_count
    if not keep_code.any():
        raise GraphError(
            f"no code in {columns} is held by {min_count} or more records: the graph has no edges"
        )
    new_id = np.cumsum(keep_code) - 1
    mask = keep_code[code_id]
    rec, code_id = rec[mask], new_id[code_id[mask]]
    graph = HeteroData()
    graph[RECORD].num_nodes = n
    if x is not None:
        graph[RECORD].x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    graph[CODE].num_nodes = int(keep_code.sum())
    graph[CODE].names = [str(v) for v in np.asarray(names)[keep_code]]
    graph[CODE].count = torch.as_tensor(counts[keep_code], dtype=torch.long)
    edge_index = torch.as_tensor(np.stack([rec, code_id]), dtype=torch.long)
    graph[HAS].edge_index = edge_index
    graph[REV_HAS].edge_index = edge_index.flip(0)
    if isolated not in ("allow", "error"):
        raise GraphError(f"isolated={isolated!r} is not one of ('allow', 'error')")
    if isolated == "error":
        has_code = torch.zeros(n, dtype=torch.bool)
        has_code[edge_index[0]] = True
        if not bool(has_code.all()):
            lonely = torch.nonzero(~has_code).flatten()
            raise GraphError(
                f"{len(lonely)} records hold no code (first rows {lonely[:5].tolist()}); "
                "pass isolated='allow' to keep them"
            )
    return validate_graph(graph, isolated="allow", name="code graph")


def project_code_graph(
    data: Any,
    code_columns: Sequence[str] | None = None,
    *,
    max_degree: int = 10,
    random_state: int | np.random.Generator | None = None,
    x: Any = None,
    isolated: str = "self_loops",
    shared_vocabulary: bool = True,
) -> Any:
    """A record graph linking records that share a code, with a degree cap (see module docs).

    Parameters
    ----------
    data : HeteroData, DataFrame or Cohort
        A graph from :func:`build_code_graph`, or records (then ``code_columns`` is required).
    code_columns : sequence of str, optional
        Code columns when ``data`` holds records.
    max_degree : int, default=10
        Most edges any record receives.
    random_state : int, numpy Generator or None
        Seeds the cyclic orders and the cap.
    x : array or tensor of shape (n, d), optional
        Record features for ``Data.x`` (default: ``graph["record"].x`` when present).
    isolated : {"self_loops", "allow", "error"}, default="self_loops"
        Records that share no code with any other record.
    shared_vocabulary : bool, default=True
        Passed to :func:`build_code_graph` when ``data`` holds records.

    Returns
    -------
    Data
        ``edge_index`` with edges ``(neighbour, record)``, sorted by record.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"d1": ["250", "401", "250", "999"]})
    >>> g = project_code_graph(df, ["d1"], max_degree=4, random_state=0, isolated="allow")
    >>> sorted(map(tuple, g.edge_index.t().tolist()))
    [(0, 2), (2, 0)]
    """
    from torch_geometric.data import Data, HeteroData

    max_degree = check_positive_int(max_degree, "max_degree")
    if isinstance(data, HeteroData):
        graph = data
    else:
        if code_columns is None:
            raise GraphError("pass code_columns when projecting records (not a HeteroData graph)")
        graph = build_code_graph(data, code_columns, shared_vocabulary=shared_vocabulary)
    if HAS not in graph.edge_types:
        raise GraphError(f"the graph has no {HAS} edges; build it with build_code_graph")
    n = int(graph[RECORD].num_nodes)
    rec, code = graph[HAS].edge_index.cpu()
    gen = make_generator(seed_from(random_state))
    # Members of each code in a random cyclic order.
    order = torch.argsort(torch.rand(len(rec), generator=gen))
    order = order[torch.argsort(code[order], stable=True)]
    rec_s, code_s = rec[order], code[order]
    n_codes = int(code.max()) + 1 if len(code) else 0
    size = torch.bincount(code_s, minlength=n_codes)
    start = torch.cumsum(size, 0) - size
    pos = torch.arange(len(rec_s)) - start[code_s]
    half = (max_degree + 1) // 2
    offsets = torch.cat([torch.arange(1, half + 1), -torch.arange(1, half + 1)])
    m = size[code_s][:, None]
    valid = offsets[None, :].abs() < m  # offsets +o and -o may meet: duplicates are dropped below
    nbr_pos = (pos[:, None] + offsets[None, :]) % m
    src = rec_s[(start[code_s][:, None] + nbr_pos)][valid]
    dst = rec_s[:, None].expand_as(valid)[valid]
    keep = src != dst
    key = torch.unique(dst[keep] * n + src[keep])
    src, dst = key % n, key // n
    # Cap the in-degree: a random subset of at most max_degree senders per record.
    if len(key):
        shuffle = torch.argsort(torch.rand(len(key), generator=gen))
        shuffle = shuffle[torch.argsort(dst[shuffle], stable=True)]
        src, dst = src[shuffle], dst[shuffle]
        deg = torch.bincount(dst, minlength=n)
        rank = torch.arange(len(dst)) - (torch.cumsum(deg, 0) - deg)[dst]
        capped = rank < max_degree
        src, dst = src[capped], dst[capped]
    edge_index = torch.stack([src, dst]).to(torch.long)
    feats = x if x is not None else getattr(graph[RECORD], "x", None)
    out = Data(edge_index=edge_index, num_nodes=n)
    if feats is not None:
        out.x = torch.as_tensor(np.asarray(feats, dtype=np.float32))
    return validate_graph(out, isolated=isolated, name="projected code graph")
