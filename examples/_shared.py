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
    "Clock",
    "Scoreboard",
    "parse_args",
    "quiet_warnings",
    "say",
    "show_audit",
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
        "--seed", type=int, default=0, help="seed of splits, training and explanations"
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

    Opacus reminds on every private fit that its secure random generator is off (the examples
    favour reproducibility; use ``PrivacyConfig(secure_mode=True)`` for a release), and some
    numerical libraries warn about empty bootstrap samples.
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
    """Print the negative-transfer check of a non-private transfer model."""
    check = getattr(model, "transfer_check_", None) or {}
    if not check.get("ran"):
        return
    verdict = "passed" if check["passed"] else "FAILED (negative transfer)"
    say(
        f"Negative-transfer check ({check['method']}): transfer {check['transfer_auc']:.3f} "
        f"vs target-only {check['baseline']} {check['baseline_auc']:.3f}: {verdict}"
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
