"""Differentially private (and non-private) training of a module on per-record tensors.

:func:`train_private` trains the chosen parameters of any ``torch.nn.Module`` with DP-SGD and
records the run in a :class:`~privacy.PrivacyLedger`.

* **One row per person** (``person_index`` is ``None`` or all distinct): standard Opacus. A
  ``PrivacyEngine`` with the configured accountant wraps the module, the optimizer and a
  Poisson-sampling ``DPDataLoader``; ``BatchMemoryManager`` splits logical batches larger than
  ``max_physical_batch_size``. The noise multiplier is calibrated exactly as
  ``PrivacyEngine.make_private_with_epsilon`` does it (``get_noise_multiplier`` with sample rate
  ``1 / len(data_loader)``, the configured epochs and accountant) but *before* the engine is
  built, so that the budget check can refuse a run before it touches the data and so that the
  phases of LP-FT can share one noise multiplier; the engine then gets it through
  ``make_private``.
* **Several rows per person**: person-level DP-SGD. Persons are Poisson-sampled at rate
  ``q = batch_size / n_persons`` and all their rows are taken; Opacus' ``GradSampleModule``
  computes per-row gradients, which are summed per person; each person's summed gradient is
  clipped to ``max_grad_norm``; Gaussian noise of standard deviation
  ``noise_multiplier * max_grad_norm`` is added and the sum is divided by the expected batch
  size. The same Opacus accountant calibrates the noise and reports epsilon.

Randomness of private runs: Poisson sampling and noise never derive from ``random_state``.
With ``secure_mode=True`` they come from ``torchcsprng`` (Opacus' secure mode); otherwise from
``torch.Generator`` objects seeded from the operating system's CSPRNG whose seeds are never
stored (:func:`~privacy._utils.secure_generator`). A stored seed would let anyone holding the
released weights replay the noise and tell, with certainty, which records were trained on.
Private runs are therefore not bit-reproducible.

Refused before anything runs: fewer persons than ``min_records``, ``batch_size`` above the
number of persons, ``delta >= 1 / n_persons``, an epsilon no noise multiplier can meet, a run
that would exceed ``total_budget``, and modules that mix rows or that Opacus does not support.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import nn

from privacy._utils import (
    RandomState,
    check_random_state,
    resolve_device,
    secure_generator,
    spawn_seeds,
    torch_generator,
)
from privacy.accounting import calibrate_noise, compute_epsilon, person_sampling, record_sampling
from privacy.anchor import Anchor
from privacy.config import PrivacyConfig, TrainConfig
from privacy.data import PersonGroups, RowData, RowDataset, collate_rows, prepare_rows
from privacy.exceptions import (
    BatchSizeError,
    PrivacyConfigError,
    TooFewRecordsError,
)
from privacy.ledger import LedgerEntry, PrivacyLedger
from privacy.losses import make_loss
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

#: Which parameters to train: names (or module prefixes such as ``"head"``), or a predicate
#: ``(name, parameter) -> bool``. ``None`` means every parameter that requires grad.
Trainable: TypeAlias = "Iterable[str] | Callable[[str, nn.Parameter], bool] | None"
Loss: TypeAlias = "str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]"

HISTORY_NOTE = (
    "Training losses are computed on the private training data and are NOT differentially "
    "private; use them for debugging only and do not publish them."
)
#: ``data_id`` of ledger entries when the caller names no data set. A constant label (never a
#: fingerprint of the records, which would itself be computed from them): unnamed runs are
#: composed together, which can only overstate what was spent.
DEFAULT_DATA_ID = "target"


@dataclass(frozen=True)
class Phase:
    """One training phase: which parameters train, for how many epochs.

    Parameters
    ----------
    name : str
        Short label, e.g. ``"linear-probe"``.
    epochs : int
        Expected passes over the persons.
    trainable : frozenset of str
        Names of the parameters trained in this phase (all others are frozen and spend
        nothing).
    """

    name: str
    epochs: int
    trainable: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Outcome of one training phase.

    Attributes
    ----------
    history : tuple of dict
        One dict per epoch (``phase``, ``epoch``, ``loss``, ``rows``), kept for debugging.
        Computed on the private data without noise: see :data:`HISTORY_NOTE`.
    private : bool
        Whether the phase ran under differential privacy.
    ledger_entry : LedgerEntry or None
        The entry this phase appended to the ledger (``None`` when not private).
    ledger : PrivacyLedger or None
        The ledger the entry was appended to.
    noise_multiplier, sample_rate : float or None
    steps : int
        Optimizer steps (logical batches).
    epsilon, delta : float or None
        Guarantee of this phase alone (see the ledger for the composed total).
    unit : {"record", "person", "none"}
        Privacy unit (``"none"`` when not private).
    n_rows, n_persons : int
    trainable : tuple of str
        Names of the trained parameters.
    device : str
    seconds : float
        Wall-clock time of the phase.
    history_note : str
    """

    history: tuple[dict[str, Any], ...]
    private: bool
    ledger_entry: LedgerEntry | None
    ledger: PrivacyLedger | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int
    epsilon: float | None
    delta: float | None
    unit: str
    n_rows: int
    n_persons: int
    trainable: tuple[str, ...]
    device: str
    seconds: float
    history_note: str = field(default=HISTORY_NOTE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary (the ledger itself is left out; see ``ledger_entry``).

        This is a debugging record, not a release: for a private run its ``history``,
        ``n_rows`` and ``seconds`` are computed from the private data without noise. Only the
        ledger entry and the calibration (noise multiplier, sample rate, steps, epsilon,
        delta, number of persons) are covered by the guarantee.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        del out["ledger"]
        out["history"] = [dict(h) for h in self.history]
        out["trainable"] = list(self.trainable)
        out["ledger_entry"] = None if self.ledger_entry is None else self.ledger_entry.to_dict()
        return out


# -- parameters ------------------------------------------------------------------------------
def resolve_trainable(module: nn.Module, trainable: Trainable = None) -> frozenset[str]:
    """Names of the parameters to train.

    Parameters
    ----------
    module : torch.nn.Module
    trainable : iterable of str, callable or None
        Parameter names or module prefixes (``"head"`` selects ``"head.weight"``,
        ``"head.bias"``...), or a predicate ``(name, parameter) -> bool``. ``None`` selects
        every parameter that currently requires grad.

    Returns
    -------
    frozenset of str

    Examples
    --------
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    >>> sorted(resolve_trainable(m, ["1"]))
    ['1.bias', '1.weight']
    """
    params = dict(module.named_parameters())
    if trainable is None:
        names = {n for n, p in params.items() if p.requires_grad}
    elif isinstance(trainable, str):
        raise PrivacyConfigError(
            f"trainable={trainable!r} is a single string; pass a list such as [{trainable!r}] "
            "or a predicate (name, parameter) -> bool."
        )
    elif callable(trainable):
        names = {n for n, p in params.items() if trainable(n, p)}
    else:
        names = set()
        unknown = []
        for item in trainable:
            hits = {n for n in params if n == item or n.startswith(f"{item}.")}
            if not hits:
                unknown.append(item)
            names |= hits
        if unknown:
            shown = ", ".join(list(params)[:8])
            raise PrivacyConfigError(
                f"trainable names {unknown} match no parameter or module of the model; valid "
                f"parameter names include: {shown}."
            )
    if not names:
        raise PrivacyConfigError(
            "no parameter is selected for training; pass trainable=None (all parameters that "
            "require grad), a list of parameter or module names, or a predicate."
        )
    return frozenset(names)


@contextmanager
def _only_trainable(module: nn.Module, names: frozenset[str]) -> Iterator[list[nn.Parameter]]:
    """Make exactly ``names`` require grad; restore every flag afterwards."""
    saved = {n: p.requires_grad for n, p in module.named_parameters()}
    try:
        for n, p in module.named_parameters():
            p.requires_grad_(n in names)
        yield [p for n, p in module.named_parameters() if n in names]
    finally:
        for n, p in module.named_parameters():
            p.requires_grad_(saved[n])


@contextmanager
def _benign_hook_warnings_silenced() -> Iterator[None]:
    """Silence torch's note that full backward hooks fire for inputs without gradients.

    Opacus' hooks read the gradient with respect to each layer's *output*, which is exactly
    what that note is about, so it says nothing useful here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        yield


def _make_optimizer(name: str, params: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


# -- person-level clipping -------------------------------------------------------------------
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


def _person_chunks(persons: np.ndarray, counts: np.ndarray, max_rows: int) -> Iterator[np.ndarray]:
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


# -- planning --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    unit: str
    n_persons: int
    sample_rate: float
    steps: tuple[int, ...]
    delta: float
    noise_multiplier: float


def _plan(data: RowData, phases: Sequence[Phase], config: PrivacyConfig) -> _Plan:
    n = data.n_persons
    who = "persons" if data.groups is not None else "records"
    minimum = config.minimum_records(data.groups is not None)
    if n < minimum:
        raise TooFewRecordsError(
            f"the data holds {n} {who}, fewer than min_records={minimum}. With so few "
            "persons DP-SGD learns little, and on the record-level path Opacus' expected "
            "batch size reveals the cohort size, which its accounting treats as public "
            "(Opacus issue #571). Pool more data, use a non-private baseline on public data, "
            "or lower min_records only if the cohort size may be disclosed."
        )
    if config.batch_size > n:
        raise BatchSizeError(
            f"batch_size={config.batch_size} exceeds the number of {who} ({n}); Poisson "
            f"sampling needs a sample rate batch_size / n <= 1. Pass batch_size <= {n} "
            f"(e.g. {max(1, n // 4)})."
        )
    delta = config.resolve_delta(n)
    if config.secure_mode:
        _secure_generator()  # fail early, with the fix, when torchcsprng is missing
    if data.groups is not None:
        if config.grad_sample_mode == "ghost":
            raise PrivacyConfigError(
                "grad_sample_mode='ghost' computes per-row gradient norms only, so the rows of "
                "one person cannot be summed and clipped together; use grad_sample_mode="
                "'hooks' (or 'functorch' / 'ew'), or reduce the data to one row per person."
            )
        q = person_sampling(n, config.batch_size, 1)[0]
        steps = tuple(person_sampling(n, config.batch_size, ph.epochs)[1] for ph in phases)
        unit = "person"
    else:
        q = record_sampling(n, config.batch_size, 1)[0]
        steps = tuple(record_sampling(n, config.batch_size, ph.epochs)[1] for ph in phases)
        unit = "record"
    sigma = calibrate_noise(
        epsilon=config.epsilon,
        delta=delta,
        sample_rate=q,
        steps=sum(steps),
        accountant=config.accountant,
        epochs=sum(ph.epochs for ph in phases),
    )
    return _Plan(
        unit=unit,
        n_persons=n,
        sample_rate=q,
        steps=steps,
        delta=delta,
        noise_multiplier=sigma,
    )


def _secure_generator() -> Any:
    try:
        import torchcsprng as csprng
    except ImportError as exc:
        raise PrivacyConfigError(
            "secure_mode=True needs the torchcsprng package for cryptographically secure "
            "sampling and noise; install it, or pass secure_mode=False (sampling and noise "
            "then come from torch generators seeded from the operating system's CSPRNG, "
            "without torchcsprng's hardening)."
        ) from exc
    return csprng.create_random_device_generator("/dev/urandom")


def _private_generators(config: PrivacyConfig, device: torch.device) -> tuple[Any, Any]:
    """Generators of Poisson sampling (CPU) and of the noise (on ``device``) of one phase.

    Never derived from ``random_state``: see the module docstring.
    """
    if config.secure_mode:
        gen = _secure_generator()
        return gen, gen
    return secure_generator("cpu"), secure_generator(device)


def _gaussian_noise(
    std: float, like: torch.Tensor, generator: Any, *, hardened: bool
) -> torch.Tensor:
    """Noise ``N(0, std^2)`` shaped like ``like``, drawn from ``generator`` on its device.

    ``hardened`` sums four draws of standard deviation ``std`` and halves the sum (the same
    distribution), which defeats attacks on the floating-point representation of a single
    Gaussian draw (Holohan et al., 2021); Opacus' secure mode does the same.
    """
    device = getattr(generator, "device", torch.device("cpu"))
    if std == 0:
        return torch.zeros_like(like)

    def draw() -> torch.Tensor:
        return torch.normal(
            0.0, std, size=tuple(like.shape), generator=generator, device=device, dtype=like.dtype
        )

    noise = (draw() + draw() + draw() + draw()) / 2 if hardened else draw()
    return noise.to(like.device)


# -- the two DP-SGD loops --------------------------------------------------------------------
def _progress(iterable: Iterable[int], *, total: int, desc: str, enabled: bool) -> Iterable[int]:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _train_records(
    module: nn.Module,
    data: RowData,
    *,
    phase: Phase,
    config: PrivacyConfig,
    loss_fn: Any,
    plan: _Plan,
    device: torch.device,
    progress: bool,
    anchor: Anchor | None = None,
) -> tuple[list[dict[str, Any]], int, float]:
    from opacus import PrivacyEngine
    from opacus.utils.batch_memory_manager import BatchMemoryManager
    from torch.utils.data import DataLoader

    with warnings.catch_warnings():
        # Opacus warns that its secure mode is off; outside secure mode sampling and noise
        # still come from generators seeded from the OS CSPRNG (see the module docstring).
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine(accountant=config.accountant, secure_mode=config.secure_mode)
    sample_gen, noise_gen = _private_generators(config, device)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = _make_optimizer(config.optimizer, params, config.learning_rate)
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
        epochs = _progress(
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
                    dp_optimizer.step()
                    if prox is not None and not dp_optimizer._is_last_step_skipped:
                        prox()
            history.append(_epoch_record(phase.name, epoch, total, rows))
        steps = sum(int(t) for _, _, t in engine.accountant.history)
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


def _train_persons(
    module: nn.Module,
    data: RowData,
    *,
    phase: Phase,
    phase_steps: int,
    config: PrivacyConfig,
    loss_fn: Any,
    plan: _Plan,
    device: torch.device,
    progress: bool,
    anchor: Anchor | None = None,
) -> tuple[list[dict[str, Any]], int, float]:
    from opacus.grad_sample.utils import wrap_model

    groups = data.groups
    assert isinstance(groups, PersonGroups)
    sample_gen, noise_gen = _private_generators(config, device)
    gsm = wrap_model(
        module,
        grad_sample_mode=config.grad_sample_mode,
        batch_first=True,
        loss_reduction="mean",
    )
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = _make_optimizer(config.optimizer, params, config.learning_rate)
    prox = None if anchor is None else anchor.proximal(module, config.learning_rate)
    std = plan.noise_multiplier * config.max_grad_norm
    per_epoch = max(1, math.ceil(phase_steps / phase.epochs))
    history: list[dict[str, Any]] = []
    total, rows_seen, epoch = 0.0, 0, 0
    try:
        steps_iter = _progress(
            range(phase_steps), total=phase_steps, desc=f"DP {phase.name}", enabled=progress
        )
        for step in steps_iter:
            mask = torch.rand(groups.n_persons, generator=sample_gen) < plan.sample_rate
            persons = torch.nonzero(mask).flatten().numpy()
            summed = [torch.zeros_like(p) for p in params]
            for chunk in _person_chunks(persons, groups.counts, config.max_physical_batch_size):
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
                noise = _gaussian_noise(std, s, noise_gen, hardened=config.secure_mode)
                p.grad = (s + noise) / config.batch_size
            optimizer.step()
            if prox is not None:
                prox()
            optimizer.zero_grad(set_to_none=True)
            if (step + 1) % per_epoch == 0 or step + 1 == phase_steps:
                history.append(_epoch_record(phase.name, epoch, total, rows_seen))
                total, rows_seen, epoch = 0.0, 0, epoch + 1
    finally:
        gsm.to_standard_module()
    epsilon = compute_epsilon(
        [(plan.noise_multiplier, plan.sample_rate, phase_steps)],
        delta=plan.delta,
        accountant=config.accountant,
    )
    return history, phase_steps, epsilon


def _epoch_record(phase: str, epoch: int, total: float, rows: int) -> dict[str, Any]:
    return {
        "phase": phase,
        "epoch": epoch,
        "loss": total / rows if rows else float("nan"),
        "rows": rows,
    }


# -- public entry points ---------------------------------------------------------------------
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
    plan = _plan(data, phases, config)
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
            with _only_trainable(module, phase.trainable), _benign_hook_warnings_silenced():
                if plan.unit == "person":
                    history, steps, eps = _train_persons(
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
                    history, steps, eps = _train_records(
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
            with _only_trainable(module, phase.trainable) as params:
                optimizer = _make_optimizer(config.optimizer, params, config.learning_rate)
                prox = None if anchor is None else anchor.proximal(module, config.learning_rate)
                epochs = _progress(
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
                    history.append(_epoch_record(phase.name, epoch, total, data.n_rows))
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
