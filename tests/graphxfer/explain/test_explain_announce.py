"""A long explanation is announced with its estimate before it starts, and the announcement
does not change the attributions."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from graphxfer import Cohort
from graphxfer.explain import explain

# the module that times and announces a long run
explain_module = importlib.import_module("graphxfer.explain._announce")


def test_a_long_run_is_announced_and_gives_the_same_attributions(
    models: dict[str, Any], small_cohort: Cohort, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    model, data = models["sklearn"], small_cohort.X.head(30)
    quiet = explain(model, data, "permutation", random_state=0, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(explain_module, "LONG_EXPLANATION_S", 0.0)  # everything is "long"
    loud = explain(model, data, "permutation", random_state=0, progress=True)
    err = capsys.readouterr().err
    assert "Explaining 30 distinct records (method 'permutation'): about" in err
    # captured stderr is not a terminal: no progress bar is drawn into it
    assert "record/s" not in err and "it/s" not in err
    np.testing.assert_array_equal(loud.values, quiet.values)
    np.testing.assert_array_equal(loud.base_values, quiet.base_values)


def test_short_runs_are_not_timed(
    models: dict[str, Any], small_cohort: Cohort, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(explain_module, "LONG_EXPLANATION_S", 0.0)
    explain(models["sklearn"], small_cohort.X.head(5), "permutation", random_state=0)
    assert "Explaining" not in capsys.readouterr().err


def test_durations_read_at_a_glance() -> None:
    text = explain_module.duration_text
    assert [text(s) for s in (4.2, 89, 600, 7200)] == ["4 s", "89 s", "10 min", "2.0 h"]
