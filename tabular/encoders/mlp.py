"""Residual MLP over the featurizer output, with LayerNorm and dropout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from tabular.encoders._base import ColumnTokenizer, EncoderNetwork
from tabular.exceptions import EncoderError
from tabular.registry import ENCODERS

__all__ = ["ResidualMLP"]


class _ResidualBlock(nn.Module):
    """``x + dropout(W2 · dropout(GELU(W1 · LN(x))))``, optionally followed by a final LayerNorm."""

    def __init__(self, d: int, hidden: int, dropout: float, final_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d)
        )
        self.dropout = nn.Dropout(dropout)
        self.final_norm = nn.LayerNorm(d) if final_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.ffn(self.norm(x)))
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


@ENCODERS.register("mlp")
class ResidualMLP(EncoderNetwork):
    """Residual MLP whose first layer is stored per column.

    The first layer is a linear map of the featurizer output — standardised values, missing
    mask and one embedding per categorical column — written as a sum of per-column terms
    (:class:`~tabular.encoders.ColumnTokenizer` with ``d = width``). This is the same function
    as one ``nn.Linear`` over the concatenated inputs, but keyed by column name, so columns can
    be added (new terms, trained at the target) or declared absent (their terms are left out
    of the sum, so they carry no information). Residual pre-LayerNorm blocks follow; the
    embedding is the final LayerNorm of the last block.

    Parameters
    ----------
    numeric_columns, categorical_columns : sequence of str
    cardinalities : dict of str to int
    width : int, default=128
        Size of the hidden state (and of the embedding).
    n_blocks : int, default=2
        Residual blocks.
    expansion : float, default=2.0
        Hidden size inside a block, as a multiple of ``width``.
    dropout : float, default=0.1
    absent : iterable of str, default=()

    Shapes
    ------
    numeric, missing : (n, n_numeric); categorical : (n, n_categorical) -> (n, width)
    """

    name = "mlp"

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        *,
        width: int = 128,
        n_blocks: int = 2,
        expansion: float = 2.0,
        dropout: float = 0.1,
        absent: Iterable[str] = (),
    ) -> None:
        super().__init__(numeric_columns, categorical_columns, cardinalities, absent=absent)
        if width < 1 or n_blocks < 1:
            raise EncoderError("width and n_blocks must be at least 1")
        if not 0.0 <= dropout < 1.0:
            raise EncoderError(f"dropout must be in [0, 1), got {dropout}")
        self._params = {
            "width": int(width),
            "n_blocks": int(n_blocks),
            "expansion": float(expansion),
            "dropout": float(dropout),
        }
        self.out_dim = int(width)
        self.tokenizer = ColumnTokenizer(
            self.numeric_columns, self.categorical_columns, cardinalities, width
        )
        hidden = max(1, round(width * expansion))
        self.layers = nn.ModuleList(
            _ResidualBlock(width, hidden, dropout, final_norm=i == n_blocks - 1)
            for i in range(n_blocks)
        )
        self._layout_changed()

    @property
    def blocks(self) -> list[nn.Module]:
        """``[input layer, block_1, ..., block_B]``; the final LayerNorm is in the last block."""
        return [self.tokenizer, *self.layers]

    def _layout_changed(self) -> None:
        self._numeric_present, self._categorical_present = self._present()

    def _grow(
        self, numeric: list[str], categorical: list[str], cardinalities: dict[str, int]
    ) -> None:
        self.tokenizer.add(numeric, categorical, cardinalities)

    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Embed records; see the class docstring for shapes."""
        self._check_inputs(numeric, missing, categorical)
        terms = self.tokenizer(
            numeric, missing, categorical, self._numeric_present, self._categorical_present
        )
        x = terms.sum(dim=1)
        for layer in self.layers:
            x = layer(x)
        return x

    # ------------------------------------------------------------------ per-column inputs
    def column_groups(self) -> dict[str, list[int]]:
        """Positions of each present column's term in :meth:`column_inputs` output."""
        return self._column_blocks(self.out_dim)

    def column_inputs(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """The per-column terms of the first layer, flattened: one ``width`` vector per
        present column.

        Each column's term depends on that column's inputs only, and
        ``from_column_inputs(column_inputs(...))`` equals ``forward(...)``; explainers
        attribute to these inputs and sum them per column with :meth:`column_groups`.

        Shapes
        ------
        -> (n, n_present_columns * width)
        """
        self._check_inputs(numeric, missing, categorical)
        terms = self.tokenizer(
            numeric, missing, categorical, self._numeric_present, self._categorical_present
        )
        return terms.reshape(terms.shape[0], -1)

    def from_column_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The embedding from :meth:`column_inputs` output: the terms summed, then the blocks."""
        d = self.out_dim
        k = len(self._numeric_present) + len(self._categorical_present)
        if inputs.ndim != 2 or inputs.shape[1] != k * d:
            raise EncoderError(
                f"column inputs must have shape (n, {k * d}), got {tuple(inputs.shape)}"
            )
        x = inputs.reshape(inputs.shape[0], k, d).sum(dim=1)
        for layer in self.layers:
            x = layer(x)
        return x
