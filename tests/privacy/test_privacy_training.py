"""Record-level DP-SGD through Opacus: refusals, accounting, frozen parameters, seeding."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from opacus import PrivacyEngine
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privacy import (
    BatchSizeError,
    BudgetExceededError,
    DeltaTooLargeError,
    IncompatibleModuleError,
    InputDataError,
    LedgerEntry,
    PrivacyConfig,
    PrivacyConfigError,
    PrivacyLedger,
    TooFewRecordsError,
    UnreachableEpsilonError,
    train_non_private,
    train_private,
)
from privacy.anchor import Anchor
from privacy.phases import progress_bar
from privacy.training import HISTORY_NOTE, Phase, resolve_trainable, run_private_phases

# Opacus notes that are expected with the small, fast settings used here.
pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")

# Sample rates <= 0.1 keep the RDP noise calibration fast (it slows down for large rates).
FAST = {"accountant": "rdp", "epochs": 2, "batch_size": 10, "learning_rate": 0.05}


def run(model, X, y, **kwargs):
    cfg = PrivacyConfig(epsilon=kwargs.pop("epsilon", 1.0), **{**FAST, **kwargs.pop("cfg", {})})
    kwargs.setdefault("device", "cpu")  # the CUDA path has its own test
    return train_private(model, X, y, config=cfg, random_state=0, progress=False, **kwargs)


# -- refusals -------------------------------------------------------------------------------
def test_too_few_records_is_refused(make_net, make_data) -> None:
    X, y = make_data(n=40)
    with pytest.raises(TooFewRecordsError, match="min_records=50"):
        run(make_net(), X, y, cfg={"batch_size": 10})


def test_batch_larger_than_n_is_refused(make_net, make_data) -> None:
    X, y = make_data(n=60)
    with pytest.raises(BatchSizeError, match=r"batch_size=64 exceeds .* \(60\)"):
        run(make_net(), X, y, cfg={"batch_size": 64})


def test_unreachable_epsilon_is_refused_with_advice(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net()
    before = snapshot(net)
    with pytest.raises(UnreachableEpsilonError, match="fewer epochs"):
        run(net, X, y, epsilon=1e-6, cfg={"epochs": 50, "batch_size": 100})
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters())


def test_delta_not_below_one_over_n_is_refused(make_net, make_data) -> None:
    X, y = make_data(n=100)
    with pytest.raises(DeltaTooLargeError, match=r"delta=0\.02"):
        run(make_net(), X, y, cfg={"delta": 0.02})


def test_total_budget_refuses_before_training(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    ledger = PrivacyLedger(accountant="rdp")
    ledger.append(
        LedgerEntry(
            mechanism="exponential-quantile",
            epsilon=0.6,
            delta=0.0,
            data_id="site-A",
            purpose="quantile-bounds:age",
            n_records=100,
        )
    )
    net = make_net()
    before = snapshot(net)
    with pytest.raises(BudgetExceededError, match="site-A"):
        run(net, X, y, ledger=ledger, data_id="site-A", cfg={"total_budget": 1.5})
    assert len(ledger) == 1
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters())
    # the same run fits a larger cap and is then recorded
    result = run(net, X, y, ledger=ledger, data_id="site-A", cfg={"total_budget": 2.0})
    assert len(ledger) == 2 and ledger.entries[-1] is result.ledger_entry


def test_batchnorm_is_refused_naming_the_module(make_data) -> None:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 16)
            self.bn = nn.BatchNorm1d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.lin(x))

    model = nn.Sequential()
    model.add_module("encoder", Encoder())
    model.add_module("head", nn.Linear(16, 1))
    X, y = make_data(n=100)
    with pytest.raises(IncompatibleModuleError) as info:
        run(model, X, y)
    message = str(info.value)
    assert "'encoder.bn'" in message and "nn.LayerNorm(16)" in message
    assert "ModuleValidator.fix" in message  # and the warning not to use it
    # frozen BatchNorm still mixes rows in training mode: refused too
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    with pytest.raises(IncompatibleModuleError, match=r"encoder\.bn"):
        run(model, X, y, trainable=["head"])


def test_lstm_is_refused_with_the_opacus_replacement() -> None:
    from privacy import check_module

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(4, 8, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0][:, -1]

    with pytest.raises(IncompatibleModuleError, match=r"'rnn' \(LSTM\).*DPLSTM"):
        check_module(Seq())


def test_modules_that_mix_rows_are_refused(make_data) -> None:
    class Centering(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x - x.mean(dim=0, keepdim=True))

    X, y = make_data(n=100)
    with pytest.raises(IncompatibleModuleError, match="mixes rows"):
        run(Centering(), X, y)


def test_bad_inputs_are_refused(make_net, make_data) -> None:
    X, y = make_data(n=100)
    with pytest.raises(InputDataError, match="rows but y has"):
        run(make_net(), X[:90], y)
    X_nan = X.clone()
    X_nan[3, 2] = float("nan")
    with pytest.raises(InputDataError, match="NaN"):
        run(make_net(), X_nan, y)
    with pytest.raises(PrivacyConfigError, match="match no parameter"):
        run(make_net(), X, y, trainable=["decoder"])
    with pytest.raises(PrivacyConfigError, match="single string"):
        run(make_net(), X, y, trainable="head")


# -- accounting -----------------------------------------------------------------------------
def test_noise_multiplier_and_epsilon_equal_opacus(make_net, make_data) -> None:
    n, batch, epochs, eps, delta = 200, 20, 3, 2.0, 1e-5
    X, y = make_data(n=n)
    result = run(make_net(), X, y, epsilon=eps, cfg={"epochs": epochs, "batch_size": batch})

    # what PrivacyEngine.make_private_with_epsilon calibrates for the same loader
    engine = PrivacyEngine(accountant="rdp")
    model = make_net()
    _, optimizer, _ = engine.make_private_with_epsilon(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        data_loader=DataLoader(TensorDataset(X, y), batch_size=batch),
        target_epsilon=eps,
        target_delta=delta,
        epochs=epochs,
        max_grad_norm=1.0,
    )
    assert result.noise_multiplier == optimizer.noise_multiplier
    q = 1 / math.ceil(n / batch)
    assert result.noise_multiplier == get_noise_multiplier(
        target_epsilon=eps, target_delta=delta, sample_rate=q, epochs=epochs, accountant="rdp"
    )
    assert result.sample_rate == q
    assert result.steps == epochs * math.ceil(n / batch)

    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, q, result.steps)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=delta), rel=1e-12)
    assert result.epsilon <= eps
    assert result.delta == delta

    entry = result.ledger_entry
    assert entry is not None and result.ledger is not None
    assert (entry.mechanism, entry.unit, entry.accountant) == ("dp-sgd", "record", "rdp")
    assert (entry.noise_multiplier, entry.sample_rate, entry.steps) == (
        result.noise_multiplier,
        q,
        result.steps,
    )
    assert entry.epsilon == result.epsilon and entry.n_records == n
    assert result.ledger.entries == (entry,)


def test_history_is_marked_not_private_and_serializes(make_net, make_data) -> None:
    X, y = make_data(n=100)
    result = run(make_net(), X, y)
    assert result.history_note == HISTORY_NOTE and "NOT differentially private" in HISTORY_NOTE
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert all(np.isfinite(h["loss"]) for h in result.history)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["ledger_entry"]["mechanism"] == "dp-sgd"


# -- what trains and what does not ----------------------------------------------------------
def test_frozen_parameters_are_unchanged_and_flags_restored(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net()
    before = snapshot(net)
    result = run(net, X, y, trainable=["head"])
    assert result.trainable == ("head.bias", "head.weight")
    for name, p in net.named_parameters():
        changed = not torch.equal(before[name], p)
        assert changed == name.startswith("head."), name
        assert p.requires_grad  # restored
        assert not hasattr(p, "grad_sample")  # Opacus hooks removed


def test_parameters_frozen_by_the_caller_spend_nothing(make_net, make_data, snapshot) -> None:
    X, y = make_data(n=100)
    net = make_net()
    for p in net.blocks.parameters():
        p.requires_grad_(False)
    before = snapshot(net)
    result = run(net, X, y)
    assert set(result.trainable) == {"head.weight", "head.bias"}
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters() if "blocks" in k)


# -- sampling, seeding, physical batches ----------------------------------------------------
def test_same_random_state_does_not_replay_a_private_run_and_global_rng_untouched(
    make_net, make_data
) -> None:
    # Sampling and noise come from generators seeded from the OS CSPRNG, never from
    # random_state: a stored seed must not reproduce the released weights.
    X, y = make_data(n=100)
    state = torch.get_rng_state()
    a, b = make_net(), make_net()
    cfg = PrivacyConfig(epsilon=1.0, **FAST)
    train_private(a, X, y, config=cfg, random_state=7, progress=False, device="cpu")
    train_private(b, X, y, config=cfg, random_state=7, progress=False, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert not any(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_logical_batches_are_split_into_physical_batches(make_net, make_data) -> None:
    X, y = make_data(n=400)
    net = make_net()
    sizes: list[int] = []
    net.head.register_forward_hook(lambda m, i, o: sizes.append(int(o.shape[0])))
    result = run(net, X, y, cfg={"batch_size": 40, "max_physical_batch_size": 16})
    assert sizes[:2] == [8, 8]  # the row-independence check: one batch of 8 rows, twice
    assert max(sizes[2:]) <= 16
    assert sum(sizes[2:]) > 2 * 400 * 0.8  # about two passes over the data
    assert result.steps == 2 * 10  # logical steps are counted, not physical ones


def test_the_anchor_pulls_once_per_logical_step(make_net, make_data, monkeypatch) -> None:
    X, y = make_data(n=400)
    net = make_net()
    anchor = Anchor.l2sp(net, strength=0.1)
    pulls: list[int] = []
    proximal = Anchor.proximal

    def counting(self, module, lr):
        step = proximal(self, module, lr)

        def counted() -> None:
            pulls.append(1)
            step()

        return counted

    monkeypatch.setattr(Anchor, "proximal", counting)
    cfg = PrivacyConfig(epsilon=1.0, **{**FAST, "batch_size": 40, "max_physical_batch_size": 8})
    phase = Phase(name="train", epochs=2, trainable=resolve_trainable(net))
    (result,) = run_private_phases(
        net, X, y, phases=[phase], config=cfg, purposes=["fine-tune"], progress=False,
        device="cpu", anchor=anchor,
    )  # fmt: skip
    assert result.steps == 2 * 10 and len(pulls) == result.steps  # not once per physical batch


def test_progress_bars_show_only_when_asked_and_on_a_terminal(monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert progress_bar(range(2), total=2, desc="DP x", enabled=True).disable
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert progress_bar(range(2), total=2, desc="DP x", enabled=False) == range(2)
    bar = progress_bar(range(2), total=2, desc="DP shown", enabled=True)
    assert not bar.disable and list(bar) == [0, 1]
    assert "DP shown" in terminal.getvalue()


def test_a_private_fit_warns_about_opacus_secure_mode_at_most_once(make_net, make_data) -> None:
    # two phases build two Opacus privacy engines, and each warns when it is built
    X, y = make_data(n=100)
    net = make_net()
    head = resolve_trainable(net, ["head"])
    phases = [
        Phase(name="linear-probe", epochs=1, trainable=head),
        Phase(name="fine-tune", epochs=1, trainable=resolve_trainable(net)),
    ]
    cfg = PrivacyConfig(epsilon=1.0, **{**FAST, "epochs": 2})
    for person_index in (None, np.repeat(np.arange(50), 2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_private_phases(
                net, X, y, phases=phases, config=cfg, purposes=["lp", "ft"],
                person_index=person_index, progress=False, device="cpu",
            )  # fmt: skip
        secure = [w for w in caught if "Secure RNG turned off" in str(w.message)]
        assert len(secure) <= 1


@pytest.mark.parametrize("mode", ["hooks", "ew", "functorch", "ghost"])
def test_grad_sample_modes_and_empty_poisson_batches(make_net, make_data, mode) -> None:
    # batch_size=1 of 60 records: about a third of the Poisson batches are empty
    X, y = make_data(n=60)
    result = run(make_net(), X, y, cfg={"batch_size": 1, "epochs": 1, "grad_sample_mode": mode})
    assert result.steps == 60
    assert result.ledger_entry is not None and result.ledger_entry.steps == 60


def test_data_id_defaults_to_a_label_never_computed_from_the_records(make_net, make_data) -> None:
    X, y = make_data(n=100)
    a = run(make_net(), X, y)
    c = run(make_net(), X, 1 - y)
    # a fingerprint of the records would tell data sets apart (and is itself computed from
    # them); unnamed runs share one label, so their budgets compose
    assert a.ledger_entry.data_id == c.ledger_entry.data_id == "target"
    assert run(make_net(), X, y, data_id="site-A").ledger_entry.data_id == "site-A"


def test_secure_mode_needs_torchcsprng(make_net, make_data) -> None:
    pytest.importorskip("opacus")
    try:
        import torchcsprng  # noqa: F401
    except ImportError:
        X, y = make_data(n=100)
        with pytest.raises(PrivacyConfigError, match="torchcsprng"):
            run(make_net(), X, y, cfg={"secure_mode": True})
    else:  # pragma: no cover
        pytest.skip("torchcsprng is installed")


def test_non_private_training_learns_and_records_nothing(make_net, make_data) -> None:
    X, y = make_data(n=200)
    result = train_non_private(make_net(), X, y, random_state=0, progress=False, device="cpu")
    assert not result.private and result.ledger_entry is None and result.epsilon is None
    assert result.history[-1]["loss"] < result.history[0]["loss"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_record_and_person_level(make_net, make_data) -> None:
    X, y = make_data(n=200)
    net = make_net()
    result = run(net, X, y, device="auto")
    assert result.device.startswith("cuda")
    assert next(net.parameters()).is_cuda
    accountant = RDPAccountant()
    accountant.history = [(result.noise_multiplier, result.sample_rate, result.steps)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=result.delta))
    persons = np.repeat(np.arange(100), 2)
    person = run(make_net(), X, y, person_index=persons, device="cuda")
    assert person.unit == "person" and person.device.startswith("cuda")


def test_default_prv_accountant_matches_opacus(make_net, make_data) -> None:
    from opacus.accountants import PRVAccountant

    X, y = make_data(n=200)
    cfg = PrivacyConfig(epsilon=1.0, epochs=2, batch_size=20)  # accountant="prv" by default
    result = train_private(
        make_net(), X, y, config=cfg, random_state=0, progress=False, device="cpu"
    )
    assert result.noise_multiplier == get_noise_multiplier(
        target_epsilon=1.0, target_delta=1e-5, sample_rate=0.1, steps=20, accountant="prv"
    )
    accountant = PRVAccountant()
    accountant.history = [(result.noise_multiplier, 0.1, 20)]
    assert result.epsilon == pytest.approx(accountant.get_epsilon(delta=1e-5))
    assert result.epsilon <= 1.0 and result.ledger_entry.accountant == "prv"
