"""The epoch loop shared by in-memory, distributed and streaming pretraining."""

from __future__ import annotations

import io
import math

import pytest
import torch

from tabular import TabularError
from tabular.loop import EpochResult, progress_bar, resolve_device, run_epochs


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _set(net: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        net.weight.fill_(value)


def test_history_early_stopping_and_the_best_weights() -> None:
    net = torch.nn.Linear(1, 1)
    val = {1: 0.9, 2: 0.4, 3: 0.5, 4: 0.6, 5: 0.1}

    def epoch_fn(epoch: int, advance) -> EpochResult:
        _set(net, float(epoch))
        return EpochResult(train_loss=1.0 / epoch, val_loss=val[epoch])

    history, best = run_epochs(
        epoch_fn, epochs=5, patience=2, modules=[net], desc="t", progress=False
    )
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]  # stopped before epoch 5
    assert set(history[0]) == {"epoch", "train_loss", "val_loss", "seconds"}
    assert history[2]["train_loss"] == pytest.approx(1 / 3) and history[2]["val_loss"] == 0.5
    assert all(row["seconds"] >= 0 for row in history)
    assert best == 2 and float(net.weight.detach()) == 2.0  # the weights of epoch 2 are back


def test_an_improvement_under_min_delta_does_not_count() -> None:
    net = torch.nn.Linear(1, 1)
    val = {1: 0.5, 2: 0.4999, 3: 0.3, 4: 0.2999}

    def epoch_fn(epoch: int, advance) -> EpochResult:
        _set(net, float(epoch))
        return EpochResult(train_loss=1.0, val_loss=val[epoch])

    history, best = run_epochs(
        epoch_fn, epochs=4, patience=2, modules=[net], desc="t", progress=False, min_delta=1e-3
    )
    assert len(history) == 4 and best == 3 and float(net.weight.detach()) == 3.0
    history, best = run_epochs(
        epoch_fn, epochs=4, patience=1, modules=[net], desc="t", progress=False, min_delta=1e-3
    )
    assert len(history) == 2 and best == 1 and float(net.weight.detach()) == 1.0


def test_rows_give_the_throughput_and_steps_move_the_bar(monkeypatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    net = torch.nn.Linear(1, 1)

    def epoch_fn(epoch: int, advance) -> EpochResult:
        for _ in range(3):
            advance(1)
        return EpochResult(train_loss=math.nan, rows=300)

    history, best = run_epochs(
        epoch_fn, epochs=2, patience=1, modules=[net], desc="stream", progress=True,
        steps_per_epoch=3,
    )  # fmt: skip
    assert best == 2  # without validation every epoch is the best
    assert [row["rows"] for row in history] == [300, 300]
    assert all(row["records_per_s"] > 0 for row in history)
    assert "stream" in terminal.getvalue() and "6/6" in terminal.getvalue()


def test_progress_bars_show_only_when_asked_and_on_a_terminal(monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert progress_bar(total=2, desc="x", unit="step", enabled=True).disable
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert progress_bar(total=2, desc="x", unit="step", enabled=False).disable
    bar = progress_bar(total=2, desc="shown", unit="step", enabled=True)
    assert not bar.disable
    bar.update(2)
    bar.close()
    assert "shown" in terminal.getvalue()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), local_rank=3) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if torch.cuda.is_available():
        assert resolve_device("auto", local_rank=0) == torch.device("cuda", 0)
    else:
        assert resolve_device("auto", local_rank=1) == torch.device("cpu")
        with pytest.raises(TabularError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(TabularError, match="not a torch device"):
        resolve_device("no-such-device")
