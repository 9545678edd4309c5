"""``graphxfer demo`` and ``graphxfer cohorts``: the bundled cohorts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

    loaders: list[tuple[str, Callable[..., Any]]] = [
        ("Heart disease (UCI), 4 hospitals", datasets.load_heart_disease),
        ("Student performance (UCI), 2 schools x 2 subjects", datasets.load_student_performance),
        ("OULAD, 7 course modules", datasets.load_oulad),
        ("Diabetes 130-US hospitals, admission sources", datasets.load_diabetes_130),
    ]
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for title, loader in loaders:
            cohort = loader()
            print(f"\n== {title}: {len(cohort):,} rows, {len(cohort.schema.features)} features")
            print(format_summary(cohort.summary()))
    return 0
