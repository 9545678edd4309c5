"""The record-free summary of a source cohort kept with an encoder, and SHAP backgrounds drawn
from it: row counts, outcome rate, sites, and per-column marginal distributions (quantiles and
category frequencies).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.schema import Schema

__all__ = ["background_from_summary", "source_summary"]

_N_QUANTILES = 101


def source_summary(cohort: Cohort) -> dict[str, Any]:
    """A description of a cohort that holds no individual record.

    Counts, outcome rate, sites, and per feature column the share missing plus either 101
    quantiles (numeric) or category frequencies (categorical, binary, ordinal).
    """
    X = cohort.X
    marginals: dict[str, Any] = {}
    for col in cohort.schema.features:
        values = X[col.name]
        missing = float(values.isna().mean())
        observed = values.dropna()
        if col.kind == "numeric":
            if len(observed):
                q = np.quantile(observed.to_numpy(dtype=float), np.linspace(0, 1, _N_QUANTILES))
                quantiles = [float(v) for v in q]
            else:
                quantiles = []
            marginals[col.name] = {"kind": "numeric", "missing": missing, "quantiles": quantiles}
        else:
            freq = observed.astype(str).value_counts(normalize=True)
            marginals[col.name] = {
                "kind": col.kind,
                "missing": missing,
                "frequencies": {str(k): float(v) for k, v in freq.items()},
            }
    groups = cohort.groups
    summary: dict[str, Any] = {
        "name": cohort.name,
        "n_rows": len(cohort),
        "n_persons": cohort.n_persons,
        "positive_rate": float(cohort.y.mean()) if cohort.has_target else None,
        "sites": (
            {str(k): int(v) for k, v in groups.value_counts(sort=False).items()}
            if groups is not None
            else None
        ),
        "marginals": marginals,
    }
    return summary


def background_from_summary(
    summary: dict[str, Any], schema: Schema, n: int, random_state: int | None = None
) -> pd.DataFrame:
    """``n`` synthetic records drawn independently per column from the source marginals.

    SHAP's independent masker assumes independent features, so independent draws from the
    source marginals are the background it needs, without shipping any source record.
    """
    rng = np.random.default_rng(random_state)
    out: dict[str, Any] = {}
    marginals = summary.get("marginals", {})
    for col in schema.features:
        m = marginals.get(col.name)
        if m is None:
            out[col.name] = np.full(n, np.nan)
            continue
        miss = rng.random(n) < m["missing"]
        if m["kind"] == "numeric":
            q = np.asarray(m["quantiles"], dtype=float)
            if q.size == 0:
                values = np.full(n, np.nan)
            else:
                values = np.interp(rng.random(n), np.linspace(0, 1, q.size), q)
            values[miss] = np.nan
            out[col.name] = values
        else:
            labels = list(m["frequencies"])
            if not labels:
                out[col.name] = np.full(n, np.nan, dtype=object)
                continue
            p = np.asarray(list(m["frequencies"].values()), dtype=float)
            draws = rng.choice(np.asarray(labels, dtype=object), size=n, p=p / p.sum())
            if m["kind"] == "binary":
                col_values: Any = np.asarray([float(v) for v in draws])
                col_values[miss] = np.nan
            else:
                col_values = draws.astype(object)
                col_values[miss] = np.nan
            out[col.name] = col_values
    return pd.DataFrame(out)
