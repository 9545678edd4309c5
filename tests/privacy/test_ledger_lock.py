"""Concurrent fits charging one ledger file compose: the file is locked from reading to writing."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import graphxfer
from graphxfer import Cohort, TransferClassifier, datasets
from privacy import (
    BudgetExceededError,
    LedgerEntry,
    LedgerLock,
    LedgerWaitWarning,
    PrivacyConfig,
    PrivacyLedger,
)

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")

DP = {"epsilon": 1.0, "epochs": 2, "batch_size": 16}
FIT = {"strategy": "linear-probe", "random_state": 0, "device": "cpu", "check_transfer": False}


def _entry(eps: float, data_id: str = "site") -> LedgerEntry:
    return LedgerEntry(mechanism="exponential-quantile", epsilon=eps, delta=0.0,
                       data_id=data_id, purpose="quantile-bounds:age", n_records=100)  # fmt: skip


def _charge(path: Path, eps: float, *, lock: bool) -> None:
    """Read the ledger, think for a while, append one entry and write it back."""

    def work() -> None:
        ledger = PrivacyLedger.load(path) if path.exists() else PrivacyLedger()
        time.sleep(0.3)
        ledger.append(_entry(eps))
        ledger.save(path)

    if lock:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LedgerWaitWarning)
            with LedgerLock(path):
                work()
    else:
        work()


@pytest.mark.parametrize("lock", [True, False])
def test_two_writers_keep_both_entries_only_under_the_lock(tmp_path: Path, lock: bool) -> None:
    path = tmp_path / "ledger.json"
    threads = [threading.Thread(target=_charge, args=(path, e), kwargs={"lock": lock})
               for e in (0.1, 0.2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = sorted(e.epsilon for e in PrivacyLedger.load(path).entries)
    if lock:
        assert kept == [0.1, 0.2]
    else:  # the control: without the lock the second write drops the first entry
        assert len(kept) == 1


def test_the_lock_of_a_ledger_in_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "ledger.json"  # ledger.save creates folders too
    with LedgerLock(path) as lock:
        assert lock.held
        PrivacyLedger([_entry(0.1)]).save(path)
    assert len(PrivacyLedger.load(path)) == 1


def test_a_waiting_holder_is_told_and_the_lock_is_reentrant_per_object(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    first = LedgerLock(path).acquire()
    assert first.held and first.acquire() is first and first.lock_path.exists()
    got: list[Any] = []

    def second() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with LedgerLock(path):
                got.append([w.category for w in caught])

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    assert not got  # still waiting
    first.release()
    t.join(timeout=10)
    assert got == [[LedgerWaitWarning]]
    first.release()  # releasing twice does nothing
    assert not first.held


@pytest.fixture(scope="module")
def heart() -> Cohort:
    return datasets.load_heart_disease()


@pytest.fixture(scope="module")
def encoder(heart: Cohort) -> Any:
    with torch.random.fork_rng(devices=[]):
        return graphxfer.pretrain(
            heart.select_groups(["cleveland", "hungarian"]), "mlp", epochs=1, progress=False,
            random_state=0, device="cpu",
        )  # fmt: skip


def test_a_fit_waits_for_the_ledger_and_keeps_what_was_written_meanwhile(
    encoder: Any, heart: Cohort, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.json"
    va = heart.select_groups("va")
    clf = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), ledger=path,
                             data_id="site", **FIT)  # fmt: skip
    holder = LedgerLock(path).acquire()
    caught: list[Any] = []

    def fit() -> None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            clf.fit(va)
        caught.extend(w.category for w in seen)

    t = threading.Thread(target=fit)
    t.start()
    time.sleep(1.0)
    # another fit, holding the lock, charges the file now: the waiting fit must see it
    PrivacyLedger([_entry(0.25)]).save(path)
    holder.release()
    t.join(timeout=120)
    assert LedgerWaitWarning in caught
    on_file = PrivacyLedger.load(path)
    assert len(on_file) == 1 + len(clf.fit_ledger_)
    assert on_file.entries[0].epsilon == 0.25 and clf.ledger_ == on_file
    assert LedgerLock(path).acquire().held  # released after the fit


def test_a_refused_fit_releases_the_lock(encoder: Any, heart: Cohort, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    PrivacyLedger([_entry(5.0)]).save(path)
    capped = PrivacyConfig(**DP, total_budget=5.5)
    clf = TransferClassifier(encoder, privacy=capped, ledger=path, data_id="site", **FIT)
    with pytest.raises(BudgetExceededError):
        clf.fit(heart.select_groups("va"))
    lock = LedgerLock(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LedgerWaitWarning)  # free at once: no wait
        lock.acquire()
    lock.release()
