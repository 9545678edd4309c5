"""Site intercepts against the pooled linear model: what the source says, what the target gets.

For each multi-site row of the quality benchmark (``benchmarks._quality_targets``) this
prints, for the linear encoder with and without ``site_intercepts``:

- what the source says: leave-site-out validation of the thorough linear grid over every
  source record (``max_rows=None``), the score difference of the best of each kind and its
  bootstrap standard error (:func:`graphxfer.selection.evaluate_candidates`);
- the zero-shot AUROC (source model, no fine-tuning) on the quality benchmark's seeded target
  splits, each kind pretrained on the whole source at the weight decay it chose;
- the source-only logistic regression of the quality benchmark on the same splits.

Then, over ``--seeds`` :func:`~graphxfer.datasets.make_multisite` cohorts of the synthetic
row's sizes and shift (the last site the target, the others the source), the change of the
zero-shot AUROC on the whole target site from pooled to site intercepts (linear encoder,
weight decay 1e-4 for both): mean, standard deviation, range.

Run: ``python -m benchmarks.bench_site_intercepts [--rows oulad-aaa,synthetic] [--splits 20]
[--seeds 12]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

SEED0 = 0


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def row(target: Any, n_splits: int) -> dict[str, Any]:
    """The figures of one quality-benchmark row (see the module notes)."""
    import graphxfer
    from benchmarks.bench_quality import fit_logistic, logistic_proba, zero_shot_proba
    from graphxfer.selection import (
        Candidate,
        default_candidates,
        evaluate_candidates,
        whole_source_params,
    )

    start = time.perf_counter()
    source, cohort, _ = target.load()
    thorough = default_candidates("thorough", n_rows=len(source))
    linear = [c for c in thorough if c.encoder == "linear"]
    board = evaluate_candidates(source, linear, max_rows=None, random_state=SEED0, progress=False)
    check = board.site_intercepts_check
    if check is None:
        raise SystemExit(f"row {target.key}: the source has a single site")
    by_label = {r["label"]: Candidate.from_dict(r["candidate"]) for r in board.results}
    splits = [
        cohort.split(cohort.n_persons - target.n, random_state=SEED0 + i)[1]
        for i in range(n_splits)
    ]
    out: dict[str, Any] = {"key": target.key, "check": check}
    for kind in ("without", "with"):
        params = whole_source_params(board, by_label[check[kind]], len(source))
        enc = graphxfer.pretrain(
            source, "linear", "supervised", random_state=SEED0, progress=False, **params
        )
        out[kind] = float(np.mean([_auroc(te.y, zero_shot_proba(enc, te)) for te in splits]))
    names = cohort.schema.feature_names
    lr = fit_logistic(source.X[names], source.y)
    out["lr_source"] = float(
        np.mean([_auroc(te.y, logistic_proba(lr, te.X[names])) for te in splits])
    )
    out["seconds"] = time.perf_counter() - start
    return out


def synthetic_seeds(n_seeds: int) -> list[float]:
    """Site intercepts minus pooled, zero-shot AUROC on the target site, per seed."""
    import graphxfer
    from graphxfer.datasets import make_multisite

    out = []
    for seed in range(n_seeds):
        cohort = make_multisite(
            n_sites=4, n_per_site=[3000, 3000, 3000, 1000], shift=1.5, random_state=seed
        )
        source = cohort.select_groups(["site0", "site1", "site2"])
        target = cohort.select_groups("site3")
        auc = []
        for sites in (False, True):
            enc = graphxfer.pretrain(
                source, "linear", weight_decay=1e-4, random_state=SEED0, progress=False,
                site_intercepts=sites,
            )  # fmt: skip
            auc.append(_auroc(target.y, enc.predict_proba(target)))
        out.append(auc[1] - auc[0])
        print(f"seed {seed}: pooled {auc[0]:.4f}, site intercepts {auc[1]:.4f}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks._quality_targets import TARGETS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_site_intercepts")
    parser.add_argument("--rows", default="oulad-aaa,synthetic,heart-hungarian,heart-va")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=12, help="make_multisite seeds (0: none)")
    args = parser.parse_args(argv)
    wanted = [k.strip() for k in args.rows.split(",") if k.strip()]
    known = {t.key: t for t in TARGETS}
    unknown = [k for k in wanted if k not in known]
    if unknown:
        parser.error(f"--rows: unknown row(s) {unknown}; choose from {', '.join(known)}")
    print(
        "| row | pooled | site intercepts | LR source only | source: gain ± 1 SE | s |\n"
        "|---|---|---|---|---|---|",
        flush=True,
    )
    for key in wanted:
        r = row(known[key], args.splits)
        c = r["check"]
        print(
            f"| {key} | {r['without']:.4f} | {r['with']:.4f} | {r['lr_source']:.4f} | "
            f"{c['difference']:+.4f} ± {c['standard_error']:.4f} | {r['seconds']:.0f} |",
            flush=True,
        )
    if args.seeds > 0:
        diffs = np.asarray(synthetic_seeds(args.seeds))
        print(
            f"make_multisite, {args.seeds} seeds: site intercepts minus pooled {diffs.mean():+.4f}"
            f" on average (sd {diffs.std(ddof=1):.4f}, {diffs.min():+.4f} to {diffs.max():+.4f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
