"""The building blocks of a report section: text, notes, facts, tables, images, subsections.

A section builder returns a list of these blocks; the template renders each kind, escaping
every string. Blocks are plain dicts so that user-defined sections need nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["facts", "fmt", "image", "note", "subsection", "table", "text", "warning"]

Block = dict[str, Any]


def text(content: str) -> Block:
    """A paragraph."""
    return {"kind": "text", "text": str(content)}


def note(content: str) -> Block:
    """A muted remark, e.g. that a part of the model card is not available."""
    return {"kind": "note", "text": str(content)}


def warning(content: str) -> Block:
    """A warning the reader must not miss (shown highlighted, announced to screen readers)."""
    return {"kind": "warning", "text": str(content)}


def facts(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Block:
    """A two-column list of labelled values (values are formatted with :func:`fmt`)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return {"kind": "facts", "items": [(str(k), fmt(v)) for k, v in items]}


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> Block:
    """A table; cells are formatted with :func:`fmt`."""
    return {
        "kind": "table",
        "columns": [str(c) for c in columns],
        "rows": [[fmt(v) for v in row] for row in rows],
        "caption": caption,
    }


def image(data_uri: str, alt: str, *, caption: str | None = None) -> Block:
    """An embedded image; ``data_uri`` must be a ``data:image/png;base64,...`` URI."""
    if not data_uri.startswith("data:image/png;base64,"):
        raise ValueError("report images must be embedded PNG data URIs")
    return {"kind": "image", "src": data_uri, "alt": str(alt), "caption": caption}


def subsection(
    title: str, blocks: Sequence[Block], *, badge: str | None = None, anchor: str | None = None
) -> Block:
    """A titled group of blocks, with an optional short badge next to the title and an
    optional HTML anchor (``id``) to link to it."""
    return {
        "kind": "subsection",
        "title": str(title),
        "blocks": list(blocks),
        "badge": badge,
        "anchor": None if anchor is None else str(anchor),
    }


def fmt(value: Any) -> str:
    """A short human-readable form of a value: 4 significant digits, "—" for missing."""
    if value is None:
        return "—"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) if value else "—"
    if isinstance(value, Mapping):
        return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return str(value)
