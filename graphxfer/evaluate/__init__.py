"""Evaluation: transfer curves against target-only, source-only and pooled baselines."""

from graphxfer.evaluate.curve import BASELINES, TransferCurve, transfer_curve
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
    "TransferCurve",
    "bootstrap_ci",
    "brier_score",
    "expected_calibration_error",
    "mean_ci",
    "score_all",
    "transfer_curve",
]
