"""What a transfer curve tells its user while and after it runs: a run-time estimate, progress
bars only on a terminal, and the reason for every NaN in the summary."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
from graphxfer import datasets
from graphxfer.evaluate import METRICS, transfer_curve
from graphxfer.evaluate.curve import _duration, _estimate_message, summarise

PRETRAIN = {"epochs": 2, "encoder_params": {"width": 16, "n_blocks": 1}, "device": "cpu"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def heart() -> dict[str, Any]:
    cohort = datasets.load_heart_disease()
    source = cohort.select_groups(["cleveland", "hungarian"])
    encoder = graphxfer.pretrain(source, "mlp", random_state=0, progress=False, **PRETRAIN)
    return {"source": source, "target": cohort.select_groups("va"), "encoder": encoder}


def baselines_only(heart: dict[str, Any], **options: Any) -> Any:
    settings: dict[str, Any] = {
        "encoder": heart["encoder"],
        "strategies": (),
        "baselines": ("logistic",),
        "target_sizes": (20, 30),
        "repeats": 2,
        **options,
    }
    return transfer_curve(heart["source"], heart["target"], **settings)


# ---------------------------------------------------------------------- run-time estimate
def test_the_estimate_reads_as_minutes_for_repeats_times_sizes() -> None:
    message = _estimate_message(270.0, 5, 3, "the first run, n=25, took 18 seconds")
    assert message == (
        "transfer curve: about 4.5 minutes for 5 repeats x 3 sizes "
        "(the first run, n=25, took 18 seconds)"
    )
    assert "about 2 seconds for 1 repeat x 1 size" in _estimate_message(2.2, 1, 1, "x")
    assert [_duration(s) for s in (0.2, 2.4, 59.6, 95, 599, 1800)] == [
        "1 second",
        "2 seconds",
        "60 seconds",
        "1.6 minutes",
        "10 minutes",
        "30 minutes",
    ]


def test_the_estimate_is_shown_after_the_first_run_unless_progress_is_off(
    heart: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    baselines_only(heart, progress=True)
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("transfer curve: about ")
    assert "for 2 repeats x 2 sizes (the first run, n=20, took " in first
    # standard error is not a terminal here: no progress bar is drawn
    assert "%|" not in err and "it/s" not in err and "s/it" not in err
    baselines_only(heart, progress=False, repeats=1)
    assert capsys.readouterr().err == ""


def test_progress_bars_are_drawn_on_a_terminal(
    heart: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    baselines_only(heart, progress=True, target_sizes=(20,), repeats=1)
    assert "transfer curve: 100%|" in terminal.getvalue()
    terminal.seek(0)
    terminal.truncate()
    baselines_only(heart, progress=False, target_sizes=(20,), repeats=1)
    assert terminal.getvalue() == ""


# ---------------------------------------------------------------------- reasons for NaN
def test_refused_private_runs_say_why_in_the_summary(heart: dict[str, Any]) -> None:
    curve = baselines_only(
        heart,
        strategies=("anchored",),
        epsilons=(1.0,),
        target_sizes=(15,),
        progress=False,
        finetune_params={"epochs": 1, "device": "cpu", "dp_hyperparameters": "config"},
        privacy_params={"accountant": "rdp"},
    )
    summary = curve.summary.set_index("method")
    refused = summary.loc["transfer:anchored"]
    assert refused["repeats"] == 0 and np.isnan(refused["auroc_mean"])
    assert "fewer than min_records" in refused["reason"]
    assert refused["reason"] == curve.results.loc[curve.results["note"] != "", "note"].iloc[0]
    assert summary.loc["logistic", "reason"] == ""


def test_every_cause_of_a_nan_is_named() -> None:
    def rows(method: str, aurocs: list[float], notes: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "method": method,
                "n": 20,
                "epsilon": np.nan,
                "repeat": repeat,
                **dict.fromkeys(METRICS, auroc),
                "note": note,
            }
            for repeat, (auroc, note) in enumerate(zip(aurocs, notes, strict=True))
        ]

    results = pd.DataFrame(
        rows("all-scored", [0.7, 0.8, 0.75], ["", "", ""])
        + rows("partly-refused", [0.7, np.nan, np.nan], ["", "too small", "too small"])
        + rows("one-class", [np.nan, 0.6, 0.7], ["", "", ""])
        + rows("once", [0.7], [""])
    )
    reasons = summarise(results).set_index("method")["reason"]
    assert reasons["all-scored"] == ""
    assert reasons["partly-refused"] == (
        "2 of 3 repeats: too small; a single scored repeat: no confidence interval"
    )
    assert reasons["one-class"] == (
        "1 of 3 repeats: a metric is undefined on the test part (a single class)"
    )
    assert reasons["once"] == "a single scored repeat: no confidence interval"


def test_the_reason_column_is_documented() -> None:
    assert "reason" in (transfer_curve.__doc__ or "")
    assert "reason" in (graphxfer.evaluate.TransferCurve.__doc__ or "")
