"""A binary classifier made of an encoder network and a small head, for fine-tuning."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tabular.encoders import EncoderNetwork, network_from_config
from tabular.exceptions import EncoderError

__all__ = ["EncoderClassifier"]


class EncoderClassifier(nn.Module):
    """Encoder network + head, returning one logit per record.

    This is the module that fine-tuning strategies train: a *linear probe* trains ``head``
    only, a *partial* fine-tune trains the last blocks of ``blocks`` and ``head``, a *full*
    fine-tune trains everything. It holds no BatchNorm and couples no rows, so per-record
    gradient clipping (Opacus) is valid for it.

    Parameters
    ----------
    network : EncoderNetwork
        A (usually pretrained) encoder network; it is used as is, not copied.
    head_hidden : int, optional
        Without it the head is ``Linear(out_dim, 1)``; with it,
        ``Linear(out_dim, head_hidden) -> GELU -> Linear(head_hidden, 1)``.

    Attributes
    ----------
    network : EncoderNetwork
    head : nn.Module
    blocks : list of nn.Module
        The network's blocks, input to output.

    Shapes
    ------
    numeric, missing : (n, n_numeric); categorical : (n, n_categorical) -> logits (n,)

    Examples
    --------
    >>> import torch
    >>> from tabular.encoders import ResidualMLP
    >>> clf = EncoderClassifier(ResidualMLP(["age"], [], {}, width=8))
    >>> clf(torch.zeros(4, 1), torch.zeros(4, 1, dtype=torch.bool), torch.zeros(4, 0).long()).shape
    torch.Size([4])
    """

    def __init__(self, network: EncoderNetwork, head_hidden: int | None = None) -> None:
        super().__init__()
        if not isinstance(network, EncoderNetwork):
            raise EncoderError(
                f"network must be a tabular EncoderNetwork, got {type(network).__name__}"
            )
        if head_hidden is not None and head_hidden < 1:
            raise EncoderError(f"head_hidden must be a positive integer, got {head_hidden}")
        self.network = network
        self.head_hidden = head_hidden
        d = network.out_dim
        self.head: nn.Module
        if head_hidden is None:
            self.head = nn.Linear(d, 1)
        else:
            self.head = nn.Sequential(
                nn.Linear(d, head_hidden), nn.GELU(), nn.Linear(head_hidden, 1)
            )

    @property
    def blocks(self) -> list[nn.Module]:
        """The network's blocks, input to output."""
        return self.network.blocks

    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """Logits of the positive class, shape ``(n,)``."""
        return self.head(self.network(numeric, missing, categorical)).squeeze(-1)

    def config(self) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_config` rebuilds the module (without weights)."""
        return {"network": self.network.config(), "head_hidden": self.head_hidden}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EncoderClassifier:
        """Rebuild an untrained classifier from :meth:`config` output."""
        try:
            return cls(network_from_config(config["network"]), config.get("head_hidden"))
        except (KeyError, TypeError) as exc:
            raise EncoderError(f"malformed classifier config: {exc}") from exc
