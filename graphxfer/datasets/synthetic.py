"""Synthetic multi-site cohorts with a known true model and controlled site shifts."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.schema import Column, Schema

__all__ = ["make_multisite"]

_CHUNK_ROWS = 65_536
_LEVELS = ["A", "B", "C"]
_CUTS = np.array([-0.4307272992954576, 0.4307272992954576])  # standard-normal tertiles
_SITE_OFFSET_CLIP = 3.0
_TAIL = 6.0


def _count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def make_multisite(
    n_sites: int = 3,
    n_per_site: int | Sequence[int] = 500,
    n_features: int = 10,
    *,
    shift: float = 0.5,
    label_shift: float = 0.0,
    missing_columns: Mapping[int, Sequence[str]] | None = None,
    n_categorical: int = 2,
    random_state: int | np.random.Generator | np.random.SeedSequence | None = None,
) -> Cohort:
    """Generate a synthetic multi-site cohort with one true logistic model.

    Every record has ``n_features`` latent standard-normal features ``z``. At site ``s`` they
    are shifted by a site mean ``mu_s = shift * d_s`` (``d_s`` a random direction, entries
    standard normal clipped to [-3, 3]), so ``shift`` controls covariate shift between sites.
    The outcome follows one logistic model shared by all sites,
    ``P(y = 1) = sigmoid(b + w . z + label_shift * t_s)``, where ``w`` is random with
    ``|w| ~ 2``, ``b = 0`` and ``t_s`` runs evenly from -1 (first site) to +1 (last site), so
    ``label_shift`` moves the outcome rate of each site (an intercept shift).

    The first ``n_features - n_categorical`` latent features are observed as numeric columns
    ``x0, x1, ...`` (on their own random location and scale); the rest are observed only
    coarsely, as categorical columns ``c0, c1, ...`` with levels ``"A" < "B" < "C"`` cut at
    the tertiles of the standard normal. Rows are generated in chunks, so time and memory
    are linear in the number of rows (a million rows take about a second).

    Parameters
    ----------
    n_sites : int, default=3
        Number of sites, named ``"site0"``, ``"site1"``, ...
    n_per_site : int or sequence of int, default=500
        Rows per site: one number for every site, or one per site.
    n_features : int, default=10
        Number of features (numeric plus categorical).
    shift : float, default=0.5
        Scale of the per-site covariate mean shift; 0 gives identically distributed sites.
    label_shift : float, default=0.0
        Size of the per-site intercept shift, from ``-label_shift`` at the first site to
        ``+label_shift`` at the last.
    missing_columns : dict, optional
        ``{site_index: [column, ...]}``: feature columns that a site never measured (all
        missing there), e.g. ``{2: ["x0", "c1"]}``.
    n_categorical : int, default=2
        How many of the features are categorical (at most ``n_features``).
    random_state : int, Generator, SeedSequence or None
        Seed of a :class:`numpy.random.Generator`; the global random state is never used.

    Returns
    -------
    Cohort
        Columns ``site`` (group), ``x0, ...`` (numeric, with declared bounds), ``c0, ...``
        (categorical) and the binary target ``y``. There is no id column: each row is one
        person. Built with ``all_missing="keep"``. The true coefficients are not returned;
        they are a function of ``random_state``.

    Raises
    ------
    ValueError
        An invalid count, shift, site index or column name.

    Examples
    --------
    >>> from graphxfer.datasets import make_multisite
    >>> cohort = make_multisite(n_sites=2, n_per_site=[300, 50], random_state=0)
    >>> cohort.groups.value_counts().to_dict()
    {'site0': 300, 'site1': 50}
    >>> cohort.schema.feature_names
    ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'c0', 'c1']
    >>> missing = make_multisite(missing_columns={1: ["x0"]}, random_state=0)
    >>> bool(missing.data.loc[missing.groups == "site1", "x0"].isna().all())
    True
    """
    n_sites = _count(n_sites, "n_sites", 1)
    n_features = _count(n_features, "n_features", 1)
    n_categorical = _count(n_categorical, "n_categorical", 0)
    if n_categorical > n_features:
        raise ValueError(f"n_categorical={n_categorical} exceeds n_features={n_features}")
    if isinstance(n_per_site, numbers.Integral) and not isinstance(n_per_site, bool):
        sizes = [_count(n_per_site, "n_per_site", 1)] * n_sites
    elif isinstance(n_per_site, Sequence) and not isinstance(n_per_site, str):
        sizes = [_count(n, "n_per_site[i]", 1) for n in n_per_site]
        if len(sizes) != n_sites:
            raise ValueError(f"n_per_site has {len(sizes)} entries for n_sites={n_sites}")
    else:
        raise ValueError(f"n_per_site must be an int or a list of ints, got {n_per_site!r}")
    shift = _real(shift, "shift")
    label_shift = _real(label_shift, "label_shift")
    n_num = n_features - n_categorical
    num_names = [f"x{j}" for j in range(n_num)]
    cat_names = [f"c{j}" for j in range(n_categorical)]
    features = num_names + cat_names
    absent: dict[int, list[str]] = {}
    for site, cols in (missing_columns or {}).items():
        if isinstance(site, bool) or not isinstance(site, numbers.Integral):
            raise ValueError(f"missing_columns keys are site indices, got {site!r}")
        if not 0 <= int(site) < n_sites:
            raise ValueError(f"missing_columns names site {site}; sites are 0..{n_sites - 1}")
        names = [cols] if isinstance(cols, str) else list(cols)
        unknown = [c for c in names if c not in features]
        if unknown:
            raise ValueError(
                f"missing_columns[{site}] names {unknown}, which are not features; "
                f"features are {features}"
            )
        absent[int(site)] = names

    rng = np.random.default_rng(random_state)
    weights = rng.standard_normal(n_features) * (2.0 / np.sqrt(n_features))
    directions = np.clip(
        rng.standard_normal((n_sites, n_features)), -_SITE_OFFSET_CLIP, _SITE_OFFSET_CLIP
    )
    means = shift * directions
    locs = np.round(rng.uniform(-50.0, 50.0, n_num), 1)
    scales = np.round(10.0 ** rng.uniform(-1.0, 1.5, n_num), 2)
    offsets = label_shift * (np.linspace(-1.0, 1.0, n_sites) if n_sites > 1 else np.zeros(1))
    site_seeds = rng.spawn(n_sites)
    half = _TAIL + _SITE_OFFSET_CLIP * abs(shift)

    total = int(sum(sizes))
    x_num = np.empty((total, n_num), dtype=np.float64)
    x_cat = np.empty((total, n_categorical), dtype=np.int8)
    y = np.empty(total, dtype=np.int8)
    site_code = np.empty(total, dtype=np.int64)
    start = 0
    for s, n_rows in enumerate(sizes):
        site_rng = site_seeds[s]
        site_code[start : start + n_rows] = s
        for lo in range(0, n_rows, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, n_rows)
            z = site_rng.standard_normal((hi - lo, n_features))
            z += means[s]
            logit = z @ weights + offsets[s]
            u = site_rng.random(hi - lo)
            rows = slice(start + lo, start + hi)
            y[rows] = u < 1.0 / (1.0 + np.exp(-logit))
            np.clip(z[:, :n_num], -half, half, out=z[:, :n_num])
            x_num[rows] = locs + scales * z[:, :n_num]
            x_cat[rows] = np.searchsorted(_CUTS, z[:, n_num:]).astype(np.int8)
        start += n_rows

    sites = [f"site{s}" for s in range(n_sites)]
    data: dict[str, object] = {
        "site": pd.Categorical.from_codes(site_code, categories=pd.Index(sites)),
    }
    bounds = {}
    for j, name in enumerate(num_names):
        data[name] = x_num[:, j]
        lo_b = round(float(np.floor((locs[j] - scales[j] * half) * 100)) / 100 - 0.01, 2)
        hi_b = round(float(np.ceil((locs[j] + scales[j] * half) * 100)) / 100 + 0.01, 2)
        bounds[name] = (lo_b, hi_b)
    for j, name in enumerate(cat_names):
        data[name] = pd.Categorical.from_codes(x_cat[:, j], categories=pd.Index(_LEVELS))
    data["y"] = pd.Categorical.from_codes(y, categories=pd.Index([0, 1]))
    frame = pd.DataFrame(data)
    for s, names in absent.items():
        mask = site_code == s
        for name in names:
            frame.loc[mask, name] = np.nan

    columns = [Column("site", "categorical", "group", description="synthetic site")]
    columns += [
        Column(
            name,
            lower=bounds[name][0],
            upper=bounds[name][1],
            description=f"synthetic numeric feature (latent feature {j})",
        )
        for j, name in enumerate(num_names)
    ]
    columns += [
        Column(
            name,
            "categorical",
            categories=_LEVELS,
            description=f"synthetic categorical feature (latent feature {n_num + j}, in tertiles)",
        )
        for j, name in enumerate(cat_names)
    ]
    columns.append(Column("y", "binary", "target", description="synthetic outcome"))
    schema = Schema(columns, name="synthetic_multisite")
    return Cohort(frame, schema, all_missing="keep", name="synthetic_multisite")
