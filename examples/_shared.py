"""Helpers shared by the example scripts: options, tables, held-out scores and reports.

Not an example itself; each script imports it from this folder.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LINEAR_CANDIDATES",
    "Clock",
    "Scoreboard",
    "ZeroShot",
    "add_baselines",
    "parse_args",
    "pretrain_auto",
    "quiet_warnings",
    "say",
    "show_audit",
    "show_hyperparameters",
    "show_ledger",
    "show_summary",
    "show_transfer_check",
    "write_report",
]


def say(text: str = "") -> None:
    """Print at once (the scripts are often piped into a log)."""
    print(text, flush=True)


def parse_args(doc: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every example takes: ``--out``, ``--seed``, ``--quick``, ``--no-progress``."""
    first = (doc or "").strip().splitlines()
    parser = argparse.ArgumentParser(
        description=first[0] if first else None,
        epilog="See examples/README.md and docs/examples.md.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="folder for the HTML reports and model files (default: reports/)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of splits, non-private training and explanations (DP noise never comes "
        "from a seed)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a much shorter run (few epochs, small explanations) to check that it works",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the models are small, and one thread avoids "
        "contention on busy machines)",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    return args


def quiet_warnings() -> None:
    """Hide warnings that say nothing about the results.

    Opacus reminds on every private fit that its own secure mode (``torchcsprng``) is off; the
    noise and sampling come from generators seeded from the operating system's random source
    instead (see ``privacy.PrivacyConfig.secure_mode``). Some numerical libraries warn about
    empty bootstrap samples.
    """
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message=".*All-NaN slice encountered.*")
    warnings.filterwarnings("ignore", category=FutureWarning)


class Clock:
    """Seconds since the start of the script, and per step."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def step(self) -> float:
        now = time.perf_counter()
        spent, self.last = now - self.last, now
        return spent

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


class Scoreboard:
    """Held-out AUROC with a 95% bootstrap interval for every model, printed as one table."""

    def __init__(self, title: str, test: Any, *, seed: int, n_boot: int = 500) -> None:
        self.title = title
        self.test = test
        self.seed = seed
        self.n_boot = n_boot
        self.rows: list[dict[str, Any]] = []

    def add(self, label: str, model: Any, X: Any = None, *, note: str = "") -> float:
        """Score ``model`` on the held-out records (``X`` defaults to their feature columns)."""
        from graphxfer.evaluate.metrics import bootstrap_ci

        data = self.test.X if X is None else X
        p = np.asarray(model.predict_proba(data))[:, 1]
        auc, lo, hi = bootstrap_ci(
            self.test.y, p, "auroc", n_boot=self.n_boot, random_state=self.seed
        )
        self.rows.append({
            "model": label,
            "AUROC": auc,
            "95% CI": f"[{lo:.3f}, {hi:.3f}]",
            "note": note,
        })  # fmt: skip
        return auc

    def table(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows).set_index("model")
        if not frame["note"].astype(bool).any():
            frame = frame.drop(columns="note")
        return frame

    def show(self) -> pd.DataFrame:
        test = self.test
        say(
            f"\n{self.title}: held-out {len(test)} records, {test.n_persons} persons, "
            f"positive rate {float(np.mean(test.y)):.2f}"
        )
        frame = self.table()
        say(frame.to_string(float_format=lambda v: f"{v:.3f}"))
        return frame


def show_ledger(model: Any) -> None:
    """Print a private model's ledger: one line per DP release and the composed total."""
    ledger = getattr(model, "ledger_", None)
    if ledger is None:
        say("(no privacy ledger: the model was not trained with differential privacy)")
        return
    say(str(ledger))


def show_transfer_check(model: Any) -> None:
    """Print the negative-transfer check of a model: the private guard's choice under DP, the
    cross-fitted comparison without."""
    check = getattr(model, "transfer_check_", None) or {}
    if not check.get("ran"):
        return
    if check.get("private"):
        prior = ", ".join(f"{k} {v:.2f}" for k, v in check["prior"].items())
        say(
            f"Private transfer guard ({check['method']}, epsilon "
            f"{check['epsilon_selection']:.2f} for the choice, "
            f"{check['epsilon_target_only']:.2f} for the target-only candidate): candidates "
            f"{', '.join(check['candidates'])} (public prior: {prior}); shipped "
            f"{check['chosen']}"
        )
        return
    verdict = (
        "inconclusive (within two standard errors: the transferred model is kept)"
        if check.get("verdict") == "inconclusive"
        else "passed"
        if check["passed"]
        else "FAILED (negative transfer)"
    )
    say(
        f"Negative-transfer check ({check['method']}): transfer {check['transfer_auc']:.3f} "
        f"vs target-only {check['baseline']} {check['baseline_auc']:.3f}: {verdict}"
    )


def show_hyperparameters(model: Any) -> None:
    """Print the fine-tuning hyper-parameters a fit chose, and where they came from."""
    hp = dict(getattr(model, "hyperparameters_", None) or {})
    if not hp:
        return
    source = hp.pop("source", None) or hp.pop("alpha_source", None) or "as given"
    values = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items()
    )
    say(f"Fine-tuning hyper-parameters: {values}\n    chosen from: {source}")


class ZeroShot:
    """The pretrained encoder's source model, not fine-tuned, as a classifier to score.

    What the private transfer guard ships when fine-tuning on the target does not help.
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(self.encoder.predict_proba(X), dtype=np.float64)
        return np.column_stack([1 - p, p])


LINEAR_CANDIDATES = [
    {"encoder": "linear", "params": {"weight_decay": wd, "site_intercepts": True}}
    for wd in (0.1, 0.03, 0.01, 0.003, 0.001)
]
"""A short candidate list for large sources: logistic regressions over the featurizer's
features with one intercept per source site, fitted exactly, at five strengths of weight
decay (the default ``"fast"`` set adds an MLP and GraphSAGE, whose pretraining on tens of
thousands of records takes minutes)."""


def pretrain_auto(
    source: Any,
    *,
    sizes: Sequence[int],
    epsilon: float,
    quick: bool,
    seed: int,
    progress: bool,
    candidates: Any = "fast",
) -> Any:
    """``graphxfer.pretrain(source, "auto")``: the encoder chosen on the source, with private
    fine-tuning presets simulated for the target sizes at ``epsilon`` (and without privacy).

    The simulation draws a target of each size from a held-out source site (at most 60% of
    the site), so sizes above what the smallest held-out part allows are simulated at that
    bound; a fit looks up the nearest simulated size. ``--quick`` restricts the choice to one
    candidate (a logistic regression over the featurizer's features, with site intercepts)
    and skips the simulation: the private fits then use the defaults for small targets.
    """
    import graphxfer as gx
    from graphxfer.selection import Leaderboard, source_folds

    if quick:
        candidates = [
            {"encoder": "linear", "params": {"weight_decay": 0.01, "site_intercepts": True}}
        ]
        presets: Any = False
    else:
        _, folds = source_folds(source, max_folds=3, random_state=seed)
        bound = int(0.6 * min(len(fold.test) for fold in folds))
        simulated = tuple(sorted({min(int(n), bound) for n in sizes}))
        presets = {"sizes": simulated, "epsilons": (epsilon, None)}
    encoder = gx.pretrain(
        source,
        "auto",
        candidates=candidates,
        dp_presets=presets,
        random_state=seed,
        progress=progress,
    )
    board = Leaderboard.from_dict(encoder.metadata["selection"])
    say("    " + board.format(top=5).replace("\n", "\n    "))
    tuned = encoder.metadata.get("dp_presets")
    if tuned:
        say(
            f"    private fine-tuning presets, simulated on held-out source sites "
            f"({tuned['method']}, {tuned['seconds']:.0f} s):"
        )
        for e in tuned["entries"]:
            eps = "not private" if e["epsilon"] is None else f"eps={e['epsilon']:g}"
            sim = ", ".join(f"{k} {v:.3f}" for k, v in e["simulated"].items())
            say(f"      n={e['n']}, {eps}: {e['hyperparameters']} (simulated AUROC: {sim})")
    return encoder


def add_baselines(
    board: Scoreboard, source: Any, train: Any, names: Sequence[str], *, seed: int
) -> None:
    """The yardstick beside the transfer rows: logistic regression on the source only, on
    the target only and pooled, target-only XGBoost; then XGBoost on the source only and
    pooled. Pooling needs the target's records shared (the non-private reference)."""
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    names = list(names)
    X_source, X_train = source.X[names], train.X[names]
    pooled_X = pd.concat([X_source, X_train], ignore_index=True)
    pooled_y = np.concatenate([source.y, train.y])
    shared = "needs the target's records shared"
    board.add("logistic regression, source only", LogisticBaseline().fit(X_source, source.y))
    board.add("logistic regression, target only", LogisticBaseline().fit(X_train, train.y))
    board.add("XGBoost, target only", XGBoostBaseline(random_state=seed).fit(X_train, train.y))
    board.add(
        "logistic regression, pooled source + target",
        LogisticBaseline().fit(pooled_X, pooled_y),
        note=shared,
    )
    board.add("XGBoost, source only", XGBoostBaseline(random_state=seed).fit(X_source, source.y))
    board.add(
        "XGBoost, pooled source + target",
        XGBoostBaseline(random_state=seed).fit(pooled_X, pooled_y),
        note=shared,
    )


def show_audit(model: Any, train: Any, test: Any) -> dict[str, Any]:
    """Run and print the membership-inference audit of a model."""
    audit = model.audit(train, test)
    claimed = audit.get("claimed_epsilon")
    bound = audit.get("eps_lower_bound")
    verdict = "passed" if audit.get("passed") else "FAILED"
    claim = "" if claimed is None else f" <= claimed {claimed:.2f}"
    say(
        f"Membership-inference audit: attack AUROC {audit['attack_auc']:.3f}; empirical "
        f"epsilon lower bound {bound:.2f}{claim}: {verdict}"
    )
    return audit


def write_report(
    model: Any,
    cohort: Any,
    path: Path,
    *,
    title: str,
    seed: int,
    progress: bool,
    max_records: int = 100,
    n_background: int = 30,
    permutations: int = 3,
) -> Path:
    """Explain up to ``max_records`` held-out records with SHAP and write the HTML report.

    The explanation is computed here rather than inside :func:`graphxfer.report` to bound its
    cost on a laptop: a seeded sample of at most ``max_records`` records, ``n_background``
    source background rows and ``permutations`` antithetic permutations per record (exact
    Shapley values when there are at most 10 columns). The report then covers that sample.
    """
    import graphxfer as gx

    if len(cohort) > max_records:
        rows = np.sort(np.random.default_rng(seed).choice(len(cohort), max_records, replace=False))
        cohort = cohort.subset(rows)
    n_features = len(getattr(model, "feature_names_in_", cohort.schema.features))
    method = "exact" if n_features <= 10 else "permutation"
    max_evals = None if method == "exact" else permutations * (2 * n_features + 1)
    explanation = gx.explain(
        model,
        cohort.X,  # the features only: a small sample may hold a single outcome class
        method,
        max_evals=max_evals,
        n_background=n_background,
        random_state=seed,
        progress=progress,
    )
    return gx.report(
        model,
        cohort,
        path,
        explanation=explanation,
        title=title,
        progress=progress,
        random_state=seed,
    )


def show_summary(tables: dict[str, pd.DataFrame], heading: str) -> pd.DataFrame:
    """One wide table: ``AUROC [95% CI]`` per model (rows) and scenario (columns)."""
    columns = {}
    for name, table in tables.items():
        columns[name] = [
            f"{auc:.3f} {ci}" for auc, ci in zip(table["AUROC"], table["95% CI"], strict=True)
        ]
    order = list(dict.fromkeys(m for t in tables.values() for m in t.index))
    wide = pd.DataFrame(
        {name: pd.Series(values, index=tables[name].index) for name, values in columns.items()}
    ).reindex(order)
    wide.index.name = "model"
    say(f"\n{heading}")
    say(wide.fillna("-").to_string())
    return wide
