"""Attaching target records to the source graph, one row per record.

The privacy unit is one target record (DESIGN.md §4). Message passing over target records
would make one record's representation depend on other target records, and Opacus's
per-sample clipping would then bound nothing. So a target record joins the *source* graph as a
new node with edges **from its k nearest source records only** — never to or from another
target record — and everything the fine-tuned model sees about it is one row:

``[own features | mean of the k neighbours' h0 | ... | their mean h(L-1) | their label mean]``

* the neighbours are found with the :class:`~graphxfer.graphs.KNNIndex` built on the source;
  a query row's neighbours depend on that row only;
* ``h0 .. h(L-1)`` are the layer inputs of the frozen, pretrained GNN over the source graph,
  computed once (the source nodes receive no edge from targets, so attaching changes none of
  them);
* the optional last column is the mean source outcome of the k neighbours (public source data).

Hence each row is a function of the record's own features and public source data, and each
record contributes exactly one row: the rows can be fed to Opacus with Poisson sampling and
per-sample clipping, and removing or changing one target record leaves every other row — and
every other prediction — unchanged.

:class:`GraphAttachedClassifier` is the module fine-tuned on those rows. Its ``blocks`` replay the
GNN for the attached node: ``blocks[0]`` is the GNN's input layer applied to the own features
(``h0``), and ``blocks[l + 1]`` is GNN layer ``l`` rewritten for a node that only receives,
``post(lin_self(h_l) + lin_neigh(mean of the neighbours' h_l))`` (a :class:`MeanField`). For
GraphSAGE and GIN this reproduces the pretrained GNN's embedding of the attached node exactly
(GIN's sum is ``k`` times the mean, every attached node having exactly ``k`` neighbours); for GAT
the attention is replaced by uniform weights over the neighbours and the node itself, as the
starting point of fine-tuning. ``head`` maps ``[hL, label mean]`` to one logit. Inside there are
only ``Linear``, ``LayerNorm`` and activations — no ``BatchNorm``, no message passing — so Opacus
validates it and computes exact per-record gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from graphxfer.exceptions import GraphError
from graphxfer.graphs._utils import check_choice, check_positive_int, state_to_cpu
from graphxfer.graphs.encoders import ACTIVATIONS, MeanField, graph_encoder_class, make_activation

__all__ = ["EVAL_BLOCK", "AttachLayout", "GraphAttachedClassifier"]

EVAL_BLOCK = 64
"""Rows per zero-padded block when a :class:`GraphAttachedClassifier` evaluates."""


@dataclass(frozen=True)
class AttachLayout:
    """Column layout of attached rows.

    Attributes
    ----------
    own : int
        Width of the record's own dense features.
    hidden : int
        Width of each aggregated neighbour block.
    layers : int
        Number of aggregated blocks (one per GNN layer).
    label_mean : bool
        Whether the last column is the neighbours' mean source outcome.
    """

    own: int
    hidden: int
    layers: int
    label_mean: bool

    @property
    def width(self) -> int:
        """Total row width."""
        return self.own + self.layers * self.hidden + int(self.label_mean)

    @property
    def own_slice(self) -> slice:
        return slice(0, self.own)

    def neighbor_slice(self, layer: int) -> slice:
        """Columns of the mean neighbour representation that enters GNN layer ``layer``."""
        start = self.own + layer * self.hidden
        return slice(start, start + self.hidden)

    @property
    def label_slice(self) -> slice:
        end = self.width
        return slice(end - int(self.label_mean), end)

    def column_names(self, feature_names: list[str] | None = None) -> list[str]:
        """A name for every column (``own:<feature>``, ``nbr<l>:<j>``, ``nbr:label_mean``)."""
        own = feature_names if feature_names is not None else [str(j) for j in range(self.own)]
        names = [f"own:{n}" for n in own]
        for layer in range(self.layers):
            names += [f"nbr{layer}:{j}" for j in range(self.hidden)]
        if self.label_mean:
            names.append("nbr:label_mean")
        return names


class GraphAttachedClassifier(nn.Module):
    """Per-record classifier over attached rows (see the module docstring).

    Parameters
    ----------
    own_dim : int
        Width of the own dense features.
    hidden : int, default=64
    layers : int, default=2
    kind : str, default="graphsage"
        The registered graph encoder it mirrors (``graphsage``, ``gat``, ``gin``...); the
        layers of GIN carry the rest of the GIN MLP as ``post``.
    activation : {"relu", "elu", "gelu"}, default="relu"
    label_mean : bool, default=True
        Whether rows end with the neighbours' mean outcome (an extra input of ``head``).

    Attributes
    ----------
    blocks : nn.ModuleList
        ``[input layer, MeanField(layer 0), ..., MeanField(layer L-1)]``, input to output.
    head : nn.Linear
        ``[hL, label mean] -> logit``.

    Shapes:
        - **input:** rows ``(batch, layout.width)`` from :meth:`GraphEncoder.attach`
        - **output:** logits ``(batch,)``

    Notes
    -----
    Each output row is a function of its input row only. Matrix-product kernels may still round
    a row differently depending on how many rows share the call, so in evaluation mode the rows
    are evaluated in zero-padded blocks of ``EVAL_BLOCK`` rows: a record's prediction is then
    bit-identical whatever other records are in the batch. In training mode (and so under
    Opacus) the batch is processed in one piece.

    Examples
    --------
    >>> import torch
    >>> clf = GraphAttachedClassifier(5, hidden=8, layers=2)
    >>> clf(torch.zeros(3, clf.layout.width)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        own_dim: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        kind: str = "graphsage",
        activation: str = "relu",
        label_mean: bool = True,
    ) -> None:
        super().__init__()
        self.layout = AttachLayout(
            check_positive_int(own_dim, "own_dim"),
            check_positive_int(hidden, "hidden"),
            check_positive_int(layers, "layers"),
            bool(label_mean),
        )
        network = graph_encoder_class(kind)
        self.kind = kind
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(own_dim, hidden), nn.LayerNorm(hidden), make_activation(activation)
                ),
                *(
                    MeanField(hidden, activation, gin_mlp=network.mean_field_mlp)
                    for _ in range(self.layout.layers)
                ),
            ]
        )
        self.head = nn.Linear(hidden + int(label_mean), 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()

    def _check(self, rows: torch.Tensor) -> None:
        if rows.dim() != 2 or rows.shape[1] != self.layout.width:
            raise GraphError(
                f"attached rows must have shape (n, {self.layout.width}), got {tuple(rows.shape)}; "
                "build them with GraphEncoder.attach using the same label_mean setting"
            )

    def _representation(self, rows: torch.Tensor) -> torch.Tensor:
        layout = self.layout
        h = self.blocks[0](rows[:, layout.own_slice])
        for layer, block in enumerate(self.blocks[1:]):
            h = block(h, rows[:, layout.neighbor_slice(layer)])
        return h

    def _logits(self, rows: torch.Tensor) -> torch.Tensor:
        h = self._representation(rows)
        if self.layout.label_mean:
            h = torch.cat([h, rows[:, self.layout.label_slice]], dim=1)
        return self.head(h).squeeze(-1)

    def representation(self, rows: torch.Tensor) -> torch.Tensor:
        """``hL`` of every row: the embedding of the attached record."""
        self._check(rows)
        if self.training:
            return self._representation(rows)
        return _blockwise(self._representation, rows)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """One logit per row (see the class notes on evaluation mode)."""
        self._check(rows)
        if self.training:
            return self._logits(rows)
        return _blockwise(self._logits, rows)

    @torch.no_grad()
    def embed(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`representation` in evaluation mode, without gradients."""
        was_training = self.training
        self.eval()
        try:
            return self.representation(rows)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """JSON-ready description from which :meth:`from_config` rebuilds the module."""
        return {
            "own_dim": self.layout.own,
            "hidden": self.layout.hidden,
            "layers": self.layout.layers,
            "kind": self.kind,
            "activation": self.activation,
            "label_mean": self.layout.label_mean,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GraphAttachedClassifier:
        params = dict(config)
        try:
            own_dim = params.pop("own_dim")
            return cls(own_dim, **params)
        except (KeyError, TypeError) as exc:
            raise GraphError(f"malformed attached-classifier config: {exc}") from exc

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: CPU weights and the JSON config."""
        return state_to_cpu(self), {"config": self.config()}

    @classmethod
    def from_state(
        cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
    ) -> GraphAttachedClassifier:
        try:
            clf = cls.from_config(meta["config"])
        except (KeyError, TypeError) as exc:
            raise GraphError("malformed attached-classifier state: no 'config' in meta") from exc
        try:
            clf.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise GraphError(f"attached-classifier weights do not match its config: {exc}") from exc
        return clf


def _blockwise(fn: Any, rows: torch.Tensor) -> torch.Tensor:
    """``fn`` over zero-padded blocks of ``EVAL_BLOCK`` rows, concatenated (see the notes)."""
    outs = []
    for start in range(0, rows.shape[0], EVAL_BLOCK):
        block = rows[start : start + EVAL_BLOCK]
        size = block.shape[0]
        if size < EVAL_BLOCK:
            block = torch.cat([block, block.new_zeros((EVAL_BLOCK - size, rows.shape[1]))])
        outs.append(fn(block)[:size])
    if not outs:
        return fn(rows)
    return torch.cat(outs)
