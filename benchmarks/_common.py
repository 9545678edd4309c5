"""Shared benchmark plumbing: the machine, child processes with their peak memory, tables,
goals, and the sections of ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
_RESULT = "BENCH-RESULT "


# ---------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    """CPU model, cores, memory, load and library versions of this machine."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_mem_total_kib() / 2**20, 1),
        "load_average": _load(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bench_threads": os.environ.get("BENCH_THREADS", "1"),
    }
    for name in ("numpy", "pandas", "pyarrow", "opacus", "shap", "xgboost", "pynndescent"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    names = re.findall(r"^model name\s*:\s*(.+)$", text, flags=re.M)
    family = re.findall(r"^cpu family\s*:\s*(\d+)$", text, flags=re.M)
    flags = re.findall(r"^flags\s*:\s*(.+)$", text, flags=re.M)
    name = names[0].strip() if names else "unknown"
    extra = []
    if family:
        extra.append(f"family {family[0]}")
    if flags and "avx512f" in flags[0].split():
        extra.append("AVX-512")
    elif flags and "avx2" in flags[0].split():
        extra.append("AVX2")
    return f"{name} ({', '.join(extra)})" if extra else name


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# ---------------------------------------------------------------------- child processes
def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB.

    Linux's ``VmHWM`` (high-water mark of this address space). Not ``getrusage``'s
    ``ru_maxrss``: Linux carries the parent's high-water mark across ``fork`` + ``exec``, so a
    child started by a large parent would report the parent's memory as its own peak.
    """
    value = _status_kib("VmHWM:")
    if value is not None:
        return value / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # other systems
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def current_rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    value = _status_kib("VmRSS:")
    return value / 1024 if value is not None else float("nan")


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def emit(result: dict[str, Any]) -> None:
    """Print a child's result (its last line) for :func:`run_child`."""
    result.setdefault("peak_rss_mib", peak_rss_mib())
    print(_RESULT + json.dumps(result), flush=True)


def run_child(
    module: str, args: Sequence[str], *, timeout: float = 3600, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; its :func:`emit` result.

    A fresh process per measurement keeps peak memory honest: nothing allocated by one
    measurement lingers in the next.
    """
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - start
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_RESULT)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"benchmark child {module} {' '.join(args)} failed:\n{tail}")
    result = json.loads(lines[-1][len(_RESULT) :])
    result["child_wall_s"] = wall
    return result


def set_threads() -> int:
    """Intra-op threads of torch: ``BENCH_THREADS`` (default 1).

    On a machine shared with other jobs, OpenMP threads that outnumber the free cores spin
    at every barrier and slow small-matrix training by an order of magnitude; one thread per
    process is the robust choice there. Set ``BENCH_THREADS`` to the core count on a machine
    of your own.
    """
    import torch

    n = int(os.environ.get("BENCH_THREADS", "1"))
    torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------------- results
@dataclass
class Goal:
    """A target figure: ``measured <= goal`` (``lower_is_better``) or ``measured >= goal``."""

    name: str
    goal: float
    measured: float | None
    unit: str
    lower_is_better: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """measured / goal."""
        if self.measured is None or self.goal == 0:
            return None
        return self.measured / self.goal

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.lower_is_better:
            return self.measured <= self.goal
        return self.measured >= self.goal

    def verdict(self) -> str:
        if self.measured is None:
            return "not measured"
        if self.met:
            return "met"
        r = self.ratio or 0.0
        if self.lower_is_better:
            return f"missed: {r:.2f}x the goal"
        return f"missed: {r:.0%} of the goal ({1 / r:.1f}x short)" if r > 0 else "missed"


@dataclass
class Section:
    """One benchmark's results: a title, tables (markdown), goals and notes."""

    key: str
    title: str
    tables: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""
    seconds: float = 0.0
    mode: str = ""
    finished: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Section:
        data = dict(data)
        data["goals"] = [Goal(**g) for g in data.get("goals", [])]
        return cls(**data)

    def markdown(self) -> str:
        out = [f"<!-- bench:{self.key} -->", f"## {self.title}", ""]
        if self.command:
            out += [
                f"Command: `{self.command}` ({self.mode or 'full'} mode, {self.seconds:.0f} s, "
                f"finished {self.finished or 'n/a'}).",
                "",
            ]
        for table in self.tables:
            out += [table, ""]
        if self.goals:
            out += [goal_table(self.goals), ""]
        for note in self.notes:
            out += [note, ""]
        out.append(f"<!-- /bench:{self.key} -->")
        return "\n".join(out)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table of ``rows`` (dicts), numbers formatted for reading."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def goal_table(goals: Sequence[Goal]) -> str:
    rows = []
    for g in goals:
        rows.append(
            {
                "goal": g.name,
                "target": f"{'≤' if g.lower_is_better else '≥'} {_fmt(g.goal)} {g.unit}",
                "measured": f"{_fmt(g.measured)} {g.unit}" if g.measured is not None else "–",
                "ratio (measured / goal)": _fmt(g.ratio),
                "verdict": g.verdict(),
            }
        )
    return table(rows)


def print_section(section: Section) -> None:
    print(f"\n=== {section.title} ===")
    for t in section.tables:
        print(t)
        print()
    if section.goals:
        print(goal_table(section.goals))
    for note in section.notes:
        print(note)
    sys.stdout.flush()


# ---------------------------------------------------------------------- docs/benchmarks.md
_HEADER = """# Benchmarks

Figures measured by `make bench` (`python -m benchmarks.run_all`); every number below is
written by the benchmark code from its own measurements. Rerun to refresh them; a single
benchmark (e.g. `python -m benchmarks.bench_knn`) refreshes its own section only.
Peak memory is the peak resident set size (Linux `VmHWM`) of a fresh child process per
measurement, so it includes the Python interpreter and the imported libraries (torch among
them); *over start* subtracts the process's resident memory just before the measured work.
"""


RESULTS = ROOT / "benchmarks" / "results.json"
"""The latest sections and machine description, from which the document is rebuilt."""


def machine_markdown(info: dict[str, Any], modes: Sequence[str]) -> str:
    kinds = sorted(set(modes))
    mode = kinds[0] if len(kinds) == 1 else "mixed (" + ", ".join(kinds) + "; see each section)"
    lines = [
        "<!-- bench:machine -->",
        "## Machine and run",
        "",
        f"- Mode: **{mode}**",
        f"- CPU: {info['cpu']}, {info['cores']} cores; RAM {info['ram_gib']} GiB; "
        f"GPU: {info['cuda'] or 'none'}",
        f"- Load average when the run started (1, 5, 15 min): {info['load_average']} — other "
        "jobs shared this machine, so timings are lower bounds of what it can do alone",
        f"- Python {info['python']}, {info['os']}; torch {info['torch']}, "
        f"{info.get('bench_threads', '1')} intra-op thread(s) per measuring process "
        "(`BENCH_THREADS`; one is robust on a shared machine, where surplus OpenMP threads "
        "spin at every barrier; the demo section runs both ways)",
        "- "
        + ", ".join(
            f"{k} {info[k]}"
            for k in ("numpy", "pandas", "pyarrow", "opacus", "shap", "xgboost", "pynndescent")
            if info.get(k)
        ),
        "<!-- /bench:machine -->",
    ]
    return "\n".join(lines)


def write_doc(sections: Sequence[Section], info: dict[str, Any]) -> Path:
    """Rewrite ``docs/benchmarks.md`` (and ``benchmarks/results.json``) from ``sections``."""
    goals = [g for s in sections for g in s.goals]
    parts = [_HEADER, machine_markdown(info, [s.mode for s in sections]), ""]
    if goals:
        parts += [
            "<!-- bench:goals -->",
            "## Goals at a glance",
            "",
            goal_table(goals),
            "<!-- /bench:goals -->",
            "",
        ]
    parts += [s.markdown() + "\n" for s in sections]
    DOC.write_text("\n".join(parts))
    RESULTS.write_text(
        json.dumps({"machine": info, "sections": [s.to_dict() for s in sections]}, indent=1) + "\n"
    )
    return DOC


def update_doc_section(section: Section, info: dict[str, Any]) -> Path:
    """Replace one section of the latest results and rebuild ``docs/benchmarks.md``.

    The other sections keep their figures (each says its mode and when it finished); the
    machine description is this run's.
    """
    sections: list[Section] = []
    if RESULTS.exists():
        stored = json.loads(RESULTS.read_text())
        sections = [Section.from_dict(s) for s in stored.get("sections", [])]
    keys = [s.key for s in sections]
    if section.key in keys:
        sections[keys.index(section.key)] = section
    else:
        sections.append(section)
    return write_doc(sections, info)


def standalone(run: Callable[[bool], Section], argv: Sequence[str] | None = None) -> None:
    """``python -m benchmarks.bench_x [--quick]``: run, print, refresh its doc section."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    info = machine()
    start = time.perf_counter()
    section = run(args.quick)
    finish(section, start, args.quick)
    print_section(section)
    if not args.no_doc:
        update_doc_section(section, info)


def finish(section: Section, start: float, quick: bool) -> Section:
    """Stamp ``section`` with its duration, mode and finishing time."""
    section.seconds = time.perf_counter() - start
    section.mode = "quick" if quick else "full"
    section.finished = time.strftime("%Y-%m-%d %H:%M %Z")
    return section
