"""Fine-tuning anchored to the source model: a residual head and a source prior.

The ``"anchored"`` strategy of :class:`~graphxfer.TransferClassifier` keeps the pretrained
model's logit and learns only a *correction* on top of it:

    logit(x) = source_head(z(x)) + correction(z(x)),     correction initialised at 0,

where ``z(x)`` is the (frozen) pretrained embedding. The correction is pulled toward 0 by a
quadratic prior, ``(alpha / 2n) * c^T H c``, where ``H`` is the Fisher information of the
source head on the source records (computed at pretraining time, a public aggregate of the
source): a Laplace approximation of what the source records say about the head. With
``alpha = 1`` the fine-tuned head approximates a logistic fit on source and target records
together (without the source records leaving the source); smaller ``alpha`` trusts the
target more. Without a stored ``H`` the prior is isotropic (L2-SP).

Under differential privacy the prior is applied as a proximal step after each noisy update
(:class:`privacy.Anchor`), so heavy noise pulls the model back to the source model instead of
into noise.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from graphxfer.exceptions import GraphxferError

__all__ = [
    "AnchoredHead",
    "anchor_for",
    "anchor_module",
    "fit_anchored_map",
    "head_precision",
    "train_target_only",
]

#: The parameters an anchored module trains: the correction of its head.
CORRECTION = ("head.correction.weight", "head.correction.bias")

#: Largest embedding size for which a full precision matrix is stored (else its diagonal).
MAX_FULL_PRECISION = 512


class AnchoredHead(nn.Module):
    """The source head (frozen, as buffers) plus a zero-initialised linear correction.

    Parameters
    ----------
    source : nn.Linear
        The pretrained head, ``Linear(d, 1)``; its weights are copied.

    Shapes
    ------
    z : (n, d) -> (n, 1)
    """

    source_weight: torch.Tensor
    source_bias: torch.Tensor

    def __init__(self, source: nn.Linear) -> None:
        super().__init__()
        if not isinstance(source, nn.Linear) or source.out_features != 1:
            raise GraphxferError(
                "the anchored strategy needs a model whose head is one linear layer with one "
                f"output; this head is {type(source).__name__}"
            )
        self.register_buffer("source_weight", source.weight.detach().clone())
        bias = source.bias.detach().clone() if source.bias is not None else torch.zeros(1)
        self.register_buffer("source_bias", bias)
        self.correction = nn.Linear(source.in_features, 1)
        with torch.no_grad():
            self.correction.weight.zero_()
            self.correction.bias.zero_()

    @property
    def in_features(self) -> int:
        """Size of the embedding read by the head."""
        return int(self.correction.in_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Source logit plus correction."""
        return F.linear(z, self.source_weight, self.source_bias) + self.correction(z)


def anchor_module(module: nn.Module) -> nn.Module:
    """Replace ``module.head`` (a ``Linear(d, 1)``) by an :class:`AnchoredHead`, in place."""
    head = getattr(module, "head", None)
    if isinstance(head, AnchoredHead):
        return module
    if not isinstance(head, nn.Linear):
        raise GraphxferError(
            "the anchored strategy needs a model with a linear head (module.head); "
            f"got {type(head).__name__}"
        )
    module.head = AnchoredHead(head).to(head.weight.device)
    return module


def _head_inputs(module: nn.Module, inputs: tuple[torch.Tensor, ...], batch: int) -> torch.Tensor:
    """The embeddings that ``module.head`` reads for ``inputs`` (via a forward hook)."""
    captured: list[torch.Tensor] = []
    head = module.head
    assert isinstance(head, nn.Module)
    hook = head.register_forward_hook(
        lambda _m, args, _out: captured.append(args[0].detach().double().cpu())
    )
    dev = next(module.parameters()).device  # the linear head always has parameters
    was_training = module.training
    module.eval()
    out: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            n = int(inputs[0].shape[0])
            for start in range(0, n, batch):
                rows = min(batch, n - start)
                captured.clear()
                module(*(t[start : start + batch].to(dev) for t in inputs))
                got = torch.cat(captured)
                # some modules pad a batch internally (the graph classifier in eval mode):
                # keep the rows of the records themselves
                if got.shape[0] < rows:
                    raise GraphxferError(
                        f"the head read {got.shape[0]} rows for a batch of {rows} records"
                    )
                out.append(got[:rows])
    finally:
        hook.remove()
        module.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0, dtype=torch.float64)


def head_precision(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], *, batch: int = 4096
) -> dict[str, Any]:
    """Fisher information of a linear head ``[w, b]`` on (public) source records.

    ``H = sum_i p_i (1 - p_i) [z_i, 1][z_i, 1]^T`` with ``p_i`` the head's probability for
    source record ``i``. Returned JSON-ready: ``{"n_source", "dim", "kind", "values"}`` with a
    full matrix when ``dim <= MAX_FULL_PRECISION`` (row-major) and its diagonal otherwise.
    """
    head = module.head
    if not isinstance(head, nn.Linear):
        raise GraphxferError("head_precision needs a model whose head is nn.Linear")
    z = _head_inputs(module, inputs, batch)
    w = head.weight.detach().double().cpu().reshape(-1)
    b = float(head.bias.detach().double().cpu().reshape(-1)[0]) if head.bias is not None else 0.0
    zb = torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], dim=1)
    p = torch.sigmoid(z @ w + b)
    weight = p * (1 - p)
    dim = int(zb.shape[1])
    if dim <= MAX_FULL_PRECISION:
        mat = (zb * weight[:, None]).T @ zb
        values = mat.reshape(-1).tolist()
        kind = "full"
    else:
        values = ((zb**2) * weight[:, None]).sum(0).tolist()
        kind = "diagonal"
    return {"n_source": len(z), "dim": dim, "kind": kind, "values": values}


def _precision_matrix(stored: dict[str, Any] | None, dim: int) -> torch.Tensor | None:
    """The stored precision as a ``(dim, dim)`` matrix, padded for added embedding features.

    A model fine-tuned with target-only columns (linear encoder) has a longer embedding: the
    added features come last (before the bias), and get no prior beyond the isotropic floor.
    """
    if not stored:
        return None
    k = int(stored["dim"])
    vals = torch.tensor(stored["values"], dtype=torch.float64)
    src = vals.reshape(k, k) if stored.get("kind") == "full" else torch.diag(vals)
    if k == dim:
        return src
    if k > dim:
        raise GraphxferError(
            f"the stored source precision has {k} entries but the head reads {dim - 1} "
            "features; the encoder file does not match the model"
        )
    out = torch.zeros(dim, dim, dtype=torch.float64)
    feats = k - 1  # source features, then (in the stored matrix) the bias
    out[:feats, :feats] = src[:feats, :feats]
    out[:feats, -1] = src[:feats, -1]
    out[-1, :feats] = src[-1, :feats]
    out[-1, -1] = src[-1, -1]
    return out


def anchor_for(
    module: nn.Module, stored: dict[str, Any] | None, *, n_target: int, alpha: float
) -> Any:
    """The :class:`privacy.Anchor` of an anchored module fine-tuned on ``n_target`` records.

    The penalty is ``(alpha / (2 n_target)) c^T P c`` on the correction ``c = [w, b]``, with
    ``P`` the stored source precision (a small isotropic floor keeps it positive definite), or
    the identity times the source size when no precision is stored.
    """
    from privacy.anchor import Anchor, AnchorGroup

    head = module.head
    if not isinstance(head, AnchoredHead):
        raise GraphxferError("anchor_for needs a module prepared with anchor_module")
    dim = head.in_features + 1
    mat = _precision_matrix(stored, dim)
    if mat is None:
        precision = None
        strength = float(alpha)
    else:
        scale = float(torch.diagonal(mat).mean()) if dim else 1.0
        precision = mat + 1e-3 * scale * torch.eye(dim, dtype=torch.float64)
        strength = float(alpha) / max(int(n_target), 1)
    group = AnchorGroup(
        CORRECTION,
        torch.zeros(dim, dtype=torch.float32),
        None if precision is None else precision.float(),
    )
    return Anchor([group], strength)


def fit_anchored_map(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    y: torch.Tensor,
    anchor: Any,
    *,
    max_iter: int = 200,
) -> dict[str, Any]:
    """Non-private fit of the correction: the exact penalised maximum-likelihood estimate.

    Minimises ``mean BCE + anchor penalty`` over the correction with L-BFGS (the problem is
    convex in the correction, the embedding being frozen). It runs where the module is: one
    pass over the target records, then a problem of the embedding's size.
    """
    head = module.head
    assert isinstance(head, AnchoredHead)
    z = _head_inputs(module, inputs, 4096).float().to(head.correction.weight.device)
    target = y.float().to(z.device)
    with torch.no_grad():
        base = F.linear(z, head.source_weight, head.source_bias).reshape(-1)
    params = [head.correction.weight, head.correction.bias]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9
    )
    group = anchor.groups[0]
    prec = None if group.precision is None else group.precision.to(z.device)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logit = base + head.correction(z).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        c = torch.cat([head.correction.weight.reshape(-1), head.correction.bias.reshape(-1)])
        quad = c @ c if prec is None else c @ (prec @ c)
        total = loss + 0.5 * anchor.strength * quad
        total.backward()
        return total

    opt.step(closure)
    return {"optimizer": "lbfgs", "iterations": int(opt.state[params[0]].get("n_iter", 0))}


def train_target_only(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    y: Any,
    config: Any,
    **run: Any,
) -> nn.Module:
    """A copy of an anchored module with the source head removed, its head trained with DP.

    The target-only candidate of the private transfer guard (and of its simulation): the
    same embedding and head shape, no source logit, the correction trained from zero with
    DP-SGD under ``config``. ``run`` goes to :func:`privacy.training.run_private_phases`
    (``purposes``, ``person_index``, ``ledger``...); its refusals (e.g. an unreachable
    epsilon) propagate before any step.
    """
    from privacy.training import Phase, run_private_phases

    alone = copy.deepcopy(module)
    head = alone.head
    if not isinstance(head, AnchoredHead):
        raise GraphxferError("train_target_only needs a module prepared with anchor_module")
    with torch.no_grad():
        head.source_weight.zero_()
        head.source_bias.zero_()
        head.correction.weight.zero_()
        head.correction.bias.zero_()
    run_private_phases(
        alone,
        inputs,
        torch.as_tensor(np.asarray(y), dtype=torch.float32),
        phases=[Phase(name="target-only", epochs=config.epochs, trainable=frozenset(CORRECTION))],
        config=config,
        progress=False,
        **run,
    )
    alone.eval()
    return alone


def stored_precision(encoder: Any) -> dict[str, Any] | None:
    """The source head precision stored with an encoder, or None."""
    meta = getattr(encoder, "metadata", None) or {}
    value = meta.get("head_precision")
    return value if isinstance(value, dict) else None
