"""PrivacyLedger: entries, composition through the accountant, budget refusal, serialization."""

from __future__ import annotations

import json

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from privacy import (
    BudgetExceededError,
    LedgerEntry,
    LedgerFormatError,
    PrivacyConfigError,
    PrivacyLedger,
    compose,
)


def sgd_entry(sigma: float, q: float, steps: int, eps: float, data_id: str = "A") -> LedgerEntry:
    return LedgerEntry(
        mechanism="dp-sgd",
        epsilon=eps,
        delta=1e-5,
        data_id=data_id,
        purpose="fine-tune:full",
        n_records=1000,
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        accountant="rdp",
        max_grad_norm=1.0,
    )


def rdp_eps(history: list[tuple[float, float, int]], delta: float = 1e-5) -> float:
    acc = RDPAccountant()
    acc.history = history
    return acc.get_epsilon(delta=delta)


def quantile_entry(eps: float, data_id: str = "A") -> LedgerEntry:
    return LedgerEntry(
        mechanism="exponential-quantile",
        epsilon=eps,
        delta=0.0,
        data_id=data_id,
        purpose="quantile-bounds:age",
        n_records=1000,
    )


def test_entry_validation() -> None:
    with pytest.raises(LedgerFormatError, match="epsilon"):
        quantile_entry(-1.0)
    with pytest.raises(LedgerFormatError, match="noise_multiplier"):
        LedgerEntry(
            mechanism="dp-sgd", epsilon=1.0, delta=1e-5, data_id="A", purpose="x", n_records=10
        )
    assert quantile_entry(0.1).timestamp.endswith("+00:00")


def test_basic_composition_of_pure_entries() -> None:
    spent = compose([quantile_entry(0.25), quantile_entry(0.5)])
    assert spent.epsilon == pytest.approx(0.75)
    assert spent.delta == 0.0
    assert "basic composition of 2" in spent.method


def test_dp_sgd_entries_are_composed_by_the_accountant() -> None:
    history = [(1.1, 0.05, 400), (0.9, 0.1, 100)]
    e1 = sgd_entry(*history[0], eps=rdp_eps([history[0]]))
    e2 = sgd_entry(*history[1], eps=rdp_eps([history[1]]))
    spent = PrivacyLedger([e1, e2], accountant="rdp").total_spent("A")
    assert spent.epsilon == pytest.approx(rdp_eps(history))
    assert max(e1.epsilon, e2.epsilon) < spent.epsilon < e1.epsilon + e2.epsilon
    assert spent.delta == 1e-5
    assert "rdp accountant over 2 DP-SGD entries" in spent.method

    prv = PRVAccountant()
    prv.history = history
    spent_prv = PrivacyLedger([e1, e2], accountant="prv").total_spent("A")
    assert spent_prv.epsilon == pytest.approx(prv.get_epsilon(delta=1e-5))


def test_mixed_entries_add_basic_part_and_say_so() -> None:
    e = sgd_entry(1.0, 0.1, 100, eps=rdp_eps([(1.0, 0.1, 100)]))
    ledger = PrivacyLedger([e, quantile_entry(0.3)], accountant="rdp")
    spent = ledger.total_spent("A")
    assert spent.epsilon == pytest.approx(rdp_eps([(1.0, 0.1, 100)]) + 0.3)
    assert "accountant" in spent.method and "basic composition of 1 other" in spent.method


def test_entries_on_other_data_are_kept_apart() -> None:
    ledger = PrivacyLedger([quantile_entry(0.5, "A"), quantile_entry(0.7, "B")])
    assert ledger.total_spent("A").epsilon == pytest.approx(0.5)
    assert ledger.total_spent("B").epsilon == pytest.approx(0.7)
    assert ledger.total_spent().epsilon == pytest.approx(1.2)  # all entries: conservative
    assert set(ledger.spent_by_data()) == {"A", "B"}


def test_check_budget_refuses_before_the_run() -> None:
    ledger = PrivacyLedger([quantile_entry(0.8)])
    with pytest.raises(BudgetExceededError, match=r"total_budget=1 .*Nothing was run") as info:
        ledger.check_budget(0.5, 1.0, data_id="A")
    assert "0.2" in str(info.value)  # what remains under basic composition
    assert ledger.check_budget(0.2, 1.0, data_id="A").epsilon == pytest.approx(1.0)
    assert ledger.check_budget(0.5, 1.0, data_id="B").epsilon == pytest.approx(0.5)
    assert len(ledger) == 1  # checking records nothing


def test_check_budget_composes_planned_dp_sgd_runs_tightly() -> None:
    run = (1.0, 0.05, 200)
    eps_one = rdp_eps([run])
    eps_two = rdp_eps([run, run])
    assert eps_two < 2 * eps_one
    ledger = PrivacyLedger([sgd_entry(*run, eps=eps_one)], accountant="rdp")
    planned = [sgd_entry(*run, eps=eps_one)]
    total = ledger.check_budget(total_budget=eps_two * 1.01, data_id="A", planned=planned)
    assert total.epsilon == pytest.approx(eps_two)
    with pytest.raises(BudgetExceededError):
        ledger.check_budget(total_budget=eps_two * 0.99, data_id="A", planned=planned)


def test_json_round_trip_and_table() -> None:
    ledger = PrivacyLedger(
        [sgd_entry(1.0, 0.1, 100, eps=0.9), quantile_entry(0.2)], accountant="rdp", delta=1e-6
    )
    restored = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert restored == ledger
    text = str(ledger)
    assert "fine-tune:full" in text and "quantile-bounds:age" in text
    assert "total on 'A'" in text
    frame = ledger.to_frame()
    assert list(frame["mechanism"]) == ["dp-sgd", "exponential-quantile"]
    assert "noise_multiplier" in frame.columns


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"format": "something"}, "not a privacy ledger"),
        ({"format": "privacy.PrivacyLedger", "version": 99, "entries": []}, "version"),
        ({"format": "privacy.PrivacyLedger", "version": 1, "entries": [{"epsilon": 1}]}, "entry 0"),
        (
            {
                "format": "privacy.PrivacyLedger",
                "version": 1,
                "entries": [],
                "accountant": "gdp",
            },
            "accountant",
        ),
    ],
)
def test_from_dict_rejects_malformed_ledgers(payload: dict, match: str) -> None:
    with pytest.raises(LedgerFormatError, match=match):
        PrivacyLedger.from_dict(payload)


def test_ledger_refuses_gdp_and_non_entries() -> None:
    with pytest.raises(PrivacyConfigError, match="GDP"):
        PrivacyLedger(accountant="gdp")
    with pytest.raises(LedgerFormatError, match="LedgerEntry"):
        PrivacyLedger().append({"epsilon": 1.0})  # type: ignore[arg-type]
