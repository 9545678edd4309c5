"""GNN encoder networks on PyG layers: GraphSAGE, GAT and GIN.

Every network has the same shape:

``input``
    ``Linear(in_channels, hidden) -> LayerNorm -> activation`` applied to each record's dense
    features (the layer-0 representation ``h0``);
``layers[l]``
    ``conv -> LayerNorm -> activation`` over the graph, ``l = 0 .. layers-1``, giving ``h1 ..
    hL``; ``hL`` is the embedding.

Normalisation is per record (``LayerNorm``), never ``BatchNorm``: batch statistics would mix
records, which per-record differential privacy cannot allow. No dropout either, so that training
randomness comes only from explicit generators.

The convolutions:

* ``graphsage`` — :class:`~torch_geometric.nn.conv.SAGEConv` with mean aggregation:
  ``W_neigh · mean_j h_j + W_self · h_i``;
* ``gat`` — :class:`~torch_geometric.nn.conv.GATConv` with ``heads`` attention heads of
  ``hidden // heads`` channels, concatenated; every node also attends to itself (self-loops
  are added explicitly so that they are right on bipartite mini-batch blocks too);
* ``gin`` — :class:`~torch_geometric.nn.conv.GINConv` with a trainable epsilon and the MLP
  ``Linear -> LayerNorm -> activation -> Linear``: ``MLP((1 + eps) · h_i + sum_j h_j)``.

The networks are registered in :data:`graphxfer.registry.GRAPH_NETWORKS` under those names
and share the interface of the tabular encoders: :meth:`GNNEncoder.config` /
:meth:`GNNEncoder.from_config` (JSON), :meth:`GNNEncoder.embed`, :meth:`GNNEncoder.to_state` /
:meth:`GNNEncoder.from_state` and :attr:`GNNEncoder.blocks` (ordered input to output).

Shapes:
    - **input:** node features ``(n, in_channels)``, ``edge_index`` ``(2, E)``
    - **output:** node embeddings ``(n, hidden)``
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from graphxfer.exceptions import GraphError
from graphxfer.graphs._utils import check_choice, check_positive_int, state_to_cpu
from graphxfer.graphs.sampling import NeighborTable
from graphxfer.registry import GRAPH_NETWORKS

__all__ = [
    "ACTIVATIONS",
    "GATEncoder",
    "GINEncoder",
    "GNNEncoder",
    "GraphConvBlock",
    "GraphSAGEEncoder",
    "MeanField",
    "graph_encoder_class",
    "make_activation",
]

ACTIVATIONS = ("relu", "elu", "gelu")
E = TypeVar("E", bound="GNNEncoder")


def graph_encoder_class(name: str) -> type[GNNEncoder]:
    """The graph encoder network registered in :data:`graphxfer.registry.GRAPH_NETWORKS`."""
    found = GRAPH_NETWORKS.get(name) if name in GRAPH_NETWORKS else None
    if found is None or not _is_graph_encoder(found):
        names = [n for n in GRAPH_NETWORKS if _is_graph_encoder(GRAPH_NETWORKS.get(n))]
        raise GraphError(f"{name!r} is not a graph encoder; choose one of {names}")
    return found


def _is_graph_encoder(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, GNNEncoder)


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``elu`` or ``gelu``)."""
    check_choice(name, "activation", ACTIVATIONS)
    return {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}[name]()


class GraphConvBlock(nn.Module):
    """One message-passing layer: ``conv -> LayerNorm -> activation``.

    Parameters
    ----------
    conv : MessagePassing
        A PyG convolution accepting ``(x_src, x_dst)`` pairs and ``size=``.
    hidden : int
        Output channels of ``conv``.
    activation : str
    self_loops : bool, default=False
        Replace the self-loops of every receiving node by exactly one (for GAT).
    plain : bool, default=False
        Leave out the normalisation and activation (a linear output layer, e.g. a decoder).
    """

    def __init__(
        self,
        conv: nn.Module,
        hidden: int,
        activation: str,
        *,
        self_loops: bool = False,
        plain: bool = False,
    ) -> None:
        super().__init__()
        self.conv = conv
        self.norm: nn.Module = nn.Identity() if plain else nn.LayerNorm(hidden)
        self.act: nn.Module = nn.Identity() if plain else make_activation(activation)
        self.self_loops = self_loops

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        *,
        x_dst: torch.Tensor | None = None,
        dst_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the layer.

        ``x`` holds the senders; the receivers are ``x_dst`` (default: ``x`` itself), and
        ``dst_index[i]`` is the row of ``x`` that receiver ``i`` is (needed for self-loops).
        ``edge_index[0]`` indexes ``x``, ``edge_index[1]`` the receivers.
        """
        if x_dst is None:
            x_dst = x
            if dst_index is None:
                dst_index = torch.arange(x.shape[0], device=x.device)
        if self.self_loops:
            if dst_index is None:
                raise GraphError("a layer with self-loops needs dst_index for bipartite input")
            src, dst = edge_index
            keep = src != dst_index[dst]
            receivers = torch.arange(x_dst.shape[0], device=edge_index.device)
            loops = torch.stack([dst_index.to(edge_index.device), receivers])
            edge_index = torch.cat([edge_index[:, keep], loops], dim=1)
        out = self.conv((x, x_dst), edge_index, size=(x.shape[0], x_dst.shape[0]))
        return self.act(self.norm(out))


class MeanField(nn.Module):
    """A message-passing layer rewritten for a node that only *receives* from ``k`` neighbours.

    Given a node's own representation ``h`` and the mean ``a`` of its ``k`` neighbours'
    representations, computes ``post(lin_self(h) + lin_neigh(a))`` followed by the layer's
    ``LayerNorm`` and activation. Built by :meth:`GNNEncoder.mean_field`; see there for how
    each convolution maps onto it. Only ``nn.Linear``, ``nn.LayerNorm`` and activations inside,
    so Opacus computes per-sample gradients for it.
    """

    def __init__(self, hidden: int, activation: str, *, gin_mlp: bool = False) -> None:
        super().__init__()
        self.lin_self = nn.Linear(hidden, hidden, bias=False)
        self.lin_neigh = nn.Linear(hidden, hidden)
        self.post: nn.Module
        if gin_mlp:
            self.post = nn.Sequential(
                nn.LayerNorm(hidden), make_activation(activation), nn.Linear(hidden, hidden)
            )
        else:
            self.post = nn.Identity()
        self.norm = nn.LayerNorm(hidden)
        self.act = make_activation(activation)

    def forward(self, h: torch.Tensor, agg: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.post(self.lin_self(h) + self.lin_neigh(agg))))


class GNNEncoder(nn.Module):
    """Base class of the GNN encoder networks (see the module docstring).

    Parameters
    ----------
    in_channels : int
        Width of the dense node features.
    hidden : int, default=64
        Width of every representation and of the embedding.
    layers : int, default=2
        Number of message-passing layers.
    activation : {"relu", "elu", "gelu"}, default="relu"

    Attributes
    ----------
    out_dim : int
        Size of the embedding (``hidden``).
    """

    name: ClassVar[str] = ""
    mean_field_mlp: ClassVar[bool] = False
    """Whether :meth:`mean_field` layers end in the rest of an MLP (``MeanField.post``)."""

    def __init__(
        self, in_channels: int, *, hidden: int = 64, layers: int = 2, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.hidden = check_positive_int(hidden, "hidden")
        self.num_layers = check_positive_int(layers, "layers")
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.out_dim = self.hidden
        self.input = nn.Sequential(
            nn.Linear(self.in_channels, self.hidden),
            nn.LayerNorm(self.hidden),
            make_activation(activation),
        )
        self.layers = nn.ModuleList(
            GraphConvBlock(
                self._make_conv(self.hidden, self.hidden),
                self.hidden,
                activation,
                self_loops=self._self_loops,
            )
            for _ in range(self.num_layers)
        )

    _self_loops: ClassVar[bool] = False

    # ------------------------------------------------------------------ subclass hooks
    def _make_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        raise NotImplementedError

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def make_decoder(self, in_channels: int, out_channels: int) -> GraphConvBlock:
        """A fresh, plain (no norm, no activation) layer of this network's kind.

        Used as the GraphMAE decoder, which maps embeddings back to the input features.
        """
        return GraphConvBlock(
            self._make_conv(in_channels, out_channels),
            out_channels,
            self.activation,
            self_loops=self._self_loops,
            plain=True,
        )

    def mean_field(self, layer: int, degree: int) -> MeanField:
        """Layer ``layer`` as a :class:`MeanField` for a node receiving from ``degree`` nodes."""
        raise NotImplementedError

    def _block(self, layer: int) -> GraphConvBlock:
        block = self.layers[layer]
        assert isinstance(block, GraphConvBlock)
        return block

    # ------------------------------------------------------------------ forward
    @property
    def blocks(self) -> list[nn.Module]:
        """The stages, ordered input to output; each parameter is in exactly one."""
        return [self.input, *self.layers]

    def layer_outputs(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[torch.Tensor]:
        """``[h0, h1, ..., hL]`` over the whole graph."""
        self._check_input(x)
        h = self.input(x)
        outs = [h]
        for block in self.layers:
            h = block(h, edge_index)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Node embeddings ``(n, hidden)`` of the graph ``(x, edge_index)``."""
        return self.layer_outputs(x, edge_index)[-1]

    @torch.no_grad()
    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Embeddings in evaluation mode, without gradients."""
        was_training = self.training
        self.eval()
        try:
            return self(x, edge_index)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def layerwise(
        self, x: torch.Tensor, table: NeighborTable, *, chunk_size: int = 4096
    ) -> list[torch.Tensor]:
        """``[h0, ..., hL]`` for every node, one layer at a time over chunks of receivers.

        Each layer visits every edge once (no neighbourhood explosion), so memory is linear in
        the graph. The result equals :meth:`layer_outputs` up to float rounding.
        """
        self._check_input(x)
        was_training = self.training
        self.eval()
        try:
            h = self.input(x)
            outs = [h]
            n = x.shape[0]
            for block in self.layers:
                new = torch.empty((n, self.hidden), dtype=h.dtype, device=h.device)
                for start in range(0, n, chunk_size):
                    stop = min(start + chunk_size, n)
                    rows = table.neighbors[start:stop]
                    valid = rows >= 0
                    local = torch.arange(stop - start)[:, None].expand_as(rows)
                    edges = torch.stack([rows[valid], local[valid]]).to(h.device)
                    dst = torch.arange(start, stop, device=h.device)
                    new[start:stop] = block(h, edges, x_dst=h[start:stop], dst_index=dst)
                h = new
                outs.append(h)
            return outs
        finally:
            self.train(was_training)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise GraphError(
                f"node features must have shape (n, {self.in_channels}), got {tuple(x.shape)}"
            )

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """JSON-ready description from which :meth:`from_config` rebuilds the network."""
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "hidden": self.hidden,
            "layers": self.num_layers,
            "activation": self.activation,
            **self._extra_config(),
        }

    @classmethod
    def from_config(cls: type[E], config: dict[str, Any]) -> E:
        """Rebuild an untrained network from :meth:`config` output (load weights afterwards)."""
        params = dict(config)
        name = params.pop("name", cls.name)
        target: type[Any] = cls
        if not cls.name:
            target = graph_encoder_class(name)
        elif name != cls.name:
            raise GraphError(f"config describes encoder {name!r}, not {cls.name!r}")
        try:
            in_channels = params.pop("in_channels")
            return target(in_channels, **params)
        except (KeyError, TypeError) as exc:
            raise GraphError(f"malformed config for graph encoder {name!r}: {exc}") from exc

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: CPU weights and the JSON config."""
        return state_to_cpu(self), {"config": self.config()}

    @classmethod
    def from_state(cls: type[E], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> E:
        """Rebuild a trained network from :meth:`to_state` output."""
        try:
            config = meta["config"]
        except (KeyError, TypeError) as exc:
            raise GraphError("malformed graph-encoder state: no 'config' in meta") from exc
        net = cls.from_config(config)
        try:
            net.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise GraphError(f"graph-encoder weights do not match its config: {exc}") from exc
        return net

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, hidden={self.hidden}, layers={self.num_layers}"


def _finish(field: MeanField, block: GraphConvBlock) -> MeanField:
    field.norm.load_state_dict(block.norm.state_dict())
    return field


@GRAPH_NETWORKS.register("graphsage")
class GraphSAGEEncoder(GNNEncoder):
    """GraphSAGE with mean aggregation (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> net = GraphSAGEEncoder(3, hidden=8)
    >>> net(torch.zeros(4, 3), torch.tensor([[0, 1], [1, 2]])).shape
    torch.Size([4, 8])
    """

    name: ClassVar[str] = "graphsage"

    def _make_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        from torch_geometric.nn import SAGEConv

        return SAGEConv(in_channels, out_channels, aggr="mean")

    def mean_field(self, layer: int, degree: int) -> MeanField:
        """Exact: ``lin_self = lin_r`` and ``lin_neigh = lin_l`` of the SAGE layer."""
        block = self._block(layer)
        conv: Any = block.conv
        field = MeanField(self.hidden, self.activation)
        with torch.no_grad():
            field.lin_self.weight.copy_(conv.lin_r.weight)
            field.lin_neigh.weight.copy_(conv.lin_l.weight)
            field.lin_neigh.bias.copy_(conv.lin_l.bias)
        return _finish(field, block)


@GRAPH_NETWORKS.register("gat")
class GATEncoder(GNNEncoder):
    """Graph attention with ``heads`` concatenated heads (see the module docstring).

    Parameters
    ----------
    heads : int, default=4
        Attention heads; ``hidden`` must be a multiple of it.
    """

    name: ClassVar[str] = "gat"
    _self_loops: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        activation: str = "relu",
        heads: int = 4,
    ) -> None:
        self.heads = check_positive_int(heads, "heads")
        if hidden % heads:
            raise GraphError(f"hidden={hidden} must be a multiple of heads={heads}")
        super().__init__(in_channels, hidden=hidden, layers=layers, activation=activation)

    def _make_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        from torch_geometric.nn import GATConv

        heads = self.heads if out_channels % self.heads == 0 else 1
        return GATConv(
            in_channels, out_channels // heads, heads=heads, concat=True, add_self_loops=False
        )

    def _extra_config(self) -> dict[str, Any]:
        return {"heads": self.heads}

    def mean_field(self, layer: int, degree: int) -> MeanField:
        """Approximate: attention taken as uniform over the ``degree`` neighbours and the node.

        ``out = W (degree · mean_j h_j + h_i) / (degree + 1) + b``, so ``lin_neigh`` is
        ``W · degree / (degree + 1)`` with the bias and ``lin_self`` is ``W / (degree + 1)``.
        Fine-tuning starts there; the attention weights themselves are not reproduced.
        """
        block = self._block(layer)
        conv: Any = block.conv
        w = conv.lin.weight
        field = MeanField(self.hidden, self.activation)
        with torch.no_grad():
            field.lin_self.weight.copy_(w / (degree + 1))
            field.lin_neigh.weight.copy_(w * degree / (degree + 1))
            field.lin_neigh.bias.copy_(conv.bias)
        return _finish(field, block)


@GRAPH_NETWORKS.register("gin")
class GINEncoder(GNNEncoder):
    """Graph isomorphism network with a trainable epsilon (see the module docstring)."""

    name: ClassVar[str] = "gin"
    mean_field_mlp: ClassVar[bool] = True

    def _make_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        from torch_geometric.nn import GINConv

        mlp = nn.Sequential(
            nn.Linear(in_channels, out_channels),
            nn.LayerNorm(out_channels),
            make_activation(self.activation),
            nn.Linear(out_channels, out_channels),
        )
        return GINConv(mlp, train_eps=True)

    def mean_field(self, layer: int, degree: int) -> MeanField:
        """Exact for a node with ``degree`` neighbours: the sum is ``degree`` times the mean.

        With the MLP's first layer ``(W1, b1)``: ``lin_self = (1 + eps) · W1``,
        ``lin_neigh = degree · W1`` with bias ``b1``, and ``post`` the rest of the MLP.
        """
        block = self._block(layer)
        conv: Any = block.conv
        first = conv.nn[0]
        field = MeanField(self.hidden, self.activation, gin_mlp=self.mean_field_mlp)
        with torch.no_grad():
            field.lin_self.weight.copy_((1.0 + conv.eps) * first.weight)
            field.lin_neigh.weight.copy_(degree * first.weight)
            field.lin_neigh.bias.copy_(first.bias)
        rest = nn.Sequential(*list(conv.nn.children())[1:])
        field.post.load_state_dict(rest.state_dict())
        return _finish(field, block)
