"""Wording and small formatters shared by the built-in report sections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from graphxfer.report.blocks import Block, facts, note, text

__all__ = ["ARTEFACT", "ARTEFACT_WHY", "NOT_AVAILABLE", "mapping_blocks", "share"]

NOT_AVAILABLE = "Not available: the model card does not include it."
"""What a section says for a part the model card does not hold."""
ARTEFACT = "possible site artefact"
"""The mark of a column flagged as shifted from the source."""
ARTEFACT_WHY = (
    "A column that this site records differently from the source (far more or fewer values "
    "missing, values outside the source's range) can move predictions because of how the site "
    "records data rather than because of the patient, so its attributions are not evidence of "
    "clinical signal."
)
"""Why a flagged column's attributions are not evidence of clinical signal."""


def share(value: Any) -> str:
    """A share as a percentage, or a dash for NaN."""
    value = float(value)
    return "—" if np.isnan(value) else f"{value:.1%}"


def mapping_blocks(value: Any) -> list[Block]:
    """A mapping as facts, any other value as text, nothing as "not available"."""
    if isinstance(value, Mapping) and value:
        return [facts({str(k).replace("_", " "): v for k, v in value.items()})]
    if value not in (None, {}, []):
        return [text(str(value))]
    return [note(NOT_AVAILABLE)]
