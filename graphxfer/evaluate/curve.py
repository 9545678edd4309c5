"""Transfer curves: every method on the same seeded target splits, with confidence intervals."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder, pretrain
from graphxfer.evaluate._baselines import BASELINES, BaselineData, baseline_predictions
from graphxfer.evaluate.metrics import METRICS, mean_ci, score_all
from graphxfer.exceptions import GraphxferError, GraphxferWarning

__all__ = ["BASELINES", "YARDSTICK", "TransferCurve", "transfer_curve"]

YARDSTICK: tuple[str, ...] = ("logistic-source", "logistic", "xgboost", "logistic-pooled")
"""The baselines every curve shows: the best model a target could build without the toolkit,
from the source alone, from its own records alone, or from both pooled."""

_ALIASES = {"source-only": "xgboost-source", "pooled": "xgboost-pooled"}
"""Earlier names of two baselines, still accepted."""


@dataclass
class TransferCurve:
    """Result of :func:`transfer_curve`.

    Attributes
    ----------
    results : DataFrame
        One row per method, target size, epsilon and repeat: ``method``, ``n``, ``epsilon``
        (NaN = not private), ``repeat``, ``auroc``, ``auprc``, ``brier``, ``ece``, ``note``.
    summary : DataFrame
        Mean and 95% confidence interval (Student t over repeats, clipped to the metric's
        range [0, 1]) of every metric per method, size and epsilon, and ``reason``: why a
        statistic is missing (NaN), empty when none is.
    """

    results: pd.DataFrame
    summary: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.results)

    def plot(self, metric: str = "auroc", ax: Any = None) -> Any:
        """Line plot of ``metric`` against target size, one line per method, with 95% CIs.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        else:
            fig = ax.figure
        s = self.summary
        for label, part in s.groupby("label", sort=False):
            part = part.sort_values("n")
            ax.plot(part["n"], part[f"{metric}_mean"], marker="o", label=label)
            ax.fill_between(
                part["n"], part[f"{metric}_ci_low"], part[f"{metric}_ci_high"], alpha=0.15
            )
        ax.set_xscale("log")
        sizes = sorted(s["n"].unique())
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(v) for v in sizes])
        ax.minorticks_off()
        ax.set_xlabel("target training records")
        ax.set_ylabel(metric.upper())
        ax.set_title(f"{metric.upper()} against target size (mean, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return fig


def _label(method: str, epsilon: float) -> str:
    name = BASELINES.get(method, method)
    return name if not np.isfinite(epsilon) else f"{name} (ε={epsilon:g})"


def _resolve_baselines(baselines: Sequence[str]) -> list[str]:
    """The requested baselines by their current names, the yardstick first and always."""
    if isinstance(baselines, str):
        baselines = [baselines]
    names = [_ALIASES.get(b, b) for b in baselines]
    unknown = [b for b, name in zip(baselines, names, strict=True) if name not in BASELINES]
    if unknown:
        raise GraphxferError(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    return list(dict.fromkeys([*YARDSTICK, *names]))


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI per method, size and epsilon, with the reason for any NaN."""
    rows = []
    keys = ["method", "n", "epsilon"]
    frame = results.copy()
    frame["epsilon_key"] = frame["epsilon"].fillna(np.inf)
    for (method, n, eps), part in frame.groupby(["method", "n", "epsilon_key"], sort=False):
        row: dict[str, Any] = {"method": method, "n": int(n), "epsilon": eps}
        row["label"] = _label(str(method), float(eps))
        row["repeats"] = int(part["auroc"].notna().sum())
        for metric in METRICS:
            m, lo, hi = mean_ci(part[metric].to_numpy())
            # every metric lies in [0, 1]; a t-interval over few repeats can reach past it
            lo, hi = float(np.clip(lo, 0.0, 1.0)), float(np.clip(hi, 0.0, 1.0))
            row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = m, lo, hi
        row["reason"] = _reason(part)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["epsilon"] = out["epsilon"].replace(np.inf, np.nan)
        out = out.sort_values(keys, na_position="first").reset_index(drop=True)
    return out


def _reason(part: pd.DataFrame) -> str:
    """Why the statistics of one summary row are (partly) NaN; empty when none is."""
    reasons = []
    unscored = part[part[list(METRICS)].isna().any(axis=1)]
    if len(unscored):
        notes = [str(v) for v in dict.fromkeys(unscored["note"]) if str(v)]
        why = "; ".join(notes) or "a metric is undefined on the test part (a single class)"
        share = "" if len(unscored) == len(part) else f"{len(unscored)} of {len(part)} repeats: "
        reasons.append(share + why)
    if int(part["auroc"].notna().sum()) == 1:  # as the summary's "repeats" counts
        reasons.append("a single scored repeat: no confidence interval")
    return "; ".join(reasons)


def _duration(seconds: float) -> str:
    """``seconds`` in words: "1 second", "45 seconds", "4.5 minutes", "12 minutes"."""
    if seconds < 89.5:
        whole = max(1, round(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = round(seconds / 60, 1)
    return f"{minutes:.1f} minutes" if minutes < 10 else f"{round(seconds / 60)} minutes"


def _estimate_message(total_seconds: float, repeats: int, n_sizes: int, basis: str) -> str:
    """The run-time estimate of a transfer curve, e.g. "about 4.5 minutes for 5 repeats x 3
    sizes (the first run, n=25, took 18 seconds)"."""
    cells = f"{repeats} repeat{'s' if repeats != 1 else ''} x {n_sizes} size"
    cells += "s" if n_sizes != 1 else ""
    return f"transfer curve: about {_duration(total_seconds)} for {cells} ({basis})"


def _sample_train(pool: Cohort, n: int, rng: np.random.Generator) -> Cohort | None:
    """``n`` persons of ``pool`` with both outcomes present, or None when impossible."""
    person = pool.person_index
    n_persons = int(person.max()) + 1
    if n > n_persons:
        return None
    for _ in range(50):
        chosen = rng.choice(n_persons, size=n, replace=False)
        part = pool.subset(np.isin(person, chosen))
        if len(np.unique(part.y)) == 2:
            return part
    return None


def transfer_curve(
    source: Cohort,
    target: Cohort,
    *,
    encoder: Encoder | str = "auto",
    pretrain_params: dict[str, Any] | None = None,
    target_sizes: Sequence[int] = (25, 50, 100),
    strategies: Sequence[str] = ("anchored", "lp-ft"),
    epsilons: Sequence[float | None] = (None,),
    baselines: Sequence[str] = (*YARDSTICK, "zero-shot"),
    repeats: int = 20,
    test_size: float = 0.3,
    finetune_params: dict[str, Any] | None = None,
    privacy_params: dict[str, Any] | None = None,
    random_state: int = 0,
    progress: bool = True,
) -> TransferCurve:
    """Compare transfer strategies and baselines on the same seeded target splits.

    For each repeat the target is split once into a held-out test part and a training pool;
    for each target size the same ``n`` training persons (both classes present) are given to
    every method. Metrics are computed on the held-out part.

    Parameters
    ----------
    source, target : Cohort
        The source cohort and the target cohort (with outcomes).
    encoder : Encoder or str, default="auto"
        A pretrained encoder, or the name of one to pretrain on ``source`` once. ``"auto"``
        chooses it by leave-one-site-out validation on the source and tunes the private
        fine-tuning hyper-parameters there (``pretrain(source, "auto")``); unless
        ``pretrain_params`` says otherwise, the simulation covers this curve's target sizes
        and epsilons (``dp_presets={"sizes": target_sizes, "epsilons": epsilons}``).
    pretrain_params : dict, optional
        Options of :func:`graphxfer.pretrain` when ``encoder`` is a name (for ``"auto"``,
        e.g. ``candidates`` and ``dp_presets``).
    target_sizes : sequence of int
        Numbers of target training persons.
    strategies : sequence of str, default=("anchored", "lp-ft")
        Fine-tuning strategies of :class:`~graphxfer.TransferClassifier`, each fitted as it
        is deployed: under privacy with its default ``dp_hyperparameters="auto"`` and, for
        ``anchored``, the private negative-transfer guard (paid from the same epsilon).
    epsilons : sequence of float or None
        ``None`` fine-tunes without privacy; a number with DP at that epsilon. Sizes below
        the DP minimum give a row with NaN metrics and a ``note``.
    baselines : sequence of str, default=(*YARDSTICK, "zero-shot")
        Reference methods, names of :data:`BASELINES`. The :data:`YARDSTICK` (logistic
        regression on the source only, on the target only and pooled, and target-only
        XGBoost) is always included.
    repeats : int, default=20
    test_size : float, default=0.3
    finetune_params : dict, optional
        Extra TransferClassifier options (``epochs``, ``alpha``, ``check_transfer``...).
    privacy_params : dict, optional
        Extra :class:`privacy.PrivacyConfig` options (``accountant``, ``min_records``...).
        Strategies other than ``anchored`` default to ``epochs=10`` and
        ``batch_size=max(8, n // 4)``; under ``dp_hyperparameters="auto"`` the anchored
        strategy takes its own from the encoder's presets.
    random_state : int, default=0
    progress : bool, default=True
        Show a progress bar (on a terminal only) and, once the first repeat at the first size
        is done, an estimate of the whole run time on standard error ("about 4.5 minutes for
        5 repeats x 3 sizes"), extrapolated from that first one. ``False`` shows neither.

    Returns
    -------
    TransferCurve
        ``results`` (one row per method, size, epsilon and repeat) and ``summary`` (means,
        95% intervals and the ``reason`` for any NaN).
    """
    from tqdm.auto import tqdm

    from graphxfer.transfer import TransferClassifier
    from privacy import PrivacyConfig, PrivacyError

    names_of_baselines = _resolve_baselines(baselines)
    if repeats < 1:
        raise GraphxferError(f"repeats={repeats} must be >= 1")
    if not isinstance(encoder, Encoder):
        params = {"random_state": random_state, "progress": False, **(pretrain_params or {})}
        if encoder == "auto" and "dp_presets" not in params:
            params["dp_presets"] = {
                "sizes": tuple(int(n) for n in target_sizes),
                "epsilons": tuple(dict.fromkeys(epsilons)),
            }
        encoder = pretrain(source, encoder, **params)
    aligned_target, _ = target.align(encoder.schema)
    names = encoder.schema.feature_names
    rows: list[dict[str, Any]] = []
    n_jobs = repeats * len(target_sizes)
    # disable=None: a bar only on a terminal (no bar lines in logs and CI output)
    bar = tqdm(total=n_jobs, desc="transfer curve", disable=None if progress else True)
    source_models: dict[str, Any] = {}
    started = time.perf_counter()
    cells_done, first_estimate = 0, 0.0
    for repeat in range(repeats):
        seed = random_state + repeat
        pool, test = aligned_target.split(test_size, random_state=seed)
        X_test, y_test = test.X[names], test.y
        rng = np.random.default_rng(seed)
        for n in target_sizes:
            train = _sample_train(pool, int(n), rng)
            if train is None:
                raise GraphxferError(
                    f"target size {n} is larger than the training pool ({pool.n_persons} "
                    f"persons) or cannot hold both outcomes; lower it or test_size"
                )

            def record(
                method: str,
                eps: float | None,
                p: np.ndarray | None,
                note: str = "",
                y_test: np.ndarray = y_test,
                n: int = int(n),
                repeat: int = repeat,
            ) -> None:
                scores = (
                    score_all(y_test, p) if p is not None else dict.fromkeys(METRICS, float("nan"))
                )
                rows.append({
                    "method": method,
                    "n": n,
                    "epsilon": float("nan") if eps is None else float(eps),
                    "repeat": repeat,
                    **scores,
                    "note": note,
                })  # fmt: skip

            for eps in epsilons:
                for strategy in strategies:
                    kwargs = dict(finetune_params or {})
                    if eps is not None:
                        pp: dict[str, Any] = {}
                        if strategy != "anchored":
                            pp = {"epochs": 10, "batch_size": max(8, int(n) // 4)}
                        pp.update(privacy_params or {})
                        kwargs["privacy"] = PrivacyConfig(epsilon=float(eps), **pp)
                    clf = TransferClassifier(
                        encoder, strategy=strategy, random_state=seed, **kwargs
                    )
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", GraphxferWarning)
                            clf.fit(train)
                    except PrivacyError as exc:  # a refused DP run is a result, not a crash
                        if eps is None:
                            raise
                        record(f"transfer:{strategy}", eps, None, note=str(exc).split(";")[0])
                        continue
                    record(f"transfer:{strategy}", eps, clf.predict_proba(X_test)[:, 1])
            X_train, y_train = train.X[names], train.y
            for b in names_of_baselines:
                p = _baseline_predictions(
                    b, encoder, source, X_train, y_train, X_test, seed, source_models
                )
                if p is None:
                    record(b, None, None, note="not available for this encoder")
                else:
                    record(b, None, p)
            bar.update(1)
            cells_done += 1
            if progress and n_jobs > 1:
                # extrapolated from the first run, then (where sizes cost differently, e.g. DP
                # runs refused below the minimum size) corrected after the first repeat
                elapsed = time.perf_counter() - started
                if cells_done == 1:
                    first_estimate = elapsed * n_jobs
                    basis = f"the first run, n={int(n)}, took {_duration(elapsed)}"
                    message = _estimate_message(first_estimate, repeats, len(target_sizes), basis)
                    tqdm.write(message, file=sys.stderr)
                elif cells_done == len(target_sizes) and repeats > 1:
                    revised = elapsed * repeats
                    if abs(revised - first_estimate) > 0.25 * first_estimate:
                        basis = f"revised: the first repeat took {_duration(elapsed)}"
                        message = _estimate_message(revised, repeats, len(target_sizes), basis)
                        tqdm.write(message, file=sys.stderr)
    bar.close()
    return TransferCurve(pd.DataFrame(rows))


def _baseline_predictions(
    name: str,
    encoder: Encoder,
    source: Cohort,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_test: pd.DataFrame,
    seed: int,
    cache: dict[str, Any],
) -> np.ndarray | None:
    """Held-out probabilities of the baseline ``name``; None when the encoder cannot give it.

    Models that never see target records (source only, zero-shot) are fitted once and kept
    in ``cache``.
    """
    data = BaselineData(encoder, source, X_train, y_train, X_test, seed, cache)
    return baseline_predictions(name, data)
