"""Graph checks: one place that says what a usable record graph is, with clear errors.

A record graph is a PyG :class:`~torch_geometric.data.Data` (or, for record–code graphs,
:class:`~torch_geometric.data.HeteroData`) whose

* node count is positive (an empty graph is an error),
* node features, when present, are finite (NaN or inf is an error naming the first rows),
* ``edge_index`` is an integer tensor of shape ``[2, num_edges]`` with every index in
  ``[0, num_nodes)`` (out-of-range indices are an error),
* isolated nodes (no incoming edge, so nothing to aggregate) are handled by ``isolated``:
  ``"error"`` raises, ``"self_loops"`` adds a self-loop to each of them (the node then
  aggregates its own features only), ``"allow"`` keeps them (a mean aggregation over no
  neighbours is zero in PyG).

PyG's own ``validate(raise_on_error=True)`` runs last; its ``ValueError`` becomes a
:class:`~graphxfer.exceptions.GraphError`.
"""

from __future__ import annotations

from typing import Any

import torch

from graphxfer.exceptions import GraphError

__all__ = ["ISOLATED_POLICIES", "check_edge_index", "isolated_nodes", "validate_graph"]

ISOLATED_POLICIES = ("error", "self_loops", "allow")


def check_edge_index(edge_index: Any, num_nodes: int, *, name: str = "edge_index") -> torch.Tensor:
    """``edge_index`` as an int64 ``[2, E]`` tensor with every index in ``[0, num_nodes)``."""
    if not isinstance(edge_index, torch.Tensor):
        try:
            edge_index = torch.as_tensor(edge_index)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise GraphError(f"{name} must be an integer tensor of shape [2, E]: {exc}") from exc
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise GraphError(f"{name} must hold integer node indices, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise GraphError(f"{name} must have shape [2, num_edges], got {tuple(edge_index.shape)}")
    edge_index = edge_index.to(torch.long)
    if edge_index.numel() > 0:
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            bad = ((edge_index < 0) | (edge_index >= num_nodes)).any(dim=0)
            first = torch.nonzero(bad).flatten()[:5].tolist()
            raise GraphError(
                f"{name} refers to nodes outside [0, {num_nodes}) (indices from {low} to {high}; "
                f"first bad edges {first}); the graph has {num_nodes} nodes"
            )
    return edge_index


def isolated_nodes(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Indices of the nodes without an incoming edge (``edge_index[1]`` is the receiver)."""
    has_in = torch.zeros(num_nodes, dtype=torch.bool)
    has_in[edge_index[1].cpu()] = True
    return torch.nonzero(~has_in).flatten()


def validate_graph(data: Any, *, isolated: str = "error", name: str = "graph") -> Any:
    """Check a record graph and return it (a copy, when isolated nodes get self-loops).

    Parameters
    ----------
    data : torch_geometric.data.Data or HeteroData
        The graph. ``edge_index[0]`` holds message senders, ``edge_index[1]`` receivers.
    isolated : {"error", "self_loops", "allow"}, default="error"
        What to do with nodes that receive no edge (see the module docstring). For
        ``HeteroData`` only ``"error"`` and ``"allow"`` are meaningful; node types that receive
        no edge type at all are not checked.
    name : str
        Used in error messages.

    Returns
    -------
    Data or HeteroData

    Raises
    ------
    GraphError
        Empty graph, non-finite features, malformed or out-of-range edges, isolated nodes with
        ``isolated="error"``, or anything PyG's ``validate`` rejects.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> g = Data(x=torch.zeros(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> validate_graph(g, isolated="self_loops").edge_index.tolist()
    [[0, 1, 0], [1, 2, 0]]
    """
    from torch_geometric.data import Data, HeteroData

    if isolated not in ISOLATED_POLICIES:
        raise GraphError(f"isolated={isolated!r} is not one of {ISOLATED_POLICIES}")
    if isinstance(data, HeteroData):
        return _validate_hetero(data, isolated=isolated, name=name)
    if not isinstance(data, Data):
        raise GraphError(f"{name} must be a torch_geometric Data object, got {type(data).__name__}")
    num_nodes = data.num_nodes
    if not num_nodes:
        raise GraphError(f"{name} is empty: it has no nodes; a record graph needs records")
    x = getattr(data, "x", None)
    if x is not None:
        _check_features(x, num_nodes, name=f"{name}.x")
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        raise GraphError(f"{name} has no edge_index")
    edge_index = check_edge_index(edge_index, num_nodes, name=f"{name}.edge_index")
    lonely = isolated_nodes(edge_index, num_nodes)
    if len(lonely) > 0:
        if isolated == "error":
            what = "has no edges at all" if edge_index.shape[1] == 0 else "has isolated nodes"
            raise GraphError(
                f"{name} {what}: {len(lonely)} of {num_nodes} nodes receive no edge (first "
                f"{lonely[:5].tolist()}); pass isolated='self_loops' to give each a self-loop, "
                "isolated='allow' to keep them, or raise k / max_degree when building the graph"
            )
        if isolated == "self_loops":
            loops = lonely.to(edge_index.device).repeat(2, 1)
            edge_index = torch.cat([edge_index, loops], dim=1)
    if edge_index is not data.edge_index:
        data = data.clone()
        data.edge_index = edge_index
    _pyg_validate(data, name)
    return data


def _validate_hetero(data: Any, *, isolated: str, name: str) -> Any:
    if not data.node_types:
        raise GraphError(f"{name} is empty: it has no node types")
    for node_type in data.node_types:
        store = data[node_type]
        n = store.num_nodes
        if not n:
            raise GraphError(f"{name}: node type {node_type!r} has no nodes")
        x = getattr(store, "x", None)
        if x is not None:
            _check_features(x, n, name=f"{name}[{node_type!r}].x")
    if not data.edge_types:
        raise GraphError(f"{name} has no edge types: nothing links its nodes")
    receivers: dict[str, torch.Tensor] = {}
    for edge_type in data.edge_types:
        src, _, dst = edge_type
        ei = data[edge_type].edge_index
        n_src, n_dst = data[src].num_nodes, data[dst].num_nodes
        ei = check_edge_index(ei, max(n_src, n_dst), name=f"{name}[{edge_type}].edge_index")
        if ei.numel() and (int(ei[0].max()) >= n_src or int(ei[1].max()) >= n_dst):
            raise GraphError(
                f"{name}[{edge_type}]: indices exceed the {n_src} {src!r} or {n_dst} {dst!r} nodes"
            )
        seen = receivers.setdefault(dst, torch.zeros(n_dst, dtype=torch.bool))
        seen[ei[1].cpu()] = True
    if isolated == "error":
        for node_type, seen in receivers.items():
            if not bool(seen.all()):
                lonely = torch.nonzero(~seen).flatten()
                raise GraphError(
                    f"{name}: {len(lonely)} {node_type!r} nodes receive no edge (first "
                    f"{lonely[:5].tolist()}); pass isolated='allow' to keep them"
                )
    elif isolated == "self_loops":
        raise GraphError("isolated='self_loops' applies to record graphs (Data), not HeteroData")
    _pyg_validate(data, name)
    return data


def _check_features(x: Any, num_nodes: int, *, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise GraphError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.shape[0] != num_nodes:
        raise GraphError(f"{name} has {x.shape[0]} rows for {num_nodes} nodes")
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            rows = torch.nonzero(bad.reshape(x.shape[0], -1).any(dim=1)).flatten()
            raise GraphError(
                f"{name} holds NaN or inf for {len(rows)} nodes (first {rows[:5].tolist()}); "
                "featurize records with the source featurizer (it imputes and flags missing "
                "values) or impute them before building the graph"
            )


def _pyg_validate(data: Any, name: str) -> None:
    try:
        data.validate(raise_on_error=True)
    except ValueError as exc:
        raise GraphError(f"{name} failed PyG's validation: {exc}") from exc
