"""Anchored fine-tuning: a pull toward reference weights that never reads the private data.

Fine-tuning a pretrained model on a few private records is a trade between what the records
say and what the source model already knows. An :class:`Anchor` states the second part as a
quadratic penalty around reference weights ``theta0`` (the source model),

    (strength / 2) * sum over groups g of (theta_g - theta0_g)^T P_g (theta_g - theta0_g),

where ``P_g`` is a precision matrix (the identity gives L2-SP, Li et al. 2018; the source
model's Fisher information gives a Laplace approximation of the source posterior, so that the
fine-tuned model approximates a fit on source and target records together without sharing
the source records).

The penalty does not depend on the private data, so it must not go through per-record
gradient clipping and noise (Opacus computes per-sample gradients from layer activations and
would silently drop a parameter penalty added to the loss). It is therefore applied as a
*proximal step* after every optimizer step,

    theta <- theta0 + (I + lr * strength * P)^-1 (theta - theta0),

the exact minimiser of ``penalty + ||theta - theta_step||^2 / (2 lr)``: post-processing of the
noisy update, which keeps the DP guarantee, and stable for any ``lr * strength``. Under heavy
noise the iterate is pulled back toward ``theta0``, so a private fine-tune degrades toward
the source model rather than into noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from privacy.exceptions import PrivacyConfigError

__all__ = ["Anchor", "AnchorGroup"]


@dataclass(frozen=True)
class AnchorGroup:
    """Parameters anchored together.

    Parameters
    ----------
    names : tuple of str
        Parameter names (as in ``module.named_parameters()``); they are flattened and
        concatenated in this order.
    reference : Tensor of shape (k,)
        Reference values of the concatenated parameters.
    precision : Tensor of shape (k, k) or None
        Precision matrix (symmetric, positive semi-definite); ``None`` means the identity.
    """

    names: tuple[str, ...]
    reference: torch.Tensor
    precision: torch.Tensor | None = None


class Anchor:
    """A quadratic pull toward reference weights, applied as a proximal step.

    Parameters
    ----------
    groups : sequence of AnchorGroup
        Anchored parameter groups. Parameters in no group are not anchored.
    strength : float
        Multiplier of the penalty (``>= 0``; 0 disables it).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> m = nn.Linear(2, 1)
    >>> anchor = Anchor.l2sp(m, strength=1.0)   # pull toward the current weights
    >>> with torch.no_grad():
    ...     _ = m.weight.add_(1.0)
    >>> step = anchor.proximal(m, lr=1.0)
    >>> step()                                   # halfway back: (I + 1 * 1 * I)^-1
    >>> bool(torch.allclose(m.weight, anchor.groups[0].reference[:2].reshape(1, 2) + 0.5))
    True
    """

    def __init__(self, groups: Sequence[AnchorGroup], strength: float) -> None:
        if not float(strength) >= 0:
            raise PrivacyConfigError(f"anchor strength must be >= 0, got {strength!r}.")
        self.groups = tuple(groups)
        self.strength = float(strength)
        seen: set[str] = set()
        for g in self.groups:
            k = int(g.reference.numel())
            if g.precision is not None and tuple(g.precision.shape) != (k, k):
                raise PrivacyConfigError(
                    f"anchor group {g.names}: precision has shape {tuple(g.precision.shape)}, "
                    f"expected ({k}, {k}) for {k} anchored values."
                )
            clash = seen.intersection(g.names)
            if clash:
                raise PrivacyConfigError(f"parameters {sorted(clash)} are anchored twice.")
            seen.update(g.names)

    @classmethod
    def l2sp(cls, module: nn.Module, strength: float, names: Sequence[str] | None = None) -> Anchor:
        """L2-SP: an identity-precision pull toward the module's current weights."""
        params = dict(module.named_parameters())
        chosen = list(params) if names is None else list(names)
        groups = [AnchorGroup((n,), params[n].detach().reshape(-1).clone(), None) for n in chosen]
        return cls(groups, strength)

    def penalty(self, module: nn.Module) -> torch.Tensor:
        """The value of the penalty at the module's current weights (for tests and reports)."""
        params = dict(module.named_parameters())
        total = torch.zeros((), dtype=torch.float64)
        for g in self.groups:
            d = (_flat(params, g.names) - g.reference.to(_flat(params, g.names))).double()
            quad = d @ d if g.precision is None else d @ (g.precision.double().to(d) @ d)
            total = total + 0.5 * self.strength * quad.cpu()
        return total

    def proximal(self, module: nn.Module, lr: float) -> Any:
        """A function that applies one proximal step of step size ``lr`` to ``module``.

        The matrices ``(I + lr * strength * P)^-1`` are computed once here.
        """
        params = dict(module.named_parameters())
        missing = [n for g in self.groups for n in g.names if n not in params]
        if missing:
            raise PrivacyConfigError(
                f"anchored parameters {missing} are not parameters of the module."
            )
        plans: list[tuple[tuple[str, ...], torch.Tensor, torch.Tensor | None, float]] = []
        for g in self.groups:
            first = params[g.names[0]]
            k = int(g.reference.numel())
            ref = g.reference.detach().to(device=first.device, dtype=first.dtype)
            scale = lr * self.strength
            if g.precision is None:
                plans.append((g.names, ref, None, 1.0 / (1.0 + scale)))
                continue
            eye = torch.eye(k, dtype=torch.float64)
            mat = torch.linalg.inv(eye + scale * g.precision.detach().double().cpu())
            plans.append((g.names, ref, mat.to(device=first.device, dtype=first.dtype), 1.0))

        def step() -> None:
            if self.strength == 0:
                return
            with torch.no_grad():
                for names, ref, mat, factor in plans:
                    d = _flat(params, names) - ref
                    d = d * factor if mat is None else mat @ d
                    _assign(params, names, ref + d)

        return step

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (names, sizes, strength; not the matrices)."""
        return {
            "strength": self.strength,
            "groups": [
                {
                    "names": list(g.names),
                    "size": int(g.reference.numel()),
                    "precision": "identity" if g.precision is None else "matrix",
                }
                for g in self.groups
            ],
        }


def _flat(params: Mapping[str, nn.Parameter], names: Sequence[str]) -> torch.Tensor:
    return torch.cat([params[n].detach().reshape(-1) for n in names])


def _assign(params: Mapping[str, nn.Parameter], names: Sequence[str], flat: torch.Tensor) -> None:
    start = 0
    for n in names:
        p = params[n]
        size = p.numel()
        p.copy_(flat[start : start + size].reshape(p.shape))
        start += size
