"""Record-level DP-SGD through Opacus, for data with one row per person.

A ``PrivacyEngine`` with the configured accountant wraps the module, the optimizer and a
Poisson-sampling ``DPDataLoader``; ``BatchMemoryManager`` splits logical batches larger than
``max_physical_batch_size``. The engine gets the noise multiplier that
:func:`~privacy.planning.make_plan` calibrated before the run, through ``make_private``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from privacy.accounting import compute_epsilon
from privacy.anchor import Anchor
from privacy.config import PrivacyConfig
from privacy.data import RowData, RowDataset, collate_rows
from privacy.noise import private_generators
from privacy.phases import Phase, epoch_record, make_optimizer, progress_bar
from privacy.planning import DPPlan

__all__ = ["train_records"]


def train_records(
    module: nn.Module,
    data: RowData,
    *,
    phase: Phase,
    config: PrivacyConfig,
    loss_fn: Any,
    plan: DPPlan,
    device: torch.device,
    progress: bool,
    anchor: Anchor | None = None,
) -> tuple[list[dict[str, Any]], int, float]:
    """Run one phase of record-level DP-SGD on the parameters that require grad.

    Returns
    -------
    history : list of dict
        One :func:`~privacy.phases.epoch_record` per epoch (not private: debugging only).
    steps : int
        Optimizer steps the accountant counted.
    epsilon : float
        Guarantee of this phase alone, from the same accountant.
    """
    from opacus import PrivacyEngine
    from opacus.utils.batch_memory_manager import BatchMemoryManager
    from torch.utils.data import DataLoader

    with warnings.catch_warnings():
        # Opacus warns that its secure mode is off; outside secure mode sampling and noise
        # still come from generators seeded from the OS CSPRNG (see the module docstring).
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine(accountant=config.accountant, secure_mode=config.secure_mode)
    sample_gen, noise_gen = private_generators(config, device)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = make_optimizer(config.optimizer, params, config.learning_rate)
    prox = None if anchor is None else anchor.proximal(module, config.learning_rate)
    loader = DataLoader(
        RowDataset([*data.inputs, data.target]),
        batch_size=config.batch_size,
        collate_fn=collate_rows,
        # Opacus' DPDataLoader draws the Poisson samples from this generator (in secure mode
        # from the engine's torchcsprng generator instead).
        generator=None if config.secure_mode else sample_gen,
    )
    ghost = config.grad_sample_mode == "ghost"
    out = engine.make_private(
        module=module,
        optimizer=optimizer,
        criterion=loss_fn,
        data_loader=loader,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=config.max_grad_norm,
        poisson_sampling=True,
        # in secure mode the engine's torchcsprng generator is used (and passing one is refused)
        noise_generator=None if config.secure_mode else noise_gen,
        grad_sample_mode=config.grad_sample_mode,
    )
    if ghost:
        gsm, dp_optimizer, criterion, dp_loader = out
    else:
        gsm, dp_optimizer, dp_loader = out
        criterion = loss_fn
    if not math.isclose(dp_loader.sample_rate, plan.sample_rate, rel_tol=1e-12):
        raise RuntimeError(  # pragma: no cover - guards the calibration above
            f"sample rate mismatch: planned {plan.sample_rate}, loader {dp_loader.sample_rate}"
        )
    history: list[dict[str, Any]] = []
    try:
        epochs = progress_bar(
            range(phase.epochs), total=phase.epochs, desc=f"DP {phase.name}", enabled=progress
        )
        for epoch in epochs:
            total, rows = 0.0, 0
            with BatchMemoryManager(
                data_loader=dp_loader,
                max_physical_batch_size=config.max_physical_batch_size,
                optimizer=dp_optimizer,
            ) as physical:
                for batch in physical:
                    *xb, yb = (t.to(device, non_blocking=True) for t in batch)
                    dp_optimizer.zero_grad()
                    if yb.shape[0] == 0 and not ghost:
                        # An empty Poisson batch still takes a (noise-only) step.
                        for p in dp_optimizer.params:
                            p.grad_sample = p.new_zeros((0, *p.shape))
                    else:
                        loss = criterion(gsm(*xb), yb)
                        loss.backward()
                        if yb.shape[0]:
                            total += float(loss.item()) * int(yb.shape[0])
                            rows += int(yb.shape[0])
                    before = _accounted_steps(engine.accountant)
                    dp_optimizer.step()
                    # a physical batch inside a logical one only accumulates; the accountant
                    # counts the steps that were taken
                    if prox is not None and _accounted_steps(engine.accountant) > before:
                        prox()
            history.append(epoch_record(phase.name, epoch, total, rows))
        steps = _accounted_steps(engine.accountant)
        # the same accountant as the engine's, through the memo that noise calibration filled
        # (evaluating the PRV accountant again can take seconds at large noise multipliers)
        epsilon = compute_epsilon(
            [(float(s), float(q), int(t)) for s, q, t in engine.accountant.history],
            delta=plan.delta,
            accountant=config.accountant,
        )
    finally:
        gsm.to_standard_module()
    return history, steps, epsilon


def _accounted_steps(accountant: Any) -> int:
    """Steps recorded in an Opacus accountant's ``history`` of ``(sigma, q, steps)``."""
    return sum(int(t) for _, _, t in accountant.history)
