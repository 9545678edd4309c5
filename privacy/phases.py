"""Training phases and what they share: which parameters train, the optimizer, the per-epoch
record, the progress bar and the result of a phase.

Both the private loops (:mod:`privacy.person_level`, :mod:`privacy.record_level`) and the
non-private one (:func:`privacy.training.run_non_private_phases`) build on these pieces.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

import torch
from torch import nn

from privacy.exceptions import PrivacyConfigError
from privacy.ledger import LedgerEntry, PrivacyLedger

__all__ = [
    "HISTORY_NOTE",
    "Loss",
    "Phase",
    "TrainResult",
    "Trainable",
    "benign_hook_warnings_silenced",
    "epoch_record",
    "make_optimizer",
    "only_trainable",
    "progress_bar",
    "resolve_trainable",
]

#: Which parameters to train: names (or module prefixes such as ``"head"``), or a predicate
#: ``(name, parameter) -> bool``. ``None`` means every parameter that requires grad.
Trainable: TypeAlias = "Iterable[str] | Callable[[str, nn.Parameter], bool] | None"
Loss: TypeAlias = "str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]"

HISTORY_NOTE = (
    "Training losses are computed on the private training data and are NOT differentially "
    "private; use them for debugging only and do not publish them."
)


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
def only_trainable(module: nn.Module, names: frozenset[str]) -> Iterator[list[nn.Parameter]]:
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
def benign_hook_warnings_silenced() -> Iterator[None]:
    """Silence torch's note that full backward hooks fire for inputs without gradients.

    Opacus' hooks read the gradient with respect to each layer's *output*, which is exactly
    what that note is about, so it says nothing useful here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        yield


def make_optimizer(name: str, params: Sequence[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` for ``"adam"``, else ``torch.optim.SGD``, over ``params``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


def epoch_record(phase: str, epoch: int, total: float, rows: int) -> dict[str, Any]:
    """One row of a phase's history: mean loss over the ``rows`` rows seen in ``epoch``."""
    return {
        "phase": phase,
        "epoch": epoch,
        "loss": total / rows if rows else float("nan"),
        "rows": rows,
    }


def progress_bar(iterable: Iterable[int], *, total: int, desc: str, enabled: bool) -> Iterable[int]:
    """``iterable`` behind a progress bar, shown only when ``enabled`` and on a terminal."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None)
