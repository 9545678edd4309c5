"""Checks that a module can be trained with per-record (per-person) gradient clipping.

Per-sample clipping bounds one person's influence only if no other row's output depends on
that person. Two checks enforce it before any DP run:

* :func:`check_module` runs Opacus' ``ModuleValidator.validate`` and, because Opacus does not
  say *where* a problem is, re-runs the registered validators on every named sub-module so
  that the error names each offending module and the fix. BatchNorm is refused wherever it
  is, trainable or frozen: in training mode it normalizes each row with the statistics of the
  whole batch. ``ModuleValidator.fix`` is never used: it replaces ``BatchNorm1d(C)`` by
  ``GroupNorm(C, C)``, which zeroes every activation of a 2-D input.
* :func:`check_row_independence` changes one row of a small batch and checks that the outputs
  of the other rows do not move, which also catches batch mixing Opacus cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from privacy.exceptions import IncompatibleModuleError

__all__ = ["check_module", "check_row_independence"]

_FIXES: dict[type, str] = {
    nn.LSTM: "replace it with opacus.layers.DPLSTM (same arguments and state dict)",
    nn.GRU: "replace it with opacus.layers.DPGRU (same arguments and state dict)",
    nn.RNN: "replace it with opacus.layers.DPRNN (same arguments and state dict)",
    nn.MultiheadAttention: "replace it with opacus.layers.DPMultiheadAttention",
    nn.InstanceNorm1d: "construct it with track_running_stats=False",
    nn.InstanceNorm2d: "construct it with track_running_stats=False",
    nn.InstanceNorm3d: "construct it with track_running_stats=False",
}


def _batchnorm_fix(name: str, module: nn.modules.batchnorm._BatchNorm) -> str:
    c = module.num_features
    kind = type(module).__name__
    return (
        f"'{name}' ({kind}): BatchNorm normalizes each row with the statistics of the whole "
        f"batch, so one person changes everyone's output. Replace {kind} at '{name}' with "
        f"nn.LayerNorm({c}) (or nn.GroupNorm(1, {c})) and fine-tune or re-pretrain; do not use "
        "opacus ModuleValidator.fix, whose GroupNorm(C, C) zeroes 2-D activations."
    )


def check_module(module: nn.Module) -> None:
    """Refuse modules whose layers break per-record gradient clipping.

    Parameters
    ----------
    module : torch.nn.Module
        The model, in training mode (it is checked as it will be trained).

    Raises
    ------
    IncompatibleModuleError
        Naming every offending sub-module and the fix.

    Examples
    --------
    >>> from torch import nn
    >>> check_module(nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8)))
    >>> check_module(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)))
    Traceback (most recent call last):
    ...
    privacy.exceptions.IncompatibleModuleError: ... with nn.LayerNorm(8)...
    """
    from opacus.validators import ModuleValidator

    was_training = module.training
    module.train()
    try:
        generic = ModuleValidator.validate(module, strict=False)
    finally:
        module.train(was_training)

    problems: list[str] = []
    named_types: set[type] = set()
    for name, sub in module.named_modules():
        label = name or "<root>"
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            problems.append(_batchnorm_fix(label, sub))
            named_types.add(type(sub))
            continue
        validator = ModuleValidator.VALIDATORS.get(type(sub))
        trainable = any(p.requires_grad for p in sub.parameters(recurse=False))
        if validator is None or not trainable:
            continue
        errors = validator(sub)
        if errors:
            named_types.add(type(sub))
            fix = _FIXES.get(type(sub), "replace it with a layer Opacus supports")
            detail = "; ".join(str(e) for e in errors)
            problems.append(f"'{label}' ({type(sub).__name__}): {fix}. Opacus says: {detail}")
    if generic and not problems:
        # A validator fired on something the named scan did not attribute (should be rare).
        problems.extend(str(e) for e in generic)
    if problems:
        listing = "\n  - ".join(problems)
        raise IncompatibleModuleError(
            f"the module cannot be trained with per-person gradient clipping; "
            f"{len(problems)} sub-module(s) must change:\n  - {listing}"
        )


def check_row_independence(
    module: nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    n_rows: int = 8,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> bool:
    """Check that changing one row of a batch leaves the outputs of the other rows unchanged.

    The check runs the module twice in training mode on the first ``n_rows`` rows (the second
    time with row 0 replaced by row 1), replaying the same random state so that dropout masks
    match; the global random state is restored afterwards.

    Parameters
    ----------
    module : torch.nn.Module
    inputs : sequence of torch.Tensor
        The model inputs, each with the row dimension first, already on the module's device.
    n_rows : int, default=8
    atol, rtol : float
        Tolerances of the comparison.

    Returns
    -------
    bool
        ``True`` when the check ran, ``False`` when it could not (fewer than 3 rows, or an
        output that is not a tensor with the row dimension first).

    Raises
    ------
    IncompatibleModuleError
        If the outputs of untouched rows change.
    """
    n = int(inputs[0].shape[0]) if inputs else 0
    k = min(n_rows, n)
    if k < 3:
        return False
    batch = [t[:k].clone() for t in inputs]
    changed = [t.clone() for t in batch]
    for t in changed:
        t[0] = t[1]
    devices = [t.device for t in batch if t.device.type == "cuda"]
    was_training = module.training
    module.train()
    try:
        with torch.random.fork_rng(devices=devices[:1]), torch.no_grad():
            cpu_state = torch.get_rng_state()
            cuda_state = torch.cuda.get_rng_state(devices[0]) if devices else None
            out_a = module(*batch)
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, devices[0])
            out_b = module(*changed)
    finally:
        module.train(was_training)
    if not (isinstance(out_a, torch.Tensor) and isinstance(out_b, torch.Tensor)):
        return False
    if out_a.ndim == 0 or out_a.shape[0] != k:
        return False
    if not torch.allclose(out_a[1:], out_b[1:], atol=atol, rtol=rtol):
        moved = (out_a[1:] - out_b[1:]).abs().reshape(k - 1, -1).amax(dim=1)
        rows = [i + 1 for i in torch.nonzero(moved > atol).flatten().tolist()]
        raise IncompatibleModuleError(
            f"changing row 0 of a batch changed the output of row(s) {rows}: the module "
            "mixes rows of a batch (BatchNorm in training mode, attention or pooling over the "
            "batch dimension, message passing between target records...), so clipping each "
            "row's gradient does not bound one person's influence. Make each row's output a "
            "function of that row (and public data) only."
        )
    return True
