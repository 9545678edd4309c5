"""Configuration of private and non-private fine-tuning.

:class:`PrivacyConfig` holds every option of a differentially private run. Its options
interact (``epsilon`` and ``total_budget``, ``batch_size`` and the number of persons, ``delta``
and the number of persons), so it is a frozen dataclass validated on construction; the checks
that need the data (``delta < 1/n``, ``batch_size <= n``, ``n >= min_records``) run at fit time.

:class:`TrainConfig` holds the few options of the non-private path, so that the same strategies
can be run with and without privacy and compared.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from privacy.exceptions import DeltaTooLargeError, PrivacyConfigError

__all__ = [
    "ACCOUNTANTS",
    "DEFAULT_DELTA_CAP",
    "GRAD_SAMPLE_MODES",
    "OPTIMIZERS",
    "PrivacyConfig",
    "TrainConfig",
    "default_delta",
]

#: Accountants understood by Opacus' ``create_accountant``.
ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp", "gdp")
#: Opacus per-sample gradient engines.
GRAD_SAMPLE_MODES: tuple[str, ...] = ("hooks", "functorch", "ew", "ghost")
#: Optimizers applied to the (noisy) gradient.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: Default smallest cohort of the record-level path (Opacus' data loader and optimizer).
MIN_RECORDS = 50
#: Default smallest cohort of the person-level path (fixed normalisation by the batch size).
MIN_PERSONS = 20
#: Upper cap of the automatically chosen delta.
DEFAULT_DELTA_CAP = 1e-5


def default_delta(n_persons: int) -> float:
    """Delta chosen when ``PrivacyConfig.delta`` is ``None``: ``min(1e-5, n_persons ** -1.1)``.

    Any ``delta`` of order ``1/n`` would allow a mechanism that publishes one random person's
    record in full, so delta must be well below ``1/n``. ``n ** -1.1`` is polynomially smaller
    than ``1/n``; the ``1e-5`` cap keeps it conventional for cohorts below ~35,000 persons.

    Parameters
    ----------
    n_persons : int
        Number of distinct persons in the private data.

    Returns
    -------
    float

    Examples
    --------
    >>> default_delta(1000)
    1e-05
    >>> round(default_delta(100_000), 9)
    3.162e-06
    """
    if n_persons < 1:
        raise PrivacyConfigError(
            f"n_persons must be a positive integer, got {n_persons!r}; there is no data to protect."
        )
    return min(DEFAULT_DELTA_CAP, float(n_persons) ** -1.1)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise PrivacyConfigError(
            f"{name} must be a positive integer, got {value!r}; pass e.g. {name}=10."
        )
    return int(value)


def _positive_float(name: str, value: Any, *, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise PrivacyConfigError(
            f"{name} must be a finite positive number, got {value!r}; pass e.g. {name}={example}."
        )
    if float(value) <= 0:
        raise PrivacyConfigError(f"{name} must be > 0, got {value!r}; pass e.g. {name}={example}.")
    return float(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PrivacyConfigError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}."
        )
    return str(value)


def _check_keys(cls_name: str, data: Mapping[str, Any], fields: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise PrivacyConfigError(
            f"{cls_name}.from_dict expects a mapping (e.g. the output of to_dict()), "
            f"got {type(data).__name__}."
        )
    unknown = sorted(set(data) - fields)
    if unknown:
        raise PrivacyConfigError(
            f"{cls_name}.from_dict got unknown key(s) {unknown}; "
            f"valid keys are {sorted(fields)}. Remove the unknown keys or fix their spelling."
        )


@dataclass(frozen=True, kw_only=True)
class PrivacyConfig:
    """Options of a differentially private fine-tuning run.

    The privacy unit is one person: with ``person_index`` given at fit time, all rows of one
    person are sampled, clipped and counted together.

    Parameters
    ----------
    epsilon : float
        Target epsilon of this run (> 0).
    delta : float or None, default=None
        Target delta. ``None`` chooses ``min(1e-5, n_persons ** -1.1)`` at fit time (see
        :func:`default_delta`). Any value must satisfy ``delta < 1 / n_persons`` at fit time.
    max_grad_norm : float, default=1.0
        Clipping bound C of each person's gradient (L2 norm over all trainable parameters).
    accountant : {"prv", "rdp", "gdp"}, default="prv"
        Opacus accountant used to calibrate the noise and report epsilon. ``"prv"`` is the
        tightest; ``"rdp"`` is faster to calibrate; ``"gdp"`` is approximate and only
        supports a constant noise multiplier and sample rate.
    epochs : int, default=10
        Expected number of passes over the persons. With Poisson sampling at rate
        ``q = batch_size / n_persons`` a run takes ``int(epochs / q)`` steps.
    batch_size : int, default=64
        Expected (logical) number of persons per step. Must not exceed the number of persons.
    max_physical_batch_size : int, default=256
        Largest number of rows sent through the model at once (Opacus ``BatchMemoryManager``).
        It bounds memory only; it does not change the privacy guarantee.
    grad_sample_mode : {"hooks", "functorch", "ew", "ghost"}, default="hooks"
        Opacus per-sample gradient engine. ``"ghost"`` (ghost clipping) computes per-row norms
        only and therefore cannot be used when persons have several rows.
    secure_mode : bool, default=False
        Where sampling and noise come from. Never from ``random_state``: a seed that is stored
        or chosen by the user would let anyone holding the released weights replay the noise
        and tell, with certainty, whether a record was trained on. With ``False`` Poisson
        sampling and noise draw from ``torch.Generator`` objects seeded with 64 bits from the
        operating system's CSPRNG (``secrets``); the seeds are never stored, returned or
        logged. With ``True`` they come from ``torchcsprng`` (Opacus' secure mode, which also
        hardens the Gaussian draws against floating-point attacks); the package must be
        installed (it has no wheels for current Python and torch releases). Either way a
        private run is not bit-reproducible: two runs with the same data and
        ``random_state`` give different weights, which is what the guarantee requires.
    learning_rate : float, default=1e-3
        Step size of the optimizer applied to the noisy gradient.
    optimizer : {"adam", "sgd"}, default="adam"
        Optimizer applied to the noisy gradient (post-processing: any choice keeps the
        guarantee).
    total_budget : float or None, default=None
        Cap on the total epsilon spent on the same ``data_id`` across runs, as composed by
        the :class:`~privacy.PrivacyLedger` the run is charged to (persist it with
        :meth:`~privacy.PrivacyLedger.save` so that runs in other sessions count too). A run
        that would exceed it is refused before its first step, naming what was spent. Must
        be >= ``epsilon``.
    min_records : int or None, default=None
        Smallest number of persons accepted. ``None``: 50 on the record-level path (Opacus'
        ``DPDataLoader`` and optimizer, which divide the noisy sum by an expected batch size
        computed from the number of records: at very small n this leaks measurably more than
        the stated epsilon, Opacus issues #571 and #819), and 20 on the person-level path
        (Poisson sampling of persons at ``q = batch_size / n`` and division by the fixed
        ``batch_size``, with n treated as public, as the accounting does). Below that
        DP-SGD learns too little to be worth a release. Lower it only deliberately.

    Examples
    --------
    >>> cfg = PrivacyConfig(epsilon=1.0, epochs=5)
    >>> cfg.accountant
    'prv'
    >>> PrivacyConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> PrivacyConfig(epsilon=-1)
    Traceback (most recent call last):
    ...
    privacy.exceptions.PrivacyConfigError: epsilon must be > 0, got -1; pass e.g. epsilon=1.0.
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    epochs: int = 10
    batch_size: int = 64
    max_physical_batch_size: int = 256
    grad_sample_mode: str = "hooks"
    secure_mode: bool = False
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    total_budget: float | None = None
    min_records: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "epsilon", _positive_float("epsilon", self.epsilon, example="1.0"))
        if self.delta is not None:
            delta = _positive_float("delta", self.delta, example="1e-6")
            if delta >= 1.0:
                raise PrivacyConfigError(
                    f"delta must be < 1 (and well below 1/n_persons), got {self.delta!r}; "
                    "pass delta=None to choose min(1e-5, n ** -1.1) at fit time."
                )
            set_(self, "delta", delta)
        set_(
            self,
            "max_grad_norm",
            _positive_float("max_grad_norm", self.max_grad_norm, example="1.0"),
        )
        _choice("accountant", self.accountant, ACCOUNTANTS)
        set_(self, "epochs", _positive_int("epochs", self.epochs))
        set_(self, "batch_size", _positive_int("batch_size", self.batch_size))
        set_(
            self,
            "max_physical_batch_size",
            _positive_int("max_physical_batch_size", self.max_physical_batch_size),
        )
        _choice("grad_sample_mode", self.grad_sample_mode, GRAD_SAMPLE_MODES)
        if not isinstance(self.secure_mode, bool):
            raise PrivacyConfigError(
                f"secure_mode must be True or False, got {self.secure_mode!r}."
            )
        set_(
            self,
            "learning_rate",
            _positive_float("learning_rate", self.learning_rate, example="1e-3"),
        )
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.total_budget is not None:
            budget = _positive_float("total_budget", self.total_budget, example="3.0")
            if budget < self.epsilon:
                raise PrivacyConfigError(
                    f"total_budget={budget} is smaller than this run's epsilon={self.epsilon}, "
                    "so the run could never start; raise total_budget or lower epsilon."
                )
            set_(self, "total_budget", budget)
        if self.min_records is not None:
            set_(self, "min_records", _positive_int("min_records", self.min_records))

    def minimum_records(self, person_level: bool) -> int:
        """The smallest number of persons accepted on the given path (see ``min_records``)."""
        if self.min_records is not None:
            return int(self.min_records)
        return MIN_PERSONS if person_level else MIN_RECORDS

    def resolve_delta(self, n_persons: int) -> float:
        """Delta used for ``n_persons`` persons, checked against ``1 / n_persons``.

        Parameters
        ----------
        n_persons : int
            Number of distinct persons in the private data.

        Returns
        -------
        float

        Raises
        ------
        DeltaTooLargeError
            If ``delta >= 1 / n_persons``.
        """
        delta = default_delta(n_persons) if self.delta is None else self.delta
        if delta >= 1.0 / n_persons:
            raise DeltaTooLargeError(
                f"delta={delta:g} is not below 1/n_persons = 1/{n_persons} = "
                f"{1.0 / n_persons:.3g}: a mechanism with such a delta may publish a whole "
                f"person's record. Pass delta=None (chooses {default_delta(n_persons):.3g}) "
                f"or a delta well below {1.0 / n_persons:.3g}."
            )
        return delta

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of all options."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        _check_keys("PrivacyConfig", data, {f.name for f in dataclasses.fields(cls)})
        return cls(**dict(data))


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of non-private fine-tuning (plain minibatch training).

    Parameters
    ----------
    epochs : int, default=10
        Passes over the data (each row exactly once per epoch, shuffled).
    batch_size : int, default=64
        Rows per step.
    learning_rate : float, default=1e-3
        Step size of the optimizer.
    optimizer : {"adam", "sgd"}, default="adam"

    Examples
    --------
    >>> TrainConfig.matching(PrivacyConfig(epsilon=1.0, epochs=3)).epochs
    3
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "epochs", _positive_int("epochs", self.epochs))
        set_(self, "batch_size", _positive_int("batch_size", self.batch_size))
        set_(
            self,
            "learning_rate",
            _positive_float("learning_rate", self.learning_rate, example="1e-3"),
        )
        _choice("optimizer", self.optimizer, OPTIMIZERS)

    @classmethod
    def matching(cls, config: PrivacyConfig) -> TrainConfig:
        """Non-private options equal to those of ``config`` (for like-for-like comparisons)."""
        return cls(
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            optimizer=config.optimizer,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of all options."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        _check_keys("TrainConfig", data, {f.name for f in dataclasses.fields(cls)})
        return cls(**dict(data))
