"""calibrate_noise: Opacus' noise multiplier with few accountant evaluations."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import opacus.accountants
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants.accountant import IAccountant
from opacus.accountants.utils import get_noise_multiplier

from privacy import UnreachableEpsilonError, accounting
from privacy.accounting import calibrate_noise, compute_epsilon

pytestmark = [
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:GDP accounting is experimental:UserWarning"),
]

DELTA = 1e-5
EPSILONS = (0.5, 1.0, 3.0, 8.0)
# (sample_rate, steps): many small steps, and few large ones.
SETTINGS = ((0.0213, 470), (0.1, 20))


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    """Each test calibrates from scratch (results are memoised across calls)."""
    accounting.forget_calibrations()
    yield
    accounting.forget_calibrations()


def opacus_sigma(epsilon: float, q: float, steps: int, accountant: str) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=DELTA,
                sample_rate=q,
                steps=steps,
                accountant=accountant,
            )
        )


def check(epsilon: float, q: float, steps: int, accountant: str) -> float:
    """Calibrate, check the budget with compute_epsilon, and compare with Opacus."""
    sigma = calibrate_noise(
        epsilon=epsilon, delta=DELTA, sample_rate=q, steps=steps, accountant=accountant
    )
    assert isinstance(sigma, float)
    spent = compute_epsilon([(sigma, q, steps)], delta=DELTA, accountant=accountant)
    fresh = opacus.accountants.create_accountant(mechanism=accountant)  # no memo
    fresh.history = [(sigma, q, steps)]
    with np.errstate(divide="ignore", invalid="ignore"):
        assert spent == float(fresh.get_epsilon(delta=DELTA))
    assert spent <= epsilon
    assert epsilon - spent <= 0.01
    assert sigma == opacus_sigma(epsilon, q, steps, accountant)
    return sigma


@pytest.mark.parametrize(("q", "steps"), SETTINGS)
@pytest.mark.parametrize("epsilon", EPSILONS)
def test_rdp_meets_the_budget_and_equals_opacus(epsilon: float, q: float, steps: int) -> None:
    check(epsilon, q, steps, "rdp")


@pytest.mark.parametrize(
    ("epsilon", "q", "steps"),
    [
        (0.5, 0.0213, 470),
        (1.0, 0.1, 20),
        (3.0, 0.0213, 470),
        pytest.param(8.0, 0.0213, 470, marks=pytest.mark.slow),
        pytest.param(0.5, 0.1, 20, marks=pytest.mark.slow),
        pytest.param(1.0, 0.0213, 470, marks=pytest.mark.slow),
        pytest.param(3.0, 0.1, 20, marks=pytest.mark.slow),
        pytest.param(8.0, 0.1, 20, marks=pytest.mark.slow),
    ],
)
def test_prv_meets_the_budget_and_equals_opacus(epsilon: float, q: float, steps: int) -> None:
    check(epsilon, q, steps, "prv")


@pytest.mark.slow
@pytest.mark.parametrize(("q", "steps"), SETTINGS)
@pytest.mark.parametrize("epsilon", (0.5, 1.0, 3.0))
def test_gdp_meets_the_budget_and_equals_opacus(epsilon: float, q: float, steps: int) -> None:
    check(epsilon, q, steps, "gdp")


def test_a_target_met_by_the_doubling_alone() -> None:
    # Opacus stops at sigma=40 before any bisection: epsilon there is already within 0.01.
    assert check(0.02, 0.01, 100, "prv") == 40.0


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_unreachable_epsilon_raises_with_advice(accountant: str) -> None:
    with pytest.raises(UnreachableEpsilonError, match="fewer epochs") as info:
        calibrate_noise(
            epsilon=1e-6,
            delta=DELTA,
            sample_rate=0.1,
            steps=500,
            accountant=accountant,
            epochs=50,
        )
    message = str(info.value)
    assert "500 steps (50 epochs)" in message
    assert "even a noise multiplier of 1e6 spends more" in message
    assert "The privacy budget is too low." in message
    with pytest.raises(ValueError, match="budget is too low"):
        opacus_sigma(1e-6, 0.1, 500, accountant)


def test_prv_needs_few_accountant_evaluations_and_memoises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[str] = []
    create = opacus.accountants.create_accountant

    def counting_create(mechanism: str) -> IAccountant:
        created.append(mechanism)
        return create(mechanism=mechanism)

    monkeypatch.setattr(opacus.accountants, "create_accountant", counting_create)
    sigma = calibrate_noise(
        epsilon=3.0, delta=DELTA, sample_rate=0.0213, steps=470, accountant="prv"
    )
    assert sigma == 0.98388671875  # get_noise_multiplier's answer, after 14 PRV evaluations
    assert created.count("prv") <= 6
    assert created.count("rdp") <= 2
    n_created = len(created)
    again = calibrate_noise(
        epsilon=3.0, delta=DELTA, sample_rate=0.0213, steps=470, accountant="prv", epochs=10
    )
    assert again == sigma
    assert len(created) == n_created  # memoised: no accountant evaluated again
    # the ledger's epsilon of the calibrated run is the calibration's final check, reused
    spent = compute_epsilon([(sigma, 0.0213, 470)], delta=DELTA, accountant="prv")
    assert len(created) == n_created and 2.99 <= spent <= 3.0
    accounting.forget_calibrations()
    assert compute_epsilon([(sigma, 0.0213, 470)], delta=DELTA, accountant="prv") == spent
    assert len(created) == n_created + 1  # forgotten: evaluated afresh, to the same value


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    epsilon=st.floats(0.3, 10.0),
    q=st.floats(0.002, 0.05),
    steps=st.integers(20, 2000),
    delta=st.sampled_from([1e-4, 1e-5, 1e-7]),
)
def test_rdp_equals_opacus_over_random_settings(
    epsilon: float, q: float, steps: int, delta: float
) -> None:
    sigma = calibrate_noise(
        epsilon=epsilon, delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=q,
            steps=steps,
            accountant="rdp",
        )
    assert sigma == expected
    spent = compute_epsilon([(sigma, q, steps)], delta=delta, accountant="rdp")
    assert epsilon - 0.01 <= spent + 1e-12 and spent <= epsilon
