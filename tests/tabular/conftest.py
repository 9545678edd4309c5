"""Fixtures for the tabular tests: single-threaded torch and a structured synthetic source."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from _tabular_data import SMALL_PARAMS, columns, make_frame

from tabular import Featurizer


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and threads stall on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def source() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(600, seed=1)


@pytest.fixture(scope="session")
def featurizer(source: tuple[pd.DataFrame, np.ndarray]) -> Featurizer:
    return Featurizer().fit(source[0], columns())


@pytest.fixture(params=sorted(SMALL_PARAMS))
def encoder_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)
