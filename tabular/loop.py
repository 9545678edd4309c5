"""The epoch loop shared by in-memory, distributed and streaming pretraining.

Every pretraining loop of the package runs through :func:`run_epochs`: the data source
supplies one callable that trains (and validates) one epoch, and the loop does the rest in one
place - timing, the per-epoch history, the progress bar (shown only on a terminal), early
stopping on the validation loss and the restoration of the best weights. The device is chosen
by :func:`resolve_device`, the one place where ``"auto"`` is decided, and the options common
to every pretraining function are checked by :func:`check_options`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tabular._torch import state_to_cpu
from tabular.exceptions import PretrainingError, TabularError

__all__ = [
    "EarlyStopping",
    "EpochResult",
    "best_val_loss",
    "check_options",
    "progress_bar",
    "resolve_device",
    "run_epochs",
]


def resolve_device(device: str | torch.device, *, local_rank: int | None = None) -> torch.device:
    """The torch device to train or predict on.

    Parameters
    ----------
    device : "auto", str or torch.device
        ``"auto"`` means CUDA when present, else the CPU; anything else is passed to torch and
        checked.
    local_rank : int, optional
        Under ``torchrun``, this process's rank on its machine: ``"auto"`` then means
        ``cuda:local_rank``, so that every process of a data-parallel job has its own GPU.

    Returns
    -------
    torch.device

    Raises
    ------
    TabularError
        Not a torch device, or CUDA requested where there is none.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TabularError(f"device={device!r} is not a torch device: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TabularError(f"device={device!r} was requested but CUDA is not available")
    return resolved


class EarlyStopping:
    """Best-epoch tracking on a validation loss, with patience and restoration of the best weights.

    Without a validation loss (``None``) every epoch counts as the best and training never
    stops early.

    Parameters
    ----------
    patience : int
        Epochs without a better validation loss before :meth:`step` says stop.
    min_delta : float, default=0.0
        How much lower than the best so far a validation loss must be to count as better.
    """

    def __init__(self, patience: int, *, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = math.inf
        self.best_epoch = 0
        self.stale = 0
        self._best_state: tuple[dict[str, torch.Tensor], ...] | None = None

    def step(self, epoch: int, val_loss: float | None, *modules: torch.nn.Module) -> bool:
        """Record one epoch; return True when training should stop."""
        if val_loss is None:
            self.best_epoch = epoch
            return False
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.stale = val_loss, epoch, 0
            self._best_state = tuple(state_to_cpu(m) for m in modules)
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self, *modules: torch.nn.Module) -> None:
        """Load the weights of the best epoch (if one was recorded) into ``modules``."""
        if self._best_state is not None:
            for module, state in zip(modules, self._best_state, strict=True):
                module.load_state_dict(state)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str,
    enabled: bool,
) -> Any:
    """A ``tqdm`` bar that shows only when ``enabled`` and the output is a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False
    )


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of a data source reports to :func:`run_epochs`.

    Attributes
    ----------
    train_loss : float
        Mean training loss over the epoch's rows (NaN when no batch was large enough).
    val_loss : float or None
        Validation loss, ``None`` without validation rows.
    rows : int or None
        Training rows of the epoch over all processes; when given, the history also records
        them and the throughput (``records_per_s``).
    """

    train_loss: float
    val_loss: float | None = None
    rows: int | None = None


def run_epochs(
    epoch_fn: Callable[[int, Callable[[int], None]], EpochResult],
    *,
    epochs: int,
    patience: int,
    modules: Sequence[torch.nn.Module],
    desc: str,
    progress: bool,
    steps_per_epoch: int | None = None,
    min_delta: float = 0.0,
) -> tuple[list[dict[str, Any]], int]:
    """Train for at most ``epochs`` epochs with early stopping; restore the best weights.

    Parameters
    ----------
    epoch_fn : callable ``(epoch, advance) -> EpochResult``
        Trains and validates epoch ``epoch`` (1-based). ``advance(n)`` moves the progress bar
        by ``n`` steps when the bar counts steps (``steps_per_epoch`` given); it does nothing
        otherwise.
    epochs : int
    patience : int
        See :class:`EarlyStopping`.
    modules : sequence of torch.nn.Module
        Modules whose weights of the best epoch are kept and restored at the end.
    desc : str
        Label of the progress bar.
    progress : bool
        Show the progress bar (only on a terminal).
    steps_per_epoch : int, optional
        Count the bar in steps (``epochs * steps_per_epoch`` of them) instead of epochs.
    min_delta : float, default=0.0
        See :class:`EarlyStopping`.

    Returns
    -------
    history : list of dict
        One row per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds``, and with
        :attr:`EpochResult.rows` also ``rows`` and ``records_per_s``.
    best_epoch : int

    Examples
    --------
    >>> net = torch.nn.Linear(1, 1)
    >>> losses = iter([0.5, 0.4, 0.6, 0.7])
    >>> history, best = run_epochs(
    ...     lambda epoch, advance: EpochResult(train_loss=1.0, val_loss=next(losses)),
    ...     epochs=4, patience=2, modules=[net], desc="demo", progress=False)
    >>> [row["val_loss"] for row in history], best
    ([0.5, 0.4, 0.6, 0.7], 2)
    """
    by_step = steps_per_epoch is not None
    bar = progress_bar(
        total=epochs * steps_per_epoch if steps_per_epoch is not None else epochs,
        desc=desc,
        unit="step" if by_step else "epoch",
        enabled=progress,
    )
    advance: Callable[[int], None] = bar.update if by_step else _ignore
    stopper = EarlyStopping(patience, min_delta=min_delta)
    history: list[dict[str, Any]] = []
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            result = epoch_fn(epoch, advance)
            seconds = time.perf_counter() - start
            row: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": result.train_loss,
                "val_loss": result.val_loss,
                "seconds": seconds,
            }
            if result.rows is not None:
                row["rows"] = result.rows
                row["records_per_s"] = result.rows / seconds if seconds > 0 else None
            history.append(row)
            if not by_step:
                bar.update(1)
            postfix = {"epoch": epoch} if by_step else {}
            bar.set_postfix(
                **postfix,
                train=f"{result.train_loss:.4f}",
                val="-" if result.val_loss is None else f"{result.val_loss:.4f}",
            )
            if stopper.step(epoch, result.val_loss, *modules):
                break
    finally:
        bar.close()
    stopper.restore(*modules)
    return history, stopper.best_epoch


def check_options(
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    validation_fraction: float,
    patience: int,
) -> None:
    """Refuse pretraining options out of range, naming the option (:class:`PretrainingError`)."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise PretrainingError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise PretrainingError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise PretrainingError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(validation_fraction, (int, float)) and 0 <= validation_fraction < 1):
        raise PretrainingError(
            f"validation_fraction must be in [0, 1), got {validation_fraction!r}"
        )


def best_val_loss(history: Sequence[dict[str, Any]], best_epoch: int) -> float | None:
    """The validation loss of ``best_epoch`` in ``history`` (``None`` when it has none)."""
    return next((row["val_loss"] for row in history if row["epoch"] == best_epoch), None)


def _ignore(n: int) -> None:
    """Progress counted in epochs: steps are not shown."""
