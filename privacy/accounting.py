"""Noise calibration and epsilon computation with Opacus accountants."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from privacy.exceptions import UnreachableEpsilonError

__all__ = ["calibrate_noise", "compute_epsilon", "person_sampling", "record_sampling"]


def record_sampling(n_rows: int, batch_size: int, epochs: int) -> tuple[float, int]:
    """Sample rate and steps of Opacus' record-level Poisson sampling.

    Opacus derives the sample rate from the data loader: ``q = 1 / ceil(n / batch_size)``,
    and runs ``ceil(n / batch_size)`` steps per epoch.

    Returns
    -------
    (sample_rate, steps)
    """
    per_epoch = math.ceil(n_rows / batch_size)
    return 1.0 / per_epoch, per_epoch * epochs


def person_sampling(n_persons: int, batch_size: int, epochs: int) -> tuple[float, int]:
    """Sample rate ``q = batch_size / n_persons`` and steps ``int(epochs / q)`` (at least 1)."""
    q = batch_size / n_persons
    return q, max(1, int(epochs / q))


def calibrate_noise(
    *,
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    epochs: int | None = None,
) -> float:
    """Smallest noise multiplier (to Opacus' tolerance) meeting ``(epsilon, delta)``.

    Calls ``opacus.accountants.utils.get_noise_multiplier`` with the given sample rate and
    number of steps.

    Raises
    ------
    UnreachableEpsilonError
        When Opacus finds no noise multiplier (below 1e6) that meets the target.
    """
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            sigma = get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
            )
    except ValueError as exc:
        what = f"{steps} steps" + (f" ({epochs} epochs)" if epochs is not None else "")
        raise UnreachableEpsilonError(
            f"epsilon={epsilon:g} cannot be reached at delta={delta:.3g} with sample rate "
            f"{sample_rate:.4g} over {what} using the {accountant!r} accountant: even a noise "
            f"multiplier of 1e6 spends more (Opacus: {exc}). Use fewer epochs, a larger "
            "epsilon, or a larger batch_size (fewer steps per epoch)."
        ) from exc
    return float(sigma)


def compute_epsilon(
    history: Sequence[tuple[float, float, int]], *, delta: float, accountant: str
) -> float:
    """Epsilon at ``delta`` of a history of ``(noise_multiplier, sample_rate, steps)``."""
    from opacus.accountants import create_accountant

    # Runs with the same noise multiplier and sample rate are one longer run: merge them so
    # that the result does not depend on how the steps were split into phases.
    merged: dict[tuple[float, float], int] = {}
    for sigma, q, steps in history:
        key = (float(sigma), float(q))
        merged[key] = merged.get(key, 0) + int(steps)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = create_accountant(mechanism=accountant)
        acc.history = [(s, q, t) for (s, q), t in merged.items() if t > 0]
        if not acc.history:
            return 0.0
        return float(acc.get_epsilon(delta=delta))
