"""Pretraining: the losses fall, runs are reproducible, early stopping works."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from graphxfer import Cohort
from graphxfer.exceptions import GraphError
from graphxfer.graphs import GraphEncoder, pretrain_graph
from tabular import Featurizer


def _fit(data, **kwargs) -> GraphEncoder:
    params = {
        "k": 6,
        "hidden": 16,
        "epochs": 12,
        "batch_size": 100,
        "fanout": (4, 4),
        "lr": 5e-3,
        "patience": 100,
        "random_state": 0,
        "progress": False,
    }
    params.update(kwargs)
    return pretrain_graph(data, **params)


@pytest.mark.parametrize(
    ("encoder", "objective"),
    [
        ("graphsage", "supervised"),
        ("graphsage", "graphmae"),
        ("graphsage", "dgi"),
        ("gat", "supervised"),
        ("gin", "graphmae"),
        ("gin", "dgi"),
    ],
)
def test_losses_fall(encoder: str, objective: str, arrays) -> None:
    x, y = arrays
    fitted = _fit((x, y), encoder=encoder, objective=objective)
    train = [h["train_loss"] for h in fitted.history_]
    val = [h["val_loss"] for h in fitted.history_]
    assert len(train) == 12 and all(np.isfinite(train)) and all(np.isfinite(val))
    assert np.mean(train[-3:]) < 0.85 * np.mean(train[:2]), train
    assert min(val) < val[0], val
    assert fitted.objective == objective


def test_supervised_embeddings_carry_the_outcome(arrays) -> None:
    x, y = arrays
    fitted = _fit((x, y), epochs=20)
    with torch.no_grad():
        logits = fitted.head(fitted.source_embeddings).squeeze(-1)
    accuracy = float(((logits > 0).numpy() == y).mean())
    assert accuracy > 0.8


def test_reproducible_and_independent_of_the_global_generator(arrays) -> None:
    x, y = arrays
    torch.manual_seed(123)
    first = _fit((x, y), objective="graphmae", epochs=3, random_state=7)
    torch.manual_seed(999)
    second = _fit((x, y), objective="graphmae", epochs=3, random_state=7)
    assert torch.initial_seed() == 999  # the global generator is never re-seeded
    assert first.history_ == second.history_
    assert torch.equal(first.source_embeddings, second.source_embeddings)
    third = _fit((x, y), objective="graphmae", epochs=3, random_state=8)
    assert first.history_ != third.history_


def test_early_stopping_keeps_the_best_weights(arrays) -> None:
    x, y = arrays
    fitted = _fit((x, y), epochs=60, lr=5e-2, patience=2)
    history = fitted.history_
    assert len(history) < 60
    best = min(h["val_loss"] for h in history)
    assert history[-1]["val_loss"] > best or len(history) <= 3
    tiny = _fit((x[:15], y[:15]), k=3, epochs=2)
    assert all(h["val_loss"] is None for h in tiny.history_)


def test_early_stopping_restores_the_weights_of_the_best_epoch(arrays) -> None:
    x, y = arrays
    stopped = _fit((x, y), epochs=60, lr=5e-2, patience=2)
    history = stopped.history_
    assert all(set(row) == {"epoch", "train_loss", "val_loss", "world_size"} for row in history)
    best = min(history, key=lambda row: row["val_loss"])["epoch"]
    assert best < history[-1]["epoch"]  # it stopped after epochs without improvement
    # the same seed trained for exactly the best number of epochs ends with the same weights
    shorter = _fit((x, y), epochs=best, lr=5e-2, patience=2)
    assert shorter.history_ == history[:best]
    assert torch.equal(stopped.source_embeddings, shorter.source_embeddings)


def test_from_a_cohort_with_a_shared_featurizer(source_cohort: Cohort, target_frame) -> None:
    featurizer = Featurizer().fit(source_cohort.X, source_cohort.schema.features)
    fitted = _fit(source_cohort, featurizer=featurizer, epochs=2, encoder="gin")
    assert fitted.featurizer is featurizer
    assert fitted.dense.feature_names_[:3] == ["age", "bmi", "labs"]
    assert "bmi__missing" in fitted.dense.feature_names_
    rows = fitted.attach(target_frame)
    assert rows.shape == (len(target_frame), fitted.layout().width)
    batch = featurizer.transform(target_frame)
    assert np.array_equal(fitted.attach(batch), rows)


def test_pretraining_on_a_relational_graph(source_cohort: Cohort) -> None:
    from graphxfer.graphs import project_code_graph

    graph = project_code_graph(source_cohort, ["kind"], max_degree=5, random_state=0)
    fitted = _fit(source_cohort, graph=graph, epochs=2, objective="dgi")
    assert torch.equal(fitted.edge_index, graph.edge_index)
    assert fitted.attach(source_cohort.X.iloc[:5]).shape[0] == 5


def test_progress_bar_can_be_turned_off(arrays, capsys, monkeypatch) -> None:
    x, y = arrays
    _fit((x, y), epochs=2, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    _fit((x, y), epochs=2, progress=True)  # standard error is not a terminal: no bar in logs
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _fit((x, y), epochs=2, progress=True)
    assert "graphsage/supervised" in capsys.readouterr().err


def test_parameter_errors(arrays) -> None:
    x, y = arrays
    for bad in ({"mask_rate": 1.5}, {"val_fraction": 1.0}, {"lr": -1.0}, {"epochs": 0}):
        with pytest.raises(GraphError):
            _fit((x, y), **bad)
    with pytest.raises(GraphError, match="device"):
        _fit((x, y), device="tpu:9")
