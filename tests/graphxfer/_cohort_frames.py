"""The cohort used by the tests of :class:`~graphxfer.Cohort` and of its value checks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from graphxfer import Schema
from graphxfer.exceptions import first_rows
from graphxfer.schema import Column

ROWS = ["r0", "r1", "r2", "r3", "r4", "r5"]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "site": ["A", "A", "B", "B", "B", "A"],
            "age": [50, 61, 45, 70, 38, 55],
            "chol": [210.0, np.nan, 180.0, 0.0, 250.0, 199.5],
            "sex": pd.Series(["F", "M", "M", "F", None, "M"], dtype="str"),
            "cp": pd.Series(["typical", "atypical", "none", "typical", "none", None], dtype="str"),
            "smoker": [True, False, True, False, False, True],
            "extra": ["x"] * 6,
            "sick": [0, 1, 0, 1, 1, 0],
        }
    ).set_axis(ROWS)


def schema() -> Schema:
    return Schema(
        [
            Column("pid", "categorical", "id"),
            Column("site", "categorical", "group"),
            Column("age", lower=0, upper=120, unit="years"),
            Column("chol", lower=50, upper=600, missing_values=[0]),
            Column("sex", "binary", categories=["F", "M"]),
            Column("cp", "categorical", categories=["typical", "atypical", "none"]),
            Column("smoker", "binary"),
            Column("sick", "binary", "target"),
        ],
        name="A",
    )


def rows_pattern(*labels: str) -> str:
    return re.escape(first_rows(list(labels)))
