"""Loss functions by name.

A loss is called as ``loss(output, target)`` and, like the criteria of :mod:`torch.nn`, has a
``reduction`` attribute (``"mean"``, ``"sum"`` or ``"none"``); Opacus' ghost clipping switches
it to ``"none"`` to get one loss per row. Training always uses ``reduction="mean"``.
Register new losses with :func:`register_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from privacy.exceptions import PrivacyConfigError, RegistryError

__all__ = [
    "BinaryCrossEntropy",
    "MeanSquaredError",
    "available_losses",
    "make_loss",
    "register_loss",
]


class BinaryCrossEntropy(nn.Module):
    """Binary cross-entropy on logits; the output is reshaped to the target's shape.

    Shapes: output ``(n,)`` or ``(n, 1)``, target ``(n,)`` with values in {0, 1}.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            output.reshape(target.shape), target.to(output.dtype), reduction=self.reduction
        )


class MeanSquaredError(nn.Module):
    """Squared error; the output is reshaped to the target's shape."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(
            output.reshape(target.shape), target.to(output.dtype), reduction=self.reduction
        )


_LOSSES: dict[str, Callable[[], Any]] = {}


def register_loss(name: str, factory: Callable[[], Any], *, overwrite: bool = False) -> None:
    """Register a loss factory under ``name``.

    Parameters
    ----------
    name : str
    factory : callable
        Returns a fresh loss module when called without arguments.
    overwrite : bool, default=False
        Replace an existing registration instead of refusing it.
    """
    if name in _LOSSES and not overwrite:
        raise RegistryError(
            f"a loss named {name!r} is already registered; choose another name or pass "
            "overwrite=True."
        )
    _LOSSES[name] = factory


def available_losses() -> list[str]:
    """Names of the registered losses."""
    return sorted(_LOSSES)


def make_loss(loss: str | Callable[..., torch.Tensor]) -> Any:
    """A fresh loss from a registered name, or ``loss`` itself when it is callable."""
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise PrivacyConfigError(
                f"loss={loss!r} is not registered; use one of {available_losses()} or pass a "
                "callable loss(output, target) that averages over rows (reduction='mean')."
            )
        return _LOSSES[loss]()
    if callable(loss):
        return loss
    raise PrivacyConfigError(
        f"loss must be a registered name or a callable, got {type(loss).__name__}."
    )


register_loss("bce", BinaryCrossEntropy)
register_loss("ce", nn.CrossEntropyLoss)
register_loss("mse", MeanSquaredError)
