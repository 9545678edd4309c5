"""The plan of a private run, fixed before it touches the data.

:func:`make_plan` refuses what cannot be run with the promised guarantee (too few persons, a
batch larger than the cohort, a delta too large, grouped rows with per-row-only clipping) and
calibrates one noise multiplier for all phases together, as
``PrivacyEngine.make_private_with_epsilon`` does it (``get_noise_multiplier`` with the sample
rate, the summed steps and the configured accountant), so that the phases of LP-FT share one
budget and the budget check can run before any step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from privacy.accounting import calibrate_noise, person_sampling, record_sampling
from privacy.config import PrivacyConfig
from privacy.data import RowData
from privacy.exceptions import BatchSizeError, PrivacyConfigError, TooFewRecordsError
from privacy.noise import csprng_generator
from privacy.phases import Phase

__all__ = ["DPPlan", "make_plan"]


@dataclass(frozen=True)
class DPPlan:
    """Privacy unit, cohort size, sample rate, steps per phase, delta and noise multiplier."""

    unit: str
    n_persons: int
    sample_rate: float
    steps: tuple[int, ...]
    delta: float
    noise_multiplier: float


def make_plan(data: RowData, phases: Sequence[Phase], config: PrivacyConfig) -> DPPlan:
    """Check that the run can keep its guarantee and calibrate its noise multiplier."""
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
        csprng_generator()  # fail early, with the fix, when torchcsprng is missing
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
    return DPPlan(
        unit=unit,
        n_persons=n,
        sample_rate=q,
        steps=steps,
        delta=delta,
        noise_multiplier=sigma,
    )
