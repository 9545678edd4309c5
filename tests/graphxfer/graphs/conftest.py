"""Shared data for the graph tests: a small synthetic source and target, pretrained encoders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphxfer import Cohort, Schema
from graphxfer.graphs import GraphEncoder, pretrain_graph

KINDS = ("graphsage", "gat", "gin")


@pytest.fixture(autouse=True)
def _one_thread():
    """The graphs here are tiny: one intra-op thread avoids oversubscribing shared CI cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_records(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Mixed records: numeric with missing values, a categorical and a binary outcome."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55 + shift, 12, n)
    bmi = rng.normal(28, 5, n)
    bmi[rng.random(n) < 0.15] = np.nan
    labs = rng.poisson(40, n).astype(float)
    kind = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    risk = 0.06 * (age - 55) + 0.8 * (kind == "a") - 0.5 * (kind == "d") + 0.02 * (labs - 40)
    y = (risk + rng.normal(0, 0.8, n) > 0.2).astype(int)
    return pd.DataFrame({"age": age, "bmi": bmi, "labs": labs, "kind": kind, "outcome": y})


def make_arrays(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered dense features and a 0/1 outcome that depends on the cluster and features."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (6, d))
    cluster = rng.integers(0, 6, n)
    x = (centers[cluster] + rng.normal(0, 1.0, (n, d))).astype(np.float32)
    y = ((cluster % 2 == 0) ^ (x[:, 0] > 2.5)).astype(np.int64)
    return x, y


@pytest.fixture(scope="session")
def source_cohort() -> Cohort:
    df = make_records(400, seed=1)
    return Cohort(df, Schema.infer(df, target="outcome"))


@pytest.fixture(scope="session")
def target_frame() -> pd.DataFrame:
    return make_records(60, seed=2, shift=5.0)


@pytest.fixture(scope="session")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    return make_arrays(300, 6, seed=3)


@pytest.fixture(scope="session")
def array_factory():
    """``make_arrays(n, d, seed)``."""
    return make_arrays


@pytest.fixture(scope="session")
def encoders(source_cohort: Cohort) -> dict[str, GraphEncoder]:
    """One briefly pretrained (supervised) encoder per GNN kind, on the source cohort."""
    return {
        kind: pretrain_graph(
            source_cohort,
            encoder=kind,
            k=6,
            hidden=16,
            layers=2,
            epochs=4,
            batch_size=128,
            fanout=(6, 6),
            random_state=0,
            progress=False,
        )
        for kind in KINDS
    }
