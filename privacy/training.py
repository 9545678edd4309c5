"""Differentially private (and non-private) training of a module on per-record tensors.

:func:`train_private` trains the chosen parameters of any ``torch.nn.Module`` with DP-SGD and
records the run in a :class:`~privacy.PrivacyLedger`; :func:`run_private_phases` runs several
phases (LP-FT) on one budget. The pieces:

* :mod:`privacy.planning` - the checks before anything runs, and one noise multiplier for all
  phases, calibrated before any step so that a budget check can refuse a run first;
* :mod:`privacy.record_level` - one row per person (``person_index`` is ``None`` or all
  distinct): standard Opacus (``PrivacyEngine.make_private``, Poisson ``DPDataLoader``,
  ``BatchMemoryManager``);
* :mod:`privacy.person_level` - several rows per person: persons are Poisson-sampled, their
  rows' gradients are summed and clipped together, and the same accountant reports epsilon;
* :mod:`privacy.noise` - where sampling and noise come from: never from ``random_state``, but
  from ``torchcsprng`` in secure mode or from generators seeded from the operating system's
  CSPRNG whose seeds are never stored. Private runs are therefore not bit-reproducible.

Refused before anything runs: fewer persons than ``min_records``, ``batch_size`` above the
number of persons, ``delta >= 1 / n_persons``, an epsilon no noise multiplier can meet, a run
that would exceed ``total_budget``, and modules that mix rows or that Opacus does not support.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from privacy._utils import (
    RandomState,
    check_random_state,
    resolve_device,
    spawn_seeds,
    torch_generator,
)
from privacy.anchor import Anchor
from privacy.config import PrivacyConfig, TrainConfig
from privacy.data import prepare_rows
from privacy.exceptions import PrivacyConfigError
from privacy.ledger import LedgerEntry, PrivacyLedger
from privacy.losses import make_loss
from privacy.person_level import clip_and_sum_per_person, train_persons
from privacy.phases import (
    HISTORY_NOTE,
    Loss,
    Phase,
    Trainable,
    TrainResult,
    benign_hook_warnings_silenced,
    epoch_record,
    make_optimizer,
    only_trainable,
    progress_bar,
    resolve_trainable,
)
from privacy.planning import make_plan
from privacy.record_level import train_records
from privacy.validation import check_module, check_row_independence

__all__ = [
    "HISTORY_NOTE",
    "Phase",
    "TrainResult",
    "Trainable",
    "clip_and_sum_per_person",
    "resolve_trainable",
    "run_non_private_phases",
    "run_private_phases",
    "train_non_private",
    "train_private",
]

#: ``data_id`` of ledger entries when the caller names no data set. A constant label (never a
#: fingerprint of the records, which would itself be computed from them): unnamed runs are
#: composed together, which can only overstate what was spent.
DEFAULT_DATA_ID = "target"


def run_private_phases(
    module: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    phases: Sequence[Phase],
    config: PrivacyConfig,
    purposes: Sequence[str],
    loss: Loss = "bce",
    person_index: np.ndarray | Sequence[Any] | None = None,
    ledger: PrivacyLedger | None = None,
    data_id: str | None = None,
    random_state: RandomState = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    anchor: Anchor | None = None,
    person_level: bool = False,
) -> list[TrainResult]:
    """Run DP training phases that share ONE privacy budget.

    A single noise multiplier is calibrated so that all phases together (their summed steps,
    at one sample rate) meet ``config.epsilon``; each phase appends its own ledger entry and
    the ledger composes them. :func:`train_private` is the one-phase case; the fine-tuning
    strategies (:func:`~privacy.fine_tune`) use several phases for LP-FT.

    Parameters are those of :func:`train_private`, plus ``phases`` and one ``purpose`` per
    phase.

    Returns
    -------
    list of TrainResult
        One per phase.
    """
    if not isinstance(config, PrivacyConfig):
        raise PrivacyConfigError(
            f"config must be a PrivacyConfig, got {type(config).__name__}; build one with "
            "PrivacyConfig(epsilon=...)."
        )
    if len(purposes) != len(phases) or not phases:
        raise PrivacyConfigError("pass one purpose per phase, and at least one phase.")
    data = prepare_rows(inputs, y, person_index, person_level=person_level)
    plan = make_plan(data, phases, config)
    if ledger is None:
        ledger = PrivacyLedger(accountant="rdp" if config.accountant == "rdp" else "prv")
    data_id = DEFAULT_DATA_ID if data_id is None else str(data_id)
    mechanism = "dp-sgd-person" if plan.unit == "person" else "dp-sgd"

    def entry(i: int, epsilon: float, steps: int) -> LedgerEntry:
        return LedgerEntry(
            mechanism=mechanism,
            epsilon=epsilon,
            delta=plan.delta,
            data_id=data_id,
            purpose=purposes[i],
            n_records=plan.n_persons,
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            steps=steps,
            accountant=config.accountant,
            max_grad_norm=config.max_grad_norm,
            unit=plan.unit,
        )

    if config.total_budget is not None:
        ledger.check_budget(
            total_budget=config.total_budget,
            data_id=data_id,
            planned=[entry(i, config.epsilon, s) for i, s in enumerate(plan.steps)],
        )
    dev = resolve_device(device)
    module.to(dev)
    loss_fn = make_loss(loss)
    was_training = module.training
    module.train()
    check_module(module)
    check_row_independence(module, [t[:8].to(dev) for t in data.inputs])
    check_random_state(random_state)  # validated; sampling and noise never use it
    results = []
    try:
        for i, phase in enumerate(phases):
            start = time.perf_counter()
            with only_trainable(module, phase.trainable), benign_hook_warnings_silenced():
                if plan.unit == "person":
                    history, steps, eps = train_persons(
                        module,
                        data,
                        phase=phase,
                        phase_steps=plan.steps[i],
                        config=config,
                        loss_fn=loss_fn,
                        plan=plan,
                        device=dev,
                        progress=progress,
                        anchor=anchor,
                    )
                else:
                    history, steps, eps = train_records(
                        module,
                        data,
                        phase=phase,
                        config=config,
                        loss_fn=loss_fn,
                        plan=plan,
                        device=dev,
                        progress=progress,
                        anchor=anchor,
                    )
            recorded = ledger.append(entry(i, eps, steps))
            results.append(
                TrainResult(
                    history=tuple(history),
                    private=True,
                    ledger_entry=recorded,
                    ledger=ledger,
                    noise_multiplier=plan.noise_multiplier,
                    sample_rate=plan.sample_rate,
                    steps=steps,
                    epsilon=eps,
                    delta=plan.delta,
                    unit=plan.unit,
                    n_rows=data.n_rows,
                    n_persons=plan.n_persons,
                    trainable=tuple(sorted(phase.trainable)),
                    device=str(dev),
                    seconds=time.perf_counter() - start,
                )
            )
    finally:
        module.train(was_training)
    return results


def train_private(
    module: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    config: PrivacyConfig,
    loss: Loss = "bce",
    person_index: np.ndarray | Sequence[Any] | None = None,
    trainable: Trainable = None,
    ledger: PrivacyLedger | None = None,
    data_id: str | None = None,
    purpose: str = "fine-tune",
    random_state: RandomState = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train ``module`` with DP-SGD; the privacy unit is one person.

    The module is trained in place (and moved to ``device``); frozen parameters are not
    touched and spend nothing. The run appends one entry to ``ledger``.

    Parameters
    ----------
    module : torch.nn.Module
        Called as ``module(*inputs)``; its output and ``y`` go to ``loss``. Each row's
        output must depend on that row only (checked).
    inputs : Tensor or sequence of Tensor
        Per-record model inputs, row dimension first.
    y : Tensor of shape (n_rows,)
        Targets (0/1 for ``"bce"``, class numbers for ``"ce"``).
    config : PrivacyConfig
    loss : {"bce", "ce", "mse"} or callable, default="bce"
        A registered loss or a callable ``loss(output, target)`` averaging over rows.
    person_index : array-like of shape (n_rows,), optional
        Person id of every row. With repeats, person-level DP-SGD is used.
    trainable : iterable of str, callable or None
        See :func:`resolve_trainable`.
    ledger : PrivacyLedger, optional
        Ledger to charge (a new one is created when omitted; see ``TrainResult.ledger``).
    data_id : str, optional
        Label of the data set for the ledger (e.g. the site's name), ``"target"`` when
        omitted. Pass the same label for every run on the same persons so that
        ``total_budget`` composes them. It is a label, never computed from the records.
    purpose : str, default="fine-tune"
    random_state : int, numpy Generator or None
        Validated but not used: Poisson sampling and noise always come from a secure source
        (torchcsprng in secure mode, else generators seeded from the OS CSPRNG whose seeds are
        never stored), so a private run is not reproducible from it. Global RNGs are never
        seeded.
    device : "auto", "cpu", "cuda" or torch.device, default="auto"
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    TrainResult

    Raises
    ------
    TooFewRecordsError, BatchSizeError, DeltaTooLargeError, UnreachableEpsilonError,
    BudgetExceededError, IncompatibleModuleError, InputDataError, PrivacyConfigError
        All before any training step.
    """
    names = resolve_trainable(module, trainable)
    (result,) = run_private_phases(
        module,
        inputs,
        y,
        phases=[Phase(name="train", epochs=config.epochs, trainable=names)],
        config=config,
        purposes=[purpose],
        loss=loss,
        person_index=person_index,
        ledger=ledger,
        data_id=data_id,
        random_state=random_state,
        device=device,
        progress=progress,
    )
    return result


def run_non_private_phases(
    module: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    phases: Sequence[Phase],
    config: TrainConfig | None = None,
    loss: Loss = "bce",
    random_state: RandomState = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    anchor: Anchor | None = None,
) -> list[TrainResult]:
    """Plain minibatch training phases (shuffled rows, no clipping, no noise, no ledger).

    ``anchor`` (see :class:`~privacy.Anchor`) pulls the weights toward reference values by a
    proximal step after every optimizer step.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise PrivacyConfigError(
            f"config must be a TrainConfig for non-private training, got {type(config).__name__}."
        )
    data = prepare_rows(inputs, y, None)
    dev = resolve_device(device)
    module.to(dev)
    loss_fn = make_loss(loss)
    rng = check_random_state(random_state)
    was_training = module.training
    module.train()
    results = []
    try:
        for phase in phases:
            gen = torch_generator(spawn_seeds(rng, 1)[0])
            start = time.perf_counter()
            history = []
            with only_trainable(module, phase.trainable) as params:
                optimizer = make_optimizer(config.optimizer, params, config.learning_rate)
                prox = None if anchor is None else anchor.proximal(module, config.learning_rate)
                epochs = progress_bar(
                    range(phase.epochs), total=phase.epochs, desc=phase.name, enabled=progress
                )
                steps = 0
                for epoch in epochs:
                    total = 0.0
                    perm = torch.randperm(data.n_rows, generator=gen)
                    for idx in perm.split(config.batch_size):
                        xb = [t[idx].to(dev, non_blocking=True) for t in data.inputs]
                        yb = data.target[idx].to(dev, non_blocking=True)
                        optimizer.zero_grad(set_to_none=True)
                        batch_loss = loss_fn(module(*xb), yb)
                        batch_loss.backward()
                        optimizer.step()
                        if prox is not None:
                            prox()
                        total += float(batch_loss.item()) * len(idx)
                        steps += 1
                    history.append(epoch_record(phase.name, epoch, total, data.n_rows))
            results.append(
                TrainResult(
                    history=tuple(history),
                    private=False,
                    ledger_entry=None,
                    ledger=None,
                    noise_multiplier=None,
                    sample_rate=None,
                    steps=steps,
                    epsilon=None,
                    delta=None,
                    unit="none",
                    n_rows=data.n_rows,
                    n_persons=data.n_persons,
                    trainable=tuple(sorted(phase.trainable)),
                    device=str(dev),
                    seconds=time.perf_counter() - start,
                )
            )
    finally:
        module.train(was_training)
    return results


def train_non_private(
    module: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    config: TrainConfig | None = None,
    loss: Loss = "bce",
    trainable: Trainable = None,
    random_state: RandomState = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train ``module`` without privacy (plain Adam or SGD on shuffled minibatches).

    The counterpart of :func:`train_private` for comparisons; nothing is charged to a ledger
    and nothing it releases is private.
    """
    config = TrainConfig() if config is None else config
    names = resolve_trainable(module, trainable)
    (result,) = run_non_private_phases(
        module,
        inputs,
        y,
        phases=[Phase(name="train", epochs=config.epochs, trainable=names)],
        config=config,
        loss=loss,
        random_state=random_state,
        device=device,
        progress=progress,
    )
    return result
