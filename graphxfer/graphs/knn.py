"""Similarity graphs: the k nearest source records of every record, never quadratic in memory.

Records are points in the dense feature space of :class:`~graphxfer.graphs.DenseFeatures`
(standardised numeric values, missing indicators, scaled one-hot categories), compared with the
Euclidean distance. Two searches are available:

``"exact"``
    Blockwise brute force with :func:`torch.cdist` (the direct, non-matrix-product form): memory
    is bounded by the block sizes, time grows with ``n_query * n_points``. Used for small inputs
    and as the reference of the approximate search.
``"nndescent"``
    An approximate nearest-neighbour graph from ``pynndescent`` (NN-descent over random
    projection trees), near-linear in the number of records. The index is built with more
    neighbours than requested (``max(3k, 30)``), which lifts the recall at ``k`` above 0.95.
``"auto"``
    Exact while ``n_points * n_points <= EXACT_MAX_PAIRS`` (about 15,800 records), approximate
    beyond. Queries use the method of the index, whatever their number of rows.

Edges follow PyG's ``source_to_target`` flow: for a record ``i`` with neighbour ``j``, the edge
is ``(j, i)``, so ``edge_index[1]`` lists every record exactly ``k`` times (in-degree ``k``).

**Per-record queries.** :meth:`KNNIndex.query` guarantees that the neighbours returned for a
query row depend on that row and the indexed points only, never on the other query rows. The
exact search is elementwise per row (``cdist`` without a matrix product, whose rounding could
depend on the batch size); the approximate search asks ``pynndescent`` one row at a time,
because its batched queries share one random stream across rows. This is what lets a target
record be attached to the source graph without its neighbours depending on other target
records (see :mod:`graphxfer.graphs.attach`). For the same reason the search method of a
query is the index's own (:attr:`KNNIndex.method_`), never chosen from the number of query
rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graphxfer.exceptions import GraphError, NotFittedError
from graphxfer.graphs._utils import as_float_tensor, check_choice, check_positive_int, seed_from

__all__ = [
    "EXACT_MAX_PAIRS",
    "KNN_METHODS",
    "KNNIndex",
    "build_knn_graph",
    "exact_knn",
    "knn_recall",
    "neighbors_to_edge_index",
]

KNN_METHODS = ("auto", "exact", "nndescent")
EXACT_MAX_PAIRS = 250_000_000
"""``method="auto"`` indexes for exact search while ``n_points ** 2`` stays at or below this."""

_QUERY_BLOCK = 1024
_POINT_BLOCK = 16384


def exact_knn(
    query: Any,
    points: Any,
    k: int,
    *,
    exclude_self: bool = False,
    query_block: int = _QUERY_BLOCK,
    point_block: int = _POINT_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest ``points`` of every ``query`` row, by blockwise exact search.

    Parameters
    ----------
    query : array or tensor of shape (m, d)
    points : array or tensor of shape (n, d)
    k : int
        Neighbours per query row.
    exclude_self : bool, default=False
        ``query`` row ``i`` is ``points`` row ``i`` and must not be its own neighbour.
    query_block, point_block : int
        Block sizes; memory is ``O(query_block * point_block)``.

    Returns
    -------
    indices : LongTensor of shape (m, k)
        Neighbours sorted by increasing distance, ties by increasing index.
    distances : FloatTensor of shape (m, k)
        Euclidean distances.

    Examples
    --------
    >>> idx, dist = exact_knn([[0.0], [2.5]], [[0.0], [1.0], [2.0], [3.0]], k=2)
    >>> idx.tolist()
    [[0, 1], [2, 3]]
    """
    q = as_float_tensor(query, name="query")
    p = as_float_tensor(points, name="points")
    k = check_positive_int(k, "k")
    if q.shape[1] != p.shape[1]:
        raise GraphError(f"query has {q.shape[1]} features, the indexed points {p.shape[1]}")
    if exclude_self and q.shape[0] != p.shape[0]:
        raise GraphError("exclude_self=True needs the query to be the indexed points themselves")
    available = p.shape[0] - (1 if exclude_self else 0)
    if k > available:
        raise GraphError(
            f"k={k} neighbours were requested but only {available} other records exist; "
            "lower k or add records"
        )
    m = q.shape[0]
    out_idx = torch.empty((m, k), dtype=torch.long)
    out_dist = torch.empty((m, k), dtype=torch.float32)
    for qs in range(0, m, query_block):
        qe = min(qs + query_block, m)
        qb = q[qs:qe]
        best_d = torch.full((qe - qs, k), float("inf"))
        best_i = torch.full((qe - qs, k), -1, dtype=torch.long)
        for ps in range(0, p.shape[0], point_block):
            pe = min(ps + point_block, p.shape[0])
            dist = torch.cdist(qb, p[ps:pe], compute_mode="donot_use_mm_for_euclid_dist")
            if exclude_self and ps < qe and qs < pe:
                rows = torch.arange(max(qs, ps), min(qe, pe))
                dist[rows - qs, rows - ps] = float("inf")
            cand_d = torch.cat([best_d, dist], dim=1)
            cand_i = torch.cat([best_i, torch.arange(ps, pe).expand(qe - qs, -1)], dim=1)
            top = _smallest_k(cand_d, k)
            best_d = torch.gather(cand_d, 1, top)
            best_i = torch.gather(cand_i, 1, top)
        best_i, best_d = _canonical_order(best_i, best_d)
        out_idx[qs:qe] = best_i
        out_dist[qs:qe] = best_d
    return out_idx, out_dist


def _smallest_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Columns of the ``k`` smallest values per row, ties to the leftmost, in column order.

    Candidate columns are kept in increasing record order, so "leftmost" is "lowest index":
    the selection is a deterministic function of each row alone.
    """
    threshold = torch.topk(values, k, dim=1, largest=False).values[:, -1:]
    rows, cols = torch.nonzero(values <= threshold, as_tuple=True)  # row-major: columns ascend
    picked = values[rows, cols]
    tied = picked == threshold[rows, 0]
    below_count = torch.bincount(rows[~tied], minlength=values.shape[0])
    counts = torch.bincount(rows, minlength=values.shape[0])
    tied_rank = torch.cumsum(tied.long(), 0)
    tied_before_row = (tied_rank - tied.long())[torch.cumsum(counts, 0) - counts][rows]
    keep = ~tied | (tied_rank - tied_before_row <= (k - below_count)[rows])
    return cols[keep].reshape(values.shape[0], k)


def _canonical_order(idx: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by distance, ties by index."""
    by_index = torch.argsort(idx, dim=1, stable=True)
    idx, dist = torch.gather(idx, 1, by_index), torch.gather(dist, 1, by_index)
    by_dist = torch.argsort(dist, dim=1, stable=True)
    return torch.gather(idx, 1, by_dist), torch.gather(dist, 1, by_dist)


def knn_recall(approximate: Any, exact: Any) -> float:
    """Mean fraction of each row's exact neighbours found by the approximate search."""
    a, e = torch.as_tensor(approximate), torch.as_tensor(exact)
    if a.shape != e.shape or a.dim() != 2:
        raise GraphError(f"neighbour tables differ in shape: {tuple(a.shape)} vs {tuple(e.shape)}")
    hits = (a[:, :, None] == e[:, None, :]).any(dim=2)
    return float(hits.float().mean())


class KNNIndex:
    """A nearest-neighbour index over source records that also answers queries for new records.

    Parameters
    ----------
    k : int, default=10
        Neighbours per record.
    method : {"auto", "exact", "nndescent"}, default="auto"
        Search method (see the module docstring).
    random_state : int, numpy Generator or None
        Seeds the approximate index. The seed actually used is kept in :attr:`seed_`, so an
        index rebuilt from :meth:`config` gives the same neighbours.
    n_jobs : int or None
        Threads for ``pynndescent`` (``None``: its default).

    Attributes
    ----------
    method_ : str
        ``"exact"`` or ``"nndescent"``, as resolved by :meth:`fit`.
    n_points_ : int
        Number of indexed records.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.arange(20, dtype=np.float32).reshape(10, 2)
    >>> index = KNNIndex(k=2, random_state=0).fit(points)
    >>> index.neighbors()[0].tolist()
    [1, 2]
    >>> index.query([[0.1, 1.2]])[0].tolist()
    [[0, 1]]
    """

    def __init__(
        self,
        k: int = 10,
        *,
        method: str = "auto",
        random_state: int | np.random.Generator | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.k = k
        self.method = method
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def fit(self, points: Any) -> KNNIndex:
        """Index ``points`` (array or tensor of shape ``(n, d)``, finite)."""
        k = check_positive_int(self.k, "k")
        method = check_choice(self.method, "method", KNN_METHODS)
        x = as_float_tensor(points, name="points")
        n = x.shape[0]
        if n == 0:
            raise GraphError("cannot index zero records: the graph would be empty")
        if k >= n:
            raise GraphError(
                f"k={k} neighbours need at least {k + 1} records, got {n}; lower k or add records"
            )
        if method == "auto":
            method = "exact" if n * n <= EXACT_MAX_PAIRS else "nndescent"
        self.seed_ = seed_from(self.random_state) % (2**32 - 1)
        self.points_ = x
        self.n_points_ = n
        self.method_ = method
        self._neighbors: torch.Tensor | None = None
        self._nnd: Any = None
        if method == "nndescent":
            self._nnd = self._build_nndescent(x, k)
        return self

    def _build_nndescent(self, x: torch.Tensor, k: int) -> Any:
        try:
            from pynndescent import NNDescent
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise GraphError(
                "method='nndescent' needs pynndescent (pip install pynndescent)"
            ) from exc
        n_neighbors = min(x.shape[0] - 1, max(3 * k, 30)) + 1
        return NNDescent(
            x.numpy(),
            metric="euclidean",
            n_neighbors=n_neighbors,
            random_state=self.seed_,
            n_jobs=self.n_jobs,
            verbose=False,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "points_"):
            raise NotFittedError("this KNNIndex is not fitted; call fit(source_points)")

    # ------------------------------------------------------------------ neighbours
    def neighbors(self) -> torch.Tensor:
        """The ``k`` nearest *other* indexed records of every indexed record, ``(n, k)``."""
        self._check_fitted()
        if self._neighbors is None:
            if self.method_ == "exact":
                idx, _ = exact_knn(self.points_, self.points_, self.k, exclude_self=True)
            else:
                idx = self._nndescent_graph()
            self._neighbors = idx
        return self._neighbors

    def _nndescent_graph(self) -> torch.Tensor:
        graph, _ = self._nnd.neighbor_graph
        graph = torch.as_tensor(np.asarray(graph, dtype=np.int64))
        n = graph.shape[0]
        drop = (graph == torch.arange(n)[:, None]) | (graph < 0)
        keep = torch.argsort(drop.to(torch.int8), dim=1, stable=True)[:, : self.k]
        idx = torch.gather(graph, 1, keep)
        bad_rows = torch.gather(drop, 1, keep).any(dim=1)
        if bool(bad_rows.any()):
            rows = torch.nonzero(bad_rows).flatten()
            exact, _ = exact_knn(self.points_[rows], self.points_, self.k + 1)
            mask = exact != rows[:, None]
            order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, : self.k]
            idx[rows] = torch.gather(exact, 1, order)
        return idx

    def query(self, queries: Any, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest indexed records of each query row (new records, e.g. targets).

        Row ``i`` of the result depends on query row ``i`` and the indexed records only.

        Returns
        -------
        indices : LongTensor of shape (m, k)
        distances : FloatTensor of shape (m, k)
        """
        self._check_fitted()
        k = self.k if k is None else check_positive_int(k, "k")
        q = as_float_tensor(queries, name="queries")
        if q.shape[1] != self.points_.shape[1]:
            raise GraphError(
                f"queries have {q.shape[1]} features, the index {self.points_.shape[1]}; "
                "featurize them with the same featurizer"
            )
        if k > self.n_points_:
            raise GraphError(f"k={k} exceeds the {self.n_points_} indexed records")
        # The search follows the index, never the number of query rows: choosing it from
        # ``q.shape[0]`` would let adding or removing one record switch every other row
        # between exact and approximate neighbours.
        if self.method_ == "exact":
            return exact_knn(q, self.points_, k)
        return self._query_nndescent(q, k)

    def _query_nndescent(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._nnd.prepare()
        arr = q.numpy()
        idx = np.empty((arr.shape[0], k), dtype=np.int64)
        dist = np.empty((arr.shape[0], k), dtype=np.float32)
        # One query per call: pynndescent's batched search shares a random stream across rows.
        for i in range(arr.shape[0]):
            row_idx, row_dist = self._nnd.query(arr[i : i + 1], k=k, epsilon=0.3)
            idx[i], dist[i] = row_idx[0], row_dist[0]
        out_i, out_d = torch.from_numpy(idx), torch.from_numpy(dist)
        bad = (out_i < 0).any(dim=1)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()
            fix_i, fix_d = exact_knn(q[rows], self.points_, k)
            out_i[rows], out_d[rows] = fix_i, fix_d
        return _canonical_order(out_i, out_d)

    def config(self) -> dict[str, Any]:
        """JSON-ready parameters; ``KNNIndex(**config).fit(points)`` rebuilds the same index."""
        self._check_fitted()
        return {"k": int(self.k), "method": self.method_, "random_state": int(self.seed_)}


def build_knn_graph(
    features: Any,
    k: int = 10,
    method: str = "auto",
    random_state: int | np.random.Generator | None = None,
) -> torch.Tensor:
    """The k-nearest-neighbour graph of ``features`` as a PyG ``edge_index``.

    Parameters
    ----------
    features : array or tensor of shape (n, d)
        Finite dense features (e.g. :meth:`DenseFeatures.transform` output).
    k : int, default=10
        Neighbours per record; every record receives exactly ``k`` edges.
    method : {"auto", "exact", "nndescent"}, default="auto"
    random_state : int, numpy Generator or None
        Seeds the approximate search.

    Returns
    -------
    LongTensor of shape (2, n * k)
        ``edge_index[:, i*k : (i+1)*k]`` are the edges ``(neighbour, i)``, nearest first.

    Examples
    --------
    >>> import numpy as np
    >>> build_knn_graph(np.array([[0.0], [1.0], [3.0]]), k=1).tolist()
    [[1, 0, 1], [0, 1, 2]]
    """
    index = KNNIndex(k, method=method, random_state=random_state).fit(features)
    return neighbors_to_edge_index(index.neighbors())


def neighbors_to_edge_index(neighbors: torch.Tensor) -> torch.Tensor:
    """``(n, k)`` neighbour table -> ``[2, n*k]`` edges ``(neighbour, record)``."""
    n, k = neighbors.shape
    receivers = torch.arange(n).repeat_interleave(k)
    return torch.stack([neighbors.reshape(-1), receivers])
