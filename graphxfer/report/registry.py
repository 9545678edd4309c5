"""Report sections: a registry of builders, rendered in registration order."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphxfer.report.context import ReportContext
from graphxfer.report.exceptions import ReportError

__all__ = ["SECTIONS", "Section", "SectionBuilder", "register_section"]

SectionBuilder = Callable[[ReportContext], list[dict[str, Any]]]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Section:
    """A registered section: its name (also its HTML anchor), title and builder."""

    name: str
    title: str
    build: SectionBuilder


SECTIONS: dict[str, Section] = {}
"""The registered sections by name, in the order they appear in a report."""


def register_section(name: str, *, title: str) -> Callable[[SectionBuilder], SectionBuilder]:
    """Register a report section; every report then shows it, after the sections before it.

    The builder takes the :class:`~graphxfer.report.context.ReportContext` and returns a list
    of blocks made with :mod:`graphxfer.report.blocks` (text, notes, facts, tables, images,
    subsections). Every string is escaped when rendered.

    Parameters
    ----------
    name : str
        Lower-case identifier (letters, digits, ``_``, ``-``); registering a name twice is an
        error.
    title : str
        The section heading.

    Examples
    --------
    >>> from graphxfer.report import register_section
    >>> from graphxfer.report.blocks import facts
    >>> @register_section("size_example", title="Size")
    ... def size(ctx):
    ...     return [facts({"records": len(ctx.cohort)})]
    >>> from graphxfer.report.registry import SECTIONS
    >>> _ = SECTIONS.pop("size_example")
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ReportError(
            f"section name {name!r} must be lower-case letters, digits, '_' or '-', starting "
            "with a letter"
        )

    def decorator(build: SectionBuilder) -> SectionBuilder:
        if name in SECTIONS:
            raise ReportError(
                f"report section {name!r} is already registered (by "
                f"{SECTIONS[name].build.__qualname__}); choose another name"
            )
        SECTIONS[name] = Section(name, str(title), build)
        return build

    return decorator
