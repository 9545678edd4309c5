"""Announcing a long explanation with its estimate before it starts."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from typing import Any

from graphxfer.explain._methods import ExplainTask

logger = logging.getLogger("graphxfer.explain.explain")

LONG_EXPLANATION_S = 10.0
"""An explanation expected to take longer than this many seconds is announced with its estimate."""

ANNOUNCE_MIN_RECORDS = 20
"""Runs over fewer distinct records are not timed in advance (they are short)."""


def duration_text(seconds: float) -> str:
    """``seconds`` in words a person reads at a glance: "40 s", "12 min", "1.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def announce(chosen: Any, task: ExplainTask, name: str) -> None:
    """Time the method on a few records (after one that pays one-time costs) and, when the
    whole run is expected to be long, say so before it starts. The timed records' results are
    discarded, so the explanation itself is the same with or without the announcement."""

    def part(rows: slice) -> ExplainTask:
        return dataclasses.replace(
            task, frame=task.frame.iloc[rows], matrix=task.matrix[rows], progress=False
        )

    chosen.compute(part(slice(0, 1)))
    start = time.perf_counter()
    chosen.compute(part(slice(1, 3)))
    estimate = (time.perf_counter() - start) / 2 * len(task.frame)
    if estimate > LONG_EXPLANATION_S:
        message = (
            f"Explaining {len(task.frame):,} distinct records (method {name!r}): about "
            f"{duration_text(estimate)} (measured on two records)"
        )
        logger.info(message)
        print(message, file=sys.stderr, flush=True)
