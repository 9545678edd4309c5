"""TabNet (pytorch-tabnet's encoder) made usable with per-record gradient clipping."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tabular._torch import column_key
from tabular.encoders._base import EncoderNetwork
from tabular.exceptions import EncoderError
from tabular.registry import ENCODERS

__all__ = ["TabNetNetwork"]

_NO_GHOST_BATCHES = 2**31 - 1  # virtual batch size above any physical batch


class _CategoricalEmbeddings(nn.Module):
    """One small ``nn.Embedding`` per categorical column, keyed by column name."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.tables = nn.ModuleDict()

    def add(self, columns: Sequence[str], cardinalities: dict[str, int]) -> None:
        for col in columns:
            self.tables[column_key(col)] = nn.Embedding(cardinalities[col], self.dim)

    def forward(self, categorical: torch.Tensor, j: int, key: str) -> torch.Tensor:
        return self.tables[key](categorical[:, j : j + 1]).squeeze(1)


def _dp_compatible(encoder: nn.Module) -> None:
    """Replace every batch-coupled layer of a pytorch-tabnet encoder, in place.

    * each ghost BatchNorm (``GBN``, a ``BatchNorm1d`` over virtual batches) becomes a
      ``LayerNorm`` of the same width: per-record normalisation, so no row sees another;
    * the input BatchNorm (``initial_bn``) becomes the identity: the featurizer already
      standardises the inputs with source statistics, and a per-row LayerNorm would mix the
      features of a record;
    * the group attention matrix becomes a non-persistent buffer, so it follows ``.to(device)``.
    """
    from pytorch_tabnet.tab_network import GBN

    encoder.initial_bn = nn.Identity()
    for module in list(encoder.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, GBN):
                setattr(module, child_name, nn.LayerNorm(child.input_dim))
    matrix = encoder.group_attention_matrix
    assert isinstance(matrix, torch.Tensor)
    del encoder.group_attention_matrix
    encoder.register_buffer("group_attention_matrix", matrix, persistent=False)
    leftover = [
        name
        for name, m in encoder.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    if leftover:  # a pytorch-tabnet version with other BatchNorm layers
        raise EncoderError(f"BatchNorm layers left in the TabNet encoder: {leftover}")


def _grow_inputs(layer: nn.Linear, k: int) -> None:
    """Append ``k`` zero input columns: the new inputs start with no effect."""
    w = layer.weight
    extra = torch.zeros(w.shape[0], k, dtype=w.dtype, device=w.device)
    layer.weight = nn.Parameter(torch.cat((w.detach(), extra), 1), requires_grad=w.requires_grad)
    layer.in_features += k


def _grow_outputs(layer: nn.Linear, k: int) -> None:
    """Append ``k`` output rows drawn like the existing ones' scale."""
    w = layer.weight
    scale = float(w.detach().std()) if w.numel() > 1 else 0.1
    extra = torch.randn(k, w.shape[1], dtype=w.dtype, device=w.device) * scale
    layer.weight = nn.Parameter(torch.cat((w.detach(), extra), 0), requires_grad=w.requires_grad)
    layer.out_features += k


def _grow_norm(norm: nn.LayerNorm, k: int) -> None:
    assert norm.weight is not None and norm.bias is not None
    w, b = norm.weight, norm.bias
    norm.weight = nn.Parameter(
        torch.cat((w.detach(), torch.ones(k, dtype=w.dtype, device=w.device))),
        requires_grad=w.requires_grad,
    )
    norm.bias = nn.Parameter(
        torch.cat((b.detach(), torch.zeros(k, dtype=b.dtype, device=b.device))),
        requires_grad=b.requires_grad,
    )
    norm.normalized_shape = (norm.normalized_shape[0] + k,)


@ENCODERS.register("tabnet")
class TabNetNetwork(EncoderNetwork):
    """pytorch-tabnet's ``TabNetEncoder``, without BatchNorm, over per-column input groups.

    The input vector holds, per column, ``(value, missing flag)`` for a numeric column or a
    ``cat_emb_dim``-dimensional embedding for a categorical one; TabNet's attention works on
    *groups* (one group per column, through pytorch-tabnet's ``group_attention_matrix``), so
    its masks are per-column attention (:meth:`masks`). The embedding is the sum of the
    decision steps' ReLU outputs (size ``n_d``), as in TabNet.

    Made compatible with per-record gradient clipping: every ghost BatchNorm is a LayerNorm,
    the input BatchNorm is removed, the virtual batch size is above any physical batch, and
    ``n_shared=0`` (shared GLU layers break Opacus' ``functorch``/``ew`` modes; the
    ``hooks`` mode runs with them but computes wrong per-record gradients for layers used
    several times per forward pass, so shared layers are refused).

    Absent columns enter as zeros, so they carry no information; added columns get
    zero-initialised input weights and new attention groups.

    Parameters
    ----------
    numeric_columns, categorical_columns : sequence of str
    cardinalities : dict of str to int
    n_d, n_a : int, default=16
        Sizes of the decision and attention parts of each step (``n_d`` is the embedding size).
    n_steps : int, default=3
    gamma : float, default=1.3
        Attention relaxation (feature re-use across steps).
    n_independent : int, default=2
        Step-specific GLU layers.
    n_shared : int, default=0
        GLU layers shared across steps; only 0 is accepted (kept for pytorch-tabnet parity).
    cat_emb_dim : int, default=3
        Embedding size of each categorical column.
    mask_type : {"sparsemax", "entmax"}, default="sparsemax"
    absent : iterable of str, default=()
    input_order : sequence of str, optional
        Order of the columns in the input vector (set when columns are added; leave unset).

    Shapes
    ------
    numeric, missing : (n, n_numeric); categorical : (n, n_categorical) -> (n, n_d)
    """

    name = "tabnet"

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        *,
        n_d: int = 16,
        n_a: int = 16,
        n_steps: int = 3,
        gamma: float = 1.3,
        n_independent: int = 2,
        n_shared: int = 0,
        cat_emb_dim: int = 3,
        mask_type: str = "sparsemax",
        absent: Iterable[str] = (),
        input_order: Sequence[str] | None = None,
    ) -> None:
        super().__init__(numeric_columns, categorical_columns, cardinalities, absent=absent)
        from pytorch_tabnet.tab_network import TabNetEncoder

        if min(n_d, n_a, n_steps, cat_emb_dim) < 1:
            raise EncoderError("n_d, n_a, n_steps and cat_emb_dim must be at least 1")
        if n_shared != 0:
            raise EncoderError(
                f"n_shared={n_shared}: GLU layers shared across steps run several times per "
                "forward pass, and per-record gradients of such layers are wrong under Opacus' "
                "hooks mode (and fail under functorch / expanded weights), which would void the "
                "privacy guarantee; use n_shared=0 and raise n_independent instead"
            )
        if n_independent < 1:
            raise EncoderError(f"n_independent must be at least 1, got {n_independent}")
        if mask_type not in ("sparsemax", "entmax"):
            raise EncoderError(f"mask_type must be 'sparsemax' or 'entmax', got {mask_type!r}")
        order = list(input_order) if input_order is not None else self.column_names
        if sorted(order) != sorted(self.column_names):
            raise EncoderError(
                f"input_order {order} must list exactly the input columns {self.column_names}"
            )
        self.input_order = order
        self._params = {
            "n_d": int(n_d),
            "n_a": int(n_a),
            "n_steps": int(n_steps),
            "gamma": float(gamma),
            "n_independent": int(n_independent),
            "n_shared": int(n_shared),
            "cat_emb_dim": int(cat_emb_dim),
            "mask_type": mask_type,
        }
        self.out_dim = int(n_d)
        self.embeddings = _CategoricalEmbeddings(cat_emb_dim)
        self.embeddings.add(self.categorical_columns, self.cardinalities)
        groups = self._group_matrix()
        self.encoder = TabNetEncoder(
            input_dim=groups.shape[1],
            output_dim=n_d,
            n_d=n_d,
            n_a=n_a,
            n_steps=n_steps,
            gamma=gamma,
            n_independent=n_independent,
            n_shared=n_shared,
            virtual_batch_size=_NO_GHOST_BATCHES,
            mask_type=mask_type,
            group_attention_matrix=groups,
        )
        _dp_compatible(self.encoder)
        # a plain list, so the step containers are not registered twice in the state dict
        self._steps = [
            nn.ModuleList([att, feat])
            for att, feat in zip(self.encoder.att_transformers, self.encoder.feat_transformers)
        ]
        self._layout_changed()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "input_order": list(self.input_order)}

    # ------------------------------------------------------------------ layout
    def _width(self, column: str) -> int:
        return 2 if column in self.numeric_columns else self._params["cat_emb_dim"]

    def _group_matrix(self) -> torch.Tensor:
        """``(n_columns, input_dim)``: row g spreads weight ``1/width`` over column g's inputs."""
        widths = [self._width(c) for c in self.input_order]
        matrix = torch.zeros(len(widths), sum(widths))
        start = 0
        for g, w in enumerate(widths):
            matrix[g, start : start + w] = 1.0 / w
            start += w
        return matrix

    def _layout_changed(self) -> None:
        absent = set(self.absent)
        numeric_pos = {c: j for j, c in enumerate(self.numeric_columns)}
        categorical_pos = {c: j for j, c in enumerate(self.categorical_columns)}
        self._plan = [
            (
                c in numeric_pos,
                numeric_pos[c] if c in numeric_pos else categorical_pos[c],
                column_key(c),
                self._width(c),
                c in absent,
            )
            for c in self.input_order
        ]
        if hasattr(self, "encoder"):
            device = self.encoder.group_attention_matrix.device
            groups = self._group_matrix().to(device)
            self.encoder.group_attention_matrix = groups
            self._indicator = (groups > 0).to(groups.dtype).T.contiguous()

    @property
    def blocks(self) -> list[nn.Module]:
        """``[categorical embeddings, initial splitter, step_1, ..., step_S]``.

        Each step holds its attentive and feature transformers.
        """
        return [self.embeddings, self.encoder.initial_splitter, *self._steps]

    def _grow(
        self, numeric: list[str], categorical: list[str], cardinalities: dict[str, int]
    ) -> None:
        from pytorch_tabnet.tab_network import GLU_Block

        self.embeddings.add(categorical, cardinalities)
        k = 2 * len(numeric) + self._params["cat_emb_dim"] * len(categorical)
        g = len(numeric) + len(categorical)
        enc = self.encoder
        first: dict[int, nn.Linear] = {}
        for ft in [enc.initial_splitter, *enc.feat_transformers]:
            block = ft.shared if isinstance(ft.shared, GLU_Block) else ft.specifics
            fc = block.glu_layers[0].fc
            first[id(fc)] = fc
        for fc in first.values():
            _grow_inputs(fc, k)
        for att in enc.att_transformers:
            _grow_outputs(att.fc, g)
            _grow_norm(att.bn, g)
        enc.input_dim += k
        enc.attention_dim += g
        self.input_order = [*self.input_order, *numeric, *categorical]

    # ------------------------------------------------------------------ forward
    def _inputs(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        m = missing.to(numeric.dtype)
        x = numeric * (1.0 - m)
        parts = []
        for is_numeric, j, key, width, absent in self._plan:
            if absent:
                parts.append(numeric.new_zeros((numeric.shape[0], width)))
            elif is_numeric:
                parts.append(torch.stack((x[:, j], m[:, j]), dim=1))
            else:
                parts.append(self.embeddings(categorical, j, key))
        return torch.cat(parts, dim=1)

    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Embed records; see the class docstring for shapes."""
        self._check_inputs(numeric, missing, categorical)
        steps, _ = self.encoder(self._inputs(numeric, missing, categorical))
        return torch.stack(steps, dim=0).sum(dim=0)

    def masks(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """TabNet's attention per column, like pytorch-tabnet's ``explain``.

        Returns
        -------
        importance : Tensor of shape (n, n_columns)
            Attention of each step weighted by the step's decision magnitude, summed over
            steps (pytorch-tabnet's ``M_explain``), per column in :attr:`input_order`.
        steps : list of Tensor of shape (n, n_columns)
            The attention mask of each step (rows sum to 1).
        """
        self._check_inputs(numeric, missing, categorical)
        explain, step_masks = self.encoder.forward_masks(
            self._inputs(numeric, missing, categorical)
        )
        ind = self._indicator.to(explain.device)
        return explain @ ind, [step_masks[s] @ ind for s in sorted(step_masks)]
