"""A raw CSV cohort for the command line: an id column, a site column, an outcome."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graphxfer import datasets

PER_SITE = 40  # records per hospital: enough for a stratified split, small enough to be fast


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The heart-disease cohort as an analyst would export it: ``patient_id``, ``site``, the
    measurements and ``disease``, ``PER_SITE`` records of each hospital."""
    data = datasets.load_heart_disease().data
    data = data.rename(columns={"record_id": "patient_id", "target": "disease"})
    data["disease"] = data["disease"].astype(int)
    parts = [g.sample(PER_SITE, random_state=0) for _, g in data.groupby("site", sort=False)]
    path = tmp_path_factory.mktemp("raw") / "heart.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path
