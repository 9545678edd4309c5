"""Person-level DP-SGD: every row of a sampled person is taken, and clipped with the others.

When a person has several rows, persons are Poisson-sampled at rate
``q = batch_size / n_persons`` and all their rows are taken; Opacus' ``GradSampleModule``
computes per-row gradients, which are summed per person; each person's summed gradient is
clipped to ``max_grad_norm``; Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm`` is added and the sum is divided by the expected batch
size. The same Opacus accountant that calibrated the noise reports epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from privacy.accounting import compute_epsilon
from privacy.anchor import Anchor
from privacy.config import PrivacyConfig
from privacy.data import PersonGroups, RowData
from privacy.noise import gaussian_noise, private_generators
from privacy.phases import Phase, epoch_record, make_optimizer, progress_bar
from privacy.planning import DPPlan

__all__ = ["clip_and_sum_per_person", "person_chunks", "train_persons"]


def clip_and_sum_per_person(
    grad_samples: Sequence[torch.Tensor],
    person_ids: torch.Tensor,
    n_persons: int,
    max_grad_norm: float,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Sum per-row gradients per person, clip each person's sum, and add the clipped sums.

    Parameters
    ----------
    grad_samples : sequence of Tensor
        Per-row gradients, one tensor per parameter, each of shape ``(n_rows, *param.shape)``.
    person_ids : Tensor of shape (n_rows,)
        Person (0 .. n_persons-1) of every row.
    n_persons : int
    max_grad_norm : float
        Clipping bound C on the L2 norm of one person's gradient over all parameters.

    Returns
    -------
    summed : list of Tensor
        ``sum_p min(1, C / ||g_p||) g_p`` per parameter.
    norms : Tensor of shape (n_persons,)
        ``||g_p||`` before clipping.
    """
    if n_persons == 0:
        return [g.new_zeros(g.shape[1:]) for g in grad_samples], torch.zeros(0)
    n_rows = int(person_ids.shape[0])
    # Sum rows per person with a (persons x rows) 0/1 matrix: one matrix product per parameter
    # (much faster on CPU than index_add_ over a leading dimension).
    member = grad_samples[0].new_zeros((n_persons, n_rows))
    member[person_ids, torch.arange(n_rows, device=person_ids.device)] = 1.0
    per_person = [
        (member @ g.reshape(n_rows, -1)).reshape(n_persons, *g.shape[1:]) for g in grad_samples
    ]
    norms = torch.stack([pp.reshape(n_persons, -1).norm(2, dim=1) for pp in per_person], dim=1)
    norms = norms.norm(2, dim=1)
    factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    summed = [torch.einsum("i,i...->...", factor, pp) for pp in per_person]
    return summed, norms


def _flat_grad_sample(p: nn.Parameter, n_rows: int) -> torch.Tensor:
    gs = getattr(p, "grad_sample", None)
    if gs is None:
        return p.new_zeros((n_rows, *p.shape))
    if isinstance(gs, list):
        gs = torch.cat(gs, dim=0)
    return gs


def person_chunks(persons: np.ndarray, counts: np.ndarray, max_rows: int) -> Iterator[np.ndarray]:
    """Split sampled persons into chunks of at most ``max_rows`` rows (a person is never split)."""
    start, rows = 0, 0
    for i, p in enumerate(persons):
        c = int(counts[p])
        if rows and rows + c > max_rows:
            yield persons[start:i]
            start, rows = i, 0
        rows += c
    if start < len(persons) or len(persons) == 0:
        yield persons[start:]


def train_persons(
    module: nn.Module,
    data: RowData,
    *,
    phase: Phase,
    phase_steps: int,
    config: PrivacyConfig,
    loss_fn: Any,
    plan: DPPlan,
    device: torch.device,
    progress: bool,
    anchor: Anchor | None = None,
) -> tuple[list[dict[str, Any]], int, float]:
    """Run one phase of person-level DP-SGD (``phase_steps`` steps) on the parameters that
    require grad.

    Returns
    -------
    history : list of dict
        One :func:`~privacy.phases.epoch_record` per epoch (not private: debugging only).
    steps : int
    epsilon : float
        Guarantee of this phase alone, from the configured accountant.
    """
    from opacus.grad_sample.utils import wrap_model

    groups = data.groups
    assert isinstance(groups, PersonGroups)
    sample_gen, noise_gen = private_generators(config, device)
    gsm = wrap_model(
        module,
        grad_sample_mode=config.grad_sample_mode,
        batch_first=True,
        loss_reduction="mean",
    )
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = make_optimizer(config.optimizer, params, config.learning_rate)
    prox = None if anchor is None else anchor.proximal(module, config.learning_rate)
    std = plan.noise_multiplier * config.max_grad_norm
    per_epoch = max(1, math.ceil(phase_steps / phase.epochs))
    history: list[dict[str, Any]] = []
    total, rows_seen, epoch = 0.0, 0, 0
    try:
        steps_iter = progress_bar(
            range(phase_steps), total=phase_steps, desc=f"DP {phase.name}", enabled=progress
        )
        for step in steps_iter:
            mask = torch.rand(groups.n_persons, generator=sample_gen) < plan.sample_rate
            persons = torch.nonzero(mask).flatten().numpy()
            summed = [torch.zeros_like(p) for p in params]
            for chunk in person_chunks(persons, groups.counts, config.max_physical_batch_size):
                if len(chunk) == 0:
                    continue
                rows, local = groups.rows_of(chunk)
                idx = torch.from_numpy(rows)
                xb = [t[idx].to(device, non_blocking=True) for t in data.inputs]
                yb = data.target[idx].to(device, non_blocking=True)
                loss = loss_fn(gsm(*xb), yb)
                loss.backward()
                if all(getattr(p, "grad_sample", None) is None for p in params):
                    raise RuntimeError(
                        f"grad_sample_mode={config.grad_sample_mode!r} computed no per-row "
                        "gradients for the trainable parameters; check that the module's "
                        "trainable layers are supported by Opacus in this mode."
                    )
                grads = [_flat_grad_sample(p, len(rows)) for p in params]
                clipped, _ = clip_and_sum_per_person(
                    grads,
                    torch.from_numpy(local).to(device),
                    len(chunk),
                    config.max_grad_norm,
                )
                for s, c in zip(summed, clipped):
                    s.add_(c)
                total += float(loss.item()) * len(rows)
                rows_seen += len(rows)
                gsm.zero_grad(set_to_none=True)
            for p, s in zip(params, summed):
                noise = gaussian_noise(std, s, noise_gen, hardened=config.secure_mode)
                p.grad = (s + noise) / config.batch_size
            optimizer.step()
            if prox is not None:
                prox()
            optimizer.zero_grad(set_to_none=True)
            if (step + 1) % per_epoch == 0 or step + 1 == phase_steps:
                history.append(epoch_record(phase.name, epoch, total, rows_seen))
                total, rows_seen, epoch = 0.0, 0, epoch + 1
    finally:
        gsm.to_standard_module()
    epsilon = compute_epsilon(
        [(plan.noise_multiplier, plan.sample_rate, phase_steps)],
        delta=plan.delta,
        accountant=config.accountant,
    )
    return history, phase_steps, epsilon
