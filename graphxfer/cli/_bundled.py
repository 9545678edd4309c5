"""``graphxfer demo`` and ``graphxfer cohorts``: the bundled cohorts."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphxfer._cli_cohorts import format_summary
from graphxfer.cli._base import add_common, command

__all__: list[str] = []


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports", help="folder for the report and model files")
    p.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    add_common(p)


@command(
    "demo",
    "the main job on the bundled heart-disease cohorts, with an HTML report",
    _demo_arguments,
)
def _demo(args: argparse.Namespace) -> int:
    from graphxfer.demo import run_demo

    return run_demo(
        out_dir=Path(args.out), progress=not args.no_progress, seed=args.seed, quick=args.quick
    )


@command("cohorts", "per-site summary of every bundled cohort", lambda p: None)
def _cohorts(args: argparse.Namespace) -> int:
    import pandas as pd

    from graphxfer import datasets

    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for name in datasets.dataset_names(bundled=True):
            loader = datasets.dataset_loader(name)
            cohort = loader.load()
            title = f"{loader.title}, {loader.sites}"
            print(f"\n== {title}: {len(cohort):,} rows, {len(cohort.schema.features)} features")
            print(format_summary(cohort.summary()))
    return 0
