"""Mini-batch subgraphs by neighbour sampling, without pyg-lib or torch-sparse.

PyG's ``NeighborLoader`` needs compiled extensions that are not available here, so mini-batches
are built directly, GraphSAGE style:

1. the graph's incoming edges are stored once as a :class:`NeighborTable`, an ``(n, D)`` tensor
   of sender indices padded with ``-1`` (for a k-nearest-neighbour graph ``D = k`` and there is
   no padding; for a degree-capped code graph ``D = max_degree``);
2. a batch of *seed* records samples up to ``fanout[0]`` of its neighbours, the newly reached
   records sample ``fanout[1]`` of theirs, and so on. Sampling without replacement is a gather
   of the seeds' table rows, random keys from a ``torch.Generator`` and a ``topk`` — one tensor
   operation per hop, no Python loop over nodes;
3. the reached records are relabelled ``0..m-1`` (seeds first) and returned as a PyG ``Data``
   with ``n_id`` (global indices), ``edge_index`` (local) and ``batch_size`` (number of seeds),
   as ``NeighborLoader`` would.

Every reached record samples its neighbours once, so when every fanout is at least the largest
degree (or ``None``) a GNN with ``len(fanouts)`` layers gives the seeds exactly the embeddings
of a full-graph pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from graphxfer.exceptions import GraphError
from graphxfer.graphs.validate import check_edge_index

__all__ = ["NeighborTable", "iter_subgraphs", "sample_neighbors", "sample_subgraph"]


@dataclass(frozen=True)
class NeighborTable:
    """Incoming neighbours of every node as a padded ``(n, D)`` tensor (``-1`` = no neighbour).

    Attributes
    ----------
    neighbors : LongTensor of shape (num_nodes, max_degree)
        ``neighbors[i]`` lists the senders of the edges into ``i``, in ``edge_index`` order.
    degree : LongTensor of shape (num_nodes,)
        In-degree of every node.
    """

    neighbors: torch.Tensor
    degree: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.neighbors.shape[0])

    @property
    def max_degree(self) -> int:
        return int(self.neighbors.shape[1])

    @classmethod
    def from_edge_index(cls, edge_index: Any, num_nodes: int) -> NeighborTable:
        """Build the table of ``edge_index`` (``[2, E]``, edges ``sender -> receiver``).

        Memory is ``num_nodes * max_in_degree`` indices: cap the degree of graphs with hubs
        (:func:`~graphxfer.graphs.project_code_graph` does).
        """
        edge_index = check_edge_index(edge_index, num_nodes).cpu()
        src, dst = edge_index
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
        degree = torch.bincount(dst, minlength=num_nodes)
        width = int(degree.max()) if len(dst) else 0
        table = torch.full((num_nodes, width), -1, dtype=torch.long)
        if len(dst):
            slot = torch.arange(len(dst)) - (torch.cumsum(degree, 0) - degree)[dst]
            table[dst, slot] = src
        return cls(table, degree)

    def to_edge_index(self) -> torch.Tensor:
        """The edges of the table, ``[2, E]``, sorted by receiver."""
        valid = self.neighbors >= 0
        receivers = torch.arange(self.num_nodes)[:, None].expand_as(self.neighbors)
        return torch.stack([self.neighbors[valid], receivers[valid]])


def sample_neighbors(
    table: NeighborTable,
    nodes: torch.Tensor,
    fanout: int | None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``fanout`` incoming neighbours of each of ``nodes``, without replacement.

    Returns the sampled edges as ``(senders, receivers)`` in global indices. ``fanout=None`` or
    ``fanout >= table.max_degree`` keeps every neighbour.
    """
    rows = table.neighbors[nodes]
    valid = rows >= 0
    if fanout is not None and fanout < table.max_degree:
        if fanout < 1:
            raise GraphError(f"fanouts must be positive (or None for all), got {fanout}")
        keys = torch.rand(rows.shape, generator=generator)
        keys = keys.masked_fill(~valid, 2.0)
        pick = torch.topk(keys, fanout, dim=1, largest=False).indices
        rows, valid = torch.gather(rows, 1, pick), torch.gather(valid, 1, pick)
    receivers = nodes[:, None].expand_as(rows)
    return rows[valid], receivers[valid]


def sample_subgraph(
    table: NeighborTable,
    seeds: torch.Tensor,
    fanouts: Sequence[int | None],
    *,
    generator: torch.Generator | None = None,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> Any:
    """The sampled ``len(fanouts)``-hop subgraph around ``seeds`` (see the module docstring).

    Parameters
    ----------
    table : NeighborTable
    seeds : LongTensor of shape (batch_size,)
        Distinct node indices.
    fanouts : sequence of int or None
        Neighbours sampled per node at each hop (``None``: all).
    generator : torch.Generator, optional
    x, y : tensor, optional
        Node features and labels of the whole graph; the subgraph gets ``x[n_id]``, ``y[n_id]``.

    Returns
    -------
    Data
        ``n_id`` (global indices, seeds first), ``edge_index`` (local), ``batch_size``.

    Examples
    --------
    >>> import torch
    >>> table = NeighborTable.from_edge_index(torch.tensor([[1, 2, 0], [0, 1, 2]]), 3)
    >>> batch = sample_subgraph(table, torch.tensor([0]), [None, None])
    >>> batch.n_id.tolist(), batch.edge_index.tolist()
    ([0, 1, 2], [[1, 2], [0, 1]])
    """
    from torch_geometric.data import Data

    seeds = torch.as_tensor(seeds, dtype=torch.long).cpu()
    if seeds.dim() != 1 or len(seeds) == 0:
        raise GraphError("seeds must be a non-empty 1-D tensor of node indices")
    if int(seeds.min()) < 0 or int(seeds.max()) >= table.num_nodes:
        raise GraphError(f"seeds must lie in [0, {table.num_nodes})")
    known = torch.unique(seeds)
    if len(known) != len(seeds):
        raise GraphError("seeds repeat; pass each node once")
    parts, senders, receivers = [seeds], [], []
    frontier = seeds
    for fanout in fanouts:
        if len(frontier) == 0:
            break
        src, dst = sample_neighbors(table, frontier, fanout, generator)
        senders.append(src)
        receivers.append(dst)
        reached = torch.unique(src)
        new = reached[~torch.isin(reached, known)]
        parts.append(new)
        known = torch.sort(torch.cat([known, new])).values
        frontier = new
    n_id = torch.cat(parts)
    src = torch.cat(senders) if senders else torch.zeros(0, dtype=torch.long)
    dst = torch.cat(receivers) if receivers else torch.zeros(0, dtype=torch.long)
    sorted_ids, perm = torch.sort(n_id)
    local = torch.stack(
        [perm[torch.searchsorted(sorted_ids, src)], perm[torch.searchsorted(sorted_ids, dst)]]
    )
    batch = Data(edge_index=local, n_id=n_id, num_nodes=len(n_id))
    batch.batch_size = len(seeds)
    if x is not None:
        batch.x = x[n_id.to(x.device)]
    if y is not None:
        batch.y = y[n_id.to(y.device)]
    return batch


def iter_subgraphs(
    table: NeighborTable,
    nodes: torch.Tensor,
    fanouts: Sequence[int | None],
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> Iterator[Any]:
    """Mini-batches over ``nodes``: ``batch_size`` seeds each, as :func:`sample_subgraph`."""
    nodes = torch.as_tensor(nodes, dtype=torch.long).cpu()
    if shuffle:
        nodes = nodes[torch.randperm(len(nodes), generator=generator)]
    for start in range(0, len(nodes), batch_size):
        yield sample_subgraph(
            table, nodes[start : start + batch_size], fanouts, generator=generator, x=x, y=y
        )
