"""Feature-token transformer: one token per column plus [CLS], pre-LayerNorm attention blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tabular.encoders._base import ColumnTokenizer, EncoderNetwork
from tabular.exceptions import EncoderError
from tabular.registry import ENCODERS

__all__ = ["FTTransformer"]

_MISSING_MODES = ("token", "drop")


class _SelfAttention(nn.Module):
    """Multi-head self-attention built from ``nn.Linear`` layers (Opacus-compatible).

    Shapes: ``x`` (n, T, d), ``keep`` (n, T) bool or ``None`` -> (n, T, d).
    """

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, queries: int | None = None
    ) -> torch.Tensor:
        """``queries``: attend from the first ``queries`` tokens only (all when None); the
        output then has that many tokens, each equal to the full attention's output there."""
        n, t, d = x.shape
        h = self.n_heads
        q = t if queries is None else queries

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.view(n, z.shape[1], h, d // h).transpose(1, 2)

        mask = None if keep is None else keep[:, None, None, :]
        y = F.scaled_dot_product_attention(
            heads(self.query(x[:, :q])),
            heads(self.key(x)),
            heads(self.value(x)),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(n, q, d))


class _TransformerLayer(nn.Module):
    """Pre-LayerNorm block: ``x + attn(LN(x))``, then ``x + ffn(LN(x))``; optional final LN."""

    def __init__(
        self,
        d: int,
        n_heads: int,
        ffn_hidden: int,
        dropout: float,
        residual_dropout: float,
        final_norm: bool,
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d)
        self.attention = _SelfAttention(d, n_heads, dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, ffn_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_hidden, d)
        )
        self.residual_dropout = nn.Dropout(residual_dropout) if residual_dropout else None
        self.final_norm = nn.LayerNorm(d) if final_norm else None

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None, cls_only: bool = False
    ) -> torch.Tensor:
        """``cls_only``: compute the [CLS] token's output only (the last layer's only use),
        as the FT-Transformer does; the result has one token, equal to the full layer's."""
        attended = self.attention(self.attention_norm(x), keep, 1 if cls_only else None)
        if self.residual_dropout is not None:
            attended = self.residual_dropout(attended)
        x = (x[:, :1] if cls_only else x) + attended
        transformed = self.ffn(self.ffn_norm(x))
        if self.residual_dropout is not None:
            transformed = self.residual_dropout(transformed)
        x = x + transformed
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


class _FTInput(nn.Module):
    """Column tokens plus the [CLS] token (an ``nn.Embedding`` with one row)."""

    def __init__(self, tokenizer: ColumnTokenizer) -> None:
        super().__init__()
        self.columns = tokenizer
        self.cls = nn.Embedding(1, tokenizer.d)
        nn.init.uniform_(self.cls.weight, -(tokenizer.d**-0.5), tokenizer.d**-0.5)

    def forward(
        self,
        numeric: torch.Tensor,
        missing: torch.Tensor,
        categorical: torch.Tensor,
        numeric_present: Sequence[tuple[int, str]],
        categorical_present: Sequence[tuple[int, str]],
    ) -> torch.Tensor:
        tokens = self.columns(numeric, missing, categorical, numeric_present, categorical_present)
        zeros = torch.zeros(numeric.shape[0], 1, dtype=torch.long, device=numeric.device)
        return torch.cat((self.cls(zeros), tokens), dim=1)


@ENCODERS.register("ft-transformer")
class FTTransformer(EncoderNetwork):
    """Feature-token transformer with per-column tokens keyed by column name.

    Every column becomes a token (see :class:`~tabular.encoders.ColumnTokenizer`: numeric
    value × per-column weight + per-column bias, a learned per-column missing token where the
    value is missing, an embedding per categorical column); a learned [CLS] token is
    prepended; pre-LayerNorm transformer layers follow, and the embedding is the final
    LayerNorm of the [CLS] output. There is no BatchNorm and no operation across rows, so one
    record's embedding depends on that record only.

    **Columns the target lacks have no token.** Declared with :meth:`set_absent` (or by
    building the target encoder with ``TabularEncoder.with_columns``), they are left out of the
    sequence, so they carry no information at all. **Values missing in a record** use the
    column's missing token by default (``missing="token"``: missingness can be informative);
    with ``missing="drop"`` they are removed from attention with a key-padding mask instead.

    Parameters
    ----------
    numeric_columns, categorical_columns : sequence of str
        Input layout (the featurizer's columns).
    cardinalities : dict of str to int
        Indices per categorical column.
    d_token : int, default=32
        Token size (and embedding size).
    n_layers : int, default=2
        Transformer layers.
    n_heads : int, default=4
        Attention heads; must divide ``d_token``.
    ffn_factor : float, default=2.0
        Hidden size of the feed-forward part, as a multiple of ``d_token``.
    dropout : float, default=0.1
        Dropout on attention weights and feed-forward activations.
    residual_dropout : float, default=0.0
        Dropout on the output of each attention and feed-forward branch before it joins the
        residual stream. Off by default, as in the FT-Transformer paper's baseline
        configuration (Gorishniy et al., 2021); every dropout costs random numbers per
        activation, a large share of a training step on the CPU.
    missing : {"token", "drop"}, default="token"
        How missing values of present columns enter (see above).
    absent : iterable of str, default=()
        Columns without a token.

    Shapes
    ------
    numeric, missing : (n, n_numeric); categorical : (n, n_categorical) -> (n, d_token)

    Examples
    --------
    >>> import torch
    >>> net = FTTransformer(["age"], ["cp"], {"cp": 5}, d_token=8, n_heads=2)
    >>> x = torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.bool), torch.ones(3, 1).long()
    >>> net(*x).shape
    torch.Size([3, 8])
    """

    name = "ft-transformer"

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        *,
        d_token: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        ffn_factor: float = 2.0,
        dropout: float = 0.1,
        residual_dropout: float = 0.0,
        missing: str = "token",
        absent: Iterable[str] = (),
    ) -> None:
        super().__init__(numeric_columns, categorical_columns, cardinalities, absent=absent)
        if d_token < 1 or n_layers < 1 or n_heads < 1:
            raise EncoderError("d_token, n_layers and n_heads must be at least 1")
        if d_token % n_heads:
            raise EncoderError(f"n_heads={n_heads} must divide d_token={d_token}")
        for name, rate in (("dropout", dropout), ("residual_dropout", residual_dropout)):
            if not 0.0 <= rate < 1.0:
                raise EncoderError(f"{name} must be in [0, 1), got {rate}")
        if missing not in _MISSING_MODES:
            raise EncoderError(f"missing must be one of {_MISSING_MODES}, got {missing!r}")
        self._params = {
            "d_token": int(d_token),
            "n_layers": int(n_layers),
            "n_heads": int(n_heads),
            "ffn_factor": float(ffn_factor),
            "dropout": float(dropout),
            "residual_dropout": float(residual_dropout),
            "missing": missing,
        }
        self.out_dim = int(d_token)
        self.missing = missing
        tokenizer = ColumnTokenizer(
            self.numeric_columns, self.categorical_columns, cardinalities, d_token
        )
        self.tokenizer = _FTInput(tokenizer)
        ffn_hidden = max(1, round(d_token * ffn_factor))
        self.layers = nn.ModuleList(
            _TransformerLayer(
                d_token,
                n_heads,
                ffn_hidden,
                dropout,
                residual_dropout,
                final_norm=i == n_layers - 1,
            )
            for i in range(n_layers)
        )
        self._layout_changed()

    @property
    def blocks(self) -> list[nn.Module]:
        """``[tokenizer, layer_1, ..., layer_L]``; the final LayerNorm is in the last layer."""
        return [self.tokenizer, *self.layers]

    def _layout_changed(self) -> None:
        self._numeric_present, self._categorical_present = self._present()

    def _grow(
        self, numeric: list[str], categorical: list[str], cardinalities: dict[str, int]
    ) -> None:
        self.tokenizer.columns.add(numeric, categorical, cardinalities)

    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Embed records; see the class docstring for shapes."""
        self._check_inputs(numeric, missing, categorical)
        num_present, cat_present = self._numeric_present, self._categorical_present
        x = self.tokenizer(numeric, missing, categorical, num_present, cat_present)
        keep = None
        if self.missing == "drop":
            observed = [~missing[:, j] for j, _ in num_present]
            observed += [categorical[:, j] != 0 for j, _ in cat_present]
            cls = torch.ones(numeric.shape[0], 1, dtype=torch.bool, device=numeric.device)
            keep = torch.cat([cls, *(o.unsqueeze(1) for o in observed)], dim=1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, keep, cls_only=i == last)
        return x[:, 0]

    # ------------------------------------------------------------------ per-column inputs
    def column_groups(self) -> dict[str, list[int]]:
        """Positions of each present column's token in :meth:`column_inputs` output."""
        return self._column_blocks(self.out_dim)

    def column_inputs(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """The column tokens, flattened: one ``d_token`` vector per present column.

        Each column's token depends on that column's inputs only. With ``missing="token"``,
        ``from_column_inputs(column_inputs(...))`` equals ``forward(...)``; explainers
        attribute to these inputs and sum them per column with :meth:`column_groups`.

        Shapes
        ------
        -> (n, n_present_columns * d_token)
        """
        self._check_inputs(numeric, missing, categorical)
        tokens = self.tokenizer.columns(
            numeric, missing, categorical, self._numeric_present, self._categorical_present
        )
        return tokens.reshape(tokens.shape[0], -1)

    def from_column_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The embedding from :meth:`column_inputs` output: [CLS] + tokens through the layers.

        Raises
        ------
        EncoderError
            With ``missing="drop"``, whose attention mask comes from the missing flags rather
            than from the tokens; or when ``inputs`` does not have the layout's width.
        """
        if self.missing == "drop":
            raise EncoderError(
                "with missing='drop' the attention mask comes from the missing flags, which "
                "the column tokens do not carry; call the network on its inputs instead"
            )
        d = self.out_dim
        k = len(self._numeric_present) + len(self._categorical_present)
        if inputs.ndim != 2 or inputs.shape[1] != k * d:
            raise EncoderError(
                f"column inputs must have shape (n, {k * d}), got {tuple(inputs.shape)}"
            )
        n = inputs.shape[0]
        zeros = torch.zeros(n, 1, dtype=torch.long, device=inputs.device)
        cls = self.tokenizer.cls(zeros).to(inputs.dtype)
        x = torch.cat((cls, inputs.reshape(n, k, d)), dim=1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, None, cls_only=i == last)
        return x[:, 0]
