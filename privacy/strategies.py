"""Fine-tuning strategies, by name, with and without differential privacy.

A strategy decides which parameters train in which phase. The model must follow the
:class:`FineTunable` protocol: it exposes ``model.head`` (the prediction head) and
``model.blocks`` (the encoder's blocks in order, the last one closest to the head).

==============  =============================================================================
``linear-probe``  only the head trains
``full``          every parameter trains
``partial``       the last ``n_blocks`` blocks and the head train
``lp-ft``         a linear-probe phase, then a full phase (one privacy budget for both)
==============  =============================================================================

Under DP all phases of a strategy share ONE budget: one noise multiplier is calibrated over
the summed steps of the phases (same sample rate), so that their composition meets
``config.epsilon``; each phase writes its own ledger entry and the ledger composes them.
Register new strategies with :func:`register_strategy`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from privacy.config import PrivacyConfig, TrainConfig
from privacy.exceptions import PrivacyConfigError, RegistryError, StrategyError
from privacy.ledger import PrivacyLedger, compose

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from privacy._utils import RandomState
    from privacy.anchor import Anchor
    from privacy.training import Loss, Phase, TrainResult

__all__ = [
    "FineTunable",
    "FineTuneResult",
    "Full",
    "LinearProbe",
    "LinearProbeThenFineTune",
    "Partial",
    "Strategy",
    "available_strategies",
    "fine_tune",
    "get_strategy",
    "register_strategy",
]


class FineTunable(Protocol):
    """What a model must expose to be fine-tuned by a named strategy.

    Attributes
    ----------
    head : torch.nn.Module
        The prediction head (a sub-module of the model).
    blocks : sequence of torch.nn.Module
        The encoder's blocks in forward order (an ``nn.ModuleList`` or a list of registered
        sub-modules); ``blocks[-1]`` is the block closest to the head.

    The model itself is called as ``model(*inputs)`` and returns the head's output. The
    protocol is for type checkers; at run time the strategies check the two attributes and
    say what is missing (``isinstance`` cannot see sub-modules, which ``nn.Module`` keeps in
    ``_modules``).
    """

    head: nn.Module
    blocks: Sequence[nn.Module]


def _module_names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


def _params_of(model: nn.Module, sub: nn.Module, what: str) -> frozenset[str]:
    names = _module_names(model)
    if id(sub) not in names:
        raise StrategyError(
            f"model.{what} is not a registered sub-module of the model; assign it as an "
            "attribute (or put it in an nn.ModuleList) so that its parameters belong to the "
            "model."
        )
    own = {id(p) for p in sub.parameters()}
    return frozenset(n for n, p in model.named_parameters() if id(p) in own)


def _head_params(model: nn.Module) -> frozenset[str]:
    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "parameters"):
        raise StrategyError(
            f"{type(model).__name__} has no attribute 'head' (an nn.Module); fine-tuning "
            "strategies need model.head and model.blocks (see privacy.FineTunable)."
        )
    names = _params_of(model, head, "head")
    if not names:
        raise StrategyError("model.head has no parameters, so there is nothing to probe.")
    return names


def _blocks(model: nn.Module) -> list[nn.Module]:
    blocks = getattr(model, "blocks", None)
    if blocks is None or isinstance(blocks, str | bytes) or not hasattr(blocks, "__len__"):
        raise StrategyError(
            f"{type(model).__name__} has no attribute 'blocks' (an ordered list of encoder "
            "blocks, last = closest to the head); see privacy.FineTunable."
        )
    return list(blocks)


def _all_params(model: nn.Module) -> frozenset[str]:
    return frozenset(n for n, _ in model.named_parameters())


class Strategy(ABC):
    """A fine-tuning strategy: the phases to run and the parameters each one trains."""

    #: Registry name.
    name: ClassVar[str]

    @abstractmethod
    def phases(self, model: nn.Module, *, epochs: int) -> list[Phase]:
        """The phases to run on ``model`` given the configured number of ``epochs``."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


_STRATEGIES: dict[str, type[Strategy]] = {}
S = TypeVar("S", bound=type[Strategy])


def register_strategy(cls: S, *, overwrite: bool = False) -> S:
    """Register a :class:`Strategy` subclass under ``cls.name`` (usable as a decorator).

    Raises
    ------
    RegistryError
        If the name is taken and ``overwrite`` is False.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{cls.__name__} needs a class attribute 'name' (a string).")
    if name in _STRATEGIES and _STRATEGIES[name] is not cls and not overwrite:
        raise RegistryError(
            f"a strategy named {name!r} is already registered ({_STRATEGIES[name].__name__}); "
            "choose another name or pass overwrite=True."
        )
    _STRATEGIES[name] = cls
    return cls


def available_strategies() -> list[str]:
    """Names of the registered strategies."""
    return sorted(_STRATEGIES)


def get_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate the strategy registered as ``name`` with ``params``.

    Examples
    --------
    >>> get_strategy("partial", n_blocks=2)
    Partial(n_blocks=2)
    """
    if name not in _STRATEGIES:
        raise RegistryError(
            f"unknown strategy {name!r}; registered strategies are {available_strategies()}."
        )
    try:
        return _STRATEGIES[name](**params)
    except TypeError as exc:
        raise PrivacyConfigError(f"strategy {name!r} does not accept {params}: {exc}") from exc


@register_strategy
class LinearProbe(Strategy):
    """Train only ``model.head``; the encoder stays frozen."""

    name = "linear-probe"

    def phases(self, model: nn.Module, *, epochs: int) -> list[Phase]:
        from privacy.training import Phase

        return [Phase(name=self.name, epochs=epochs, trainable=_head_params(model))]


@register_strategy
class Full(Strategy):
    """Train every parameter of the model."""

    name = "full"

    def phases(self, model: nn.Module, *, epochs: int) -> list[Phase]:
        from privacy.training import Phase

        return [Phase(name=self.name, epochs=epochs, trainable=_all_params(model))]


@register_strategy
class Partial(Strategy):
    """Train the last ``n_blocks`` encoder blocks and the head.

    Parameters
    ----------
    n_blocks : int, default=1
    """

    name = "partial"

    def __init__(self, n_blocks: int = 1) -> None:
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1:
            raise PrivacyConfigError(
                f"n_blocks must be a positive integer, got {n_blocks!r}; use 'linear-probe' "
                "to train the head alone."
            )
        self.n_blocks = n_blocks

    def phases(self, model: nn.Module, *, epochs: int) -> list[Phase]:
        from privacy.training import Phase

        blocks = _blocks(model)
        if self.n_blocks > len(blocks):
            raise StrategyError(
                f"n_blocks={self.n_blocks} but the model has {len(blocks)} block(s); pass "
                f"n_blocks <= {len(blocks)} or use the 'full' strategy."
            )
        names = set(_head_params(model))
        for i, block in enumerate(blocks[-self.n_blocks :]):
            names |= _params_of(model, block, f"blocks[{len(blocks) - self.n_blocks + i}]")
        return [Phase(name=self.name, epochs=epochs, trainable=frozenset(names))]


@register_strategy
class LinearProbeThenFineTune(Strategy):
    """LP-FT: a linear-probe phase, then a full fine-tuning phase.

    Parameters
    ----------
    lp_fraction : float, default=0.5
        Share of the epochs spent on the linear probe (at least one epoch each).
    """

    name = "lp-ft"

    def __init__(self, lp_fraction: float = 0.5) -> None:
        if not 0 < lp_fraction < 1:
            raise PrivacyConfigError(
                f"lp_fraction must be in (0, 1), got {lp_fraction!r}; e.g. lp_fraction=0.5."
            )
        self.lp_fraction = float(lp_fraction)

    def phases(self, model: nn.Module, *, epochs: int) -> list[Phase]:
        from privacy.training import Phase

        if epochs < 2:
            raise StrategyError(
                f"lp-ft needs at least 2 epochs (one per phase), got epochs={epochs}."
            )
        lp = min(epochs - 1, max(1, math.floor(epochs * self.lp_fraction + 0.5)))
        return [
            Phase(name="linear-probe", epochs=lp, trainable=_head_params(model)),
            Phase(name="full", epochs=epochs - lp, trainable=_all_params(model)),
        ]


@dataclass(frozen=True, kw_only=True)
class FineTuneResult:
    """Outcome of :func:`fine_tune`.

    Attributes
    ----------
    strategy : str
    private : bool
    phases : tuple of TrainResult
    epsilon, delta : float or None
        The composed guarantee of all phases of this run (``None`` when not private).
    composition : str
        How the phases were composed.
    ledger : PrivacyLedger or None
    """

    strategy: str
    private: bool
    phases: tuple[TrainResult, ...]
    epsilon: float | None
    delta: float | None
    composition: str
    ledger: PrivacyLedger | None

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch training losses of all phases (NOT private; see ``HISTORY_NOTE``)."""
        return [h for phase in self.phases for h in phase.history]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary (the ledger is serialized separately)."""
        return {
            "strategy": self.strategy,
            "private": self.private,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "composition": self.composition,
            "phases": [p.to_dict() for p in self.phases],
        }


def fine_tune(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    *,
    strategy: str | Strategy = "linear-probe",
    config: PrivacyConfig | None = None,
    train_config: TrainConfig | None = None,
    loss: Loss = "bce",
    person_index: np.ndarray | Sequence[Any] | None = None,
    ledger: PrivacyLedger | None = None,
    data_id: str | None = None,
    random_state: RandomState = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    anchor: Anchor | None = None,
    person_level: bool = False,
) -> FineTuneResult:
    """Fine-tune ``model`` with a named strategy, privately (``config``) or not.

    Parameters
    ----------
    model : FineTunable torch.nn.Module
        Trained in place.
    inputs, y :
        Per-record tensors, as for :func:`~privacy.train_private`.
    strategy : str or Strategy, default="linear-probe"
        A registered name (see :func:`available_strategies`) or an instance.
    config : PrivacyConfig or None
        ``None`` trains without privacy, with ``train_config``.
    train_config : TrainConfig or None
        Options of the non-private path (default ``TrainConfig()``); must be ``None`` when
        ``config`` is given. ``TrainConfig.matching(config)`` gives like-for-like options.
    loss, person_index, ledger, data_id, random_state, device, progress :
        As for :func:`~privacy.train_private` (``person_index`` and ``ledger`` only matter
        under privacy).
    person_level : bool, default=False
        Person-level DP-SGD whenever ``person_index`` is given, even if every person has one
        row (see :func:`privacy.data.prepare_rows`: deciding from the data releases whether
        anyone has several rows).
    anchor : Anchor or None
        A pull toward reference weights (L2-SP, or a Laplace approximation of the source
        model), applied as a proximal step after each optimizer step: it reads no data, so
        it keeps the DP guarantee (see :mod:`privacy.anchor`).

    Returns
    -------
    FineTuneResult
    """
    from privacy.training import run_non_private_phases, run_private_phases

    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if not isinstance(strat, Strategy):
        raise PrivacyConfigError(
            f"strategy must be a registered name or a Strategy, got {type(strategy).__name__}."
        )
    if config is not None and train_config is not None:
        raise PrivacyConfigError(
            "pass either config (private training) or train_config (non-private training), "
            "not both; TrainConfig.matching(config) builds matching non-private options."
        )
    if config is None:
        tcfg = TrainConfig() if train_config is None else train_config
        phases = strat.phases(model, epochs=tcfg.epochs)
        results = run_non_private_phases(
            model,
            inputs,
            y,
            phases=phases,
            config=tcfg,
            loss=loss,
            random_state=random_state,
            device=device,
            progress=progress,
            anchor=anchor,
        )
        return FineTuneResult(
            strategy=strat.name,
            private=False,
            phases=tuple(results),
            epsilon=None,
            delta=None,
            composition="not private",
            ledger=None,
        )
    phases = strat.phases(model, epochs=config.epochs)
    if len(phases) == 1:
        purposes = [f"fine-tune:{strat.name}"]
    else:
        purposes = [f"fine-tune:{strat.name}:{ph.name}" for ph in phases]
    results = run_private_phases(
        model,
        inputs,
        y,
        phases=phases,
        config=config,
        purposes=purposes,
        loss=loss,
        person_index=person_index,
        ledger=ledger,
        data_id=data_id,
        random_state=random_state,
        device=device,
        progress=progress,
        anchor=anchor,
        person_level=person_level,
    )
    used_ledger = results[0].ledger
    assert used_ledger is not None
    entries = [r.ledger_entry for r in results if r.ledger_entry is not None]
    total = compose(
        entries,
        accountant=config.accountant if config.accountant != "gdp" else "prv",
        delta=results[0].delta,
    )
    return FineTuneResult(
        strategy=strat.name,
        private=True,
        phases=tuple(results),
        epsilon=total.epsilon,
        delta=total.delta,
        composition=total.method,
        ledger=used_ledger,
    )
