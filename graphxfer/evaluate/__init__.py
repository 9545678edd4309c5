"""Evaluation: transfer curves against source-only, target-only and pooled baselines."""

from graphxfer.evaluate.curve import BASELINES, YARDSTICK, TransferCurve, transfer_curve
from graphxfer.evaluate.metrics import (
    METRICS,
    bootstrap_ci,
    brier_score,
    expected_calibration_error,
    mean_ci,
    score_all,
)

__all__ = [
    "BASELINES",
    "METRICS",
    "YARDSTICK",
    "TransferCurve",
    "bootstrap_ci",
    "brier_score",
    "expected_calibration_error",
    "mean_ci",
    "score_all",
    "transfer_curve",
]
