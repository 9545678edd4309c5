"""The data sets that load by name, and the baselines of a transfer curve, each come from one
registry; every list of their names derives from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graphxfer import Cohort, Schema, datasets
from graphxfer._cli_cohorts import BUNDLED, UserError, bundled_cohort
from graphxfer.cli._base import build_parser
from graphxfer.datasets import (
    DATASETS,
    LOADERS,
    DatasetLoader,
    dataset_loader,
    dataset_names,
    register_dataset,
    source_info,
)
from graphxfer.evaluate import BASELINES, YARDSTICK
from graphxfer.evaluate._baselines import BaselineData, baseline_predictions
from graphxfer.exceptions import GraphxferError
from tabular.exceptions import RegistryError

BUILT_IN = ("diabetes_130", "heart_disease", "oulad", "student_performance")


def _tiny() -> Cohort:
    frame = pd.DataFrame(
        {"x": np.arange(8.0), "site": ["a", "b"] * 4, "y": [0, 1, 0, 1, 1, 0, 1, 0]}
    )
    return Cohort(frame, Schema.infer(frame, target="y", group="site"), name="tiny_test")


@pytest.fixture
def tiny_dataset() -> Iterator[DatasetLoader]:
    loader = register_dataset(DatasetLoader("tiny_test", _tiny, "Tiny", "2 sites"))
    try:
        yield loader
    finally:
        LOADERS.unregister("tiny_test")


def _dataset_choices() -> Any:
    _, parsers = build_parser()
    (action,) = [a for a in parsers["pretrain"]._actions if "--dataset" in a.option_strings]
    return action.choices


# ----------------------------------------------------------------------------- datasets
def test_every_list_of_dataset_names_derives_from_the_loaders() -> None:
    assert DATASETS == BUILT_IN == dataset_names(bundled=True)
    assert dataset_names() == (*BUILT_IN, "synthetic")
    assert list(BUNDLED) == [name.replace("_", "-") for name in dataset_names()]
    assert list(_dataset_choices()) == list(BUNDLED)
    for name in BUILT_IN:
        loader = dataset_loader(name)
        assert loader.bundled and loader.title and loader.sites
        assert dataset_loader(loader.cli_name) is loader
    assert dataset_loader("heart-disease").load is datasets.load_heart_disease


def test_a_registered_dataset_is_known_to_every_list(tiny_dataset: DatasetLoader) -> None:
    assert tiny_dataset.cli_name == "tiny-test"
    assert "tiny_test" in dataset_names() and "tiny_test" not in datasets.DATASETS
    assert "tiny-test" in BUNDLED and "tiny-test" in _dataset_choices()
    cohort = bundled_cohort("tiny-test")
    assert (cohort.name, len(cohort)) == ("tiny_test", 8)
    _, parsers = build_parser()
    args = parsers["pretrain"].parse_args(["--dataset", "tiny-test"])
    assert args.dataset == "tiny-test"
    with pytest.raises(ValueError, match="unknown dataset 'tiny_test'; bundled datasets are"):
        source_info("tiny_test")  # it does not ship with graphxfer


def test_unknown_and_badly_named_datasets_are_refused() -> None:
    with pytest.raises(UserError, match="unknown dataset 'mnist'; bundled: diabetes-130"):
        bundled_cohort("mnist")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; known datasets are"):
        dataset_loader("mnist")
    with pytest.raises(ValueError, match="lower-case letters, digits and '_'"):
        DatasetLoader("Tiny-Test", _tiny, "Tiny", "2 sites")
    with pytest.raises(ValueError, match="load must be callable"):
        DatasetLoader("tiny", "not callable", "Tiny", "2 sites")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="already registered"):
        register_dataset(DatasetLoader("oulad", _tiny, "Tiny", "2 sites"))


# ----------------------------------------------------------------------------- baselines
def test_baselines_come_from_one_registry_of_fitters() -> None:
    assert list(BASELINES) == [
        "logistic-source",
        "logistic",
        "xgboost",
        "logistic-pooled",
        "xgboost-source",
        "xgboost-pooled",
        "zero-shot",
    ]
    assert set(YARDSTICK) <= set(BASELINES)
    assert BASELINES["logistic-pooled"] == "logistic regression, pooled (source + target)"


def test_every_registered_baseline_predicts_held_out_probabilities() -> None:
    source, target = _tiny(), _tiny()
    X = target.X

    class NoHead:
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            raise GraphxferError("no source outcome head")

    cache: dict[str, Any] = {}
    data = BaselineData(NoHead(), source, X, target.y, X, 0, cache)  # type: ignore[arg-type]
    for name in BASELINES:
        p = baseline_predictions(name, data)
        if name == "zero-shot":
            assert p is None  # self-supervised encoders have no source model
            continue
        assert p is not None and p.shape == (len(X),)
        assert np.all((p >= 0) & (p <= 1))
    assert set(cache) == {"logistic-source", "xgboost-source"}  # source-only models: fitted once
    with pytest.raises(GraphxferError, match="unknown baseline 'nope'; choose from"):
        baseline_predictions("nope", data)
