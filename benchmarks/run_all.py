"""Run every benchmark, print its tables and rewrite ``docs/benchmarks.md`` (``make bench``).

    python -m benchmarks.run_all            # full sizes (100k and 1M rows, 5M-row streaming)
    python -m benchmarks.run_all --quick    # smaller sizes, a few minutes
    python -m benchmarks.run_all --only knn,dp

A benchmark that fails is reported (in the output and in the document) and the others still
run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from benchmarks._common import (
    Section,
    finish,
    machine,
    print_section,
    update_doc_section,
    write_doc,
)

BENCHMARKS = {
    "pretrain": "benchmarks.bench_pretrain",
    "streaming": "benchmarks.bench_streaming",
    "knn": "benchmarks.bench_knn",
    "dp": "benchmarks.bench_dp",
    "explain": "benchmarks.bench_explain",
    "demo": "benchmarks.bench_demo",
    "compare": "benchmarks.bench_compare",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the document")
    # a subset (--only) refreshes its sections and keeps the others' latest figures
    args = parser.parse_args(argv)
    chosen = list(BENCHMARKS) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [c for c in chosen if c not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    mode = "quick" if args.quick else "full"
    info = machine()
    print(f"graphxfer benchmarks ({mode}) on {info['cpu']}, {info['cores']} cores, "
          f"{info['ram_gib']} GiB, torch {info['torch']}; load {info['load_average']}")  # fmt: skip
    sections: list[Section] = []
    failed = []
    start_all = time.perf_counter()
    for key in chosen:
        start = time.perf_counter()
        try:
            section = importlib.import_module(BENCHMARKS[key]).run(args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(key)
            section = Section(key, f"{key}: FAILED", notes=[f"The benchmark failed: `{exc!r}`"])
        finish(section, start, args.quick)
        sections.append(section)
        print_section(section)
        print(f"({key}: {section.seconds:.0f} s)", flush=True)
    if not args.no_doc:
        if args.only:
            for section in sections:
                path = update_doc_section(section, info)
        else:
            path = write_doc(sections, info)
        print(f"\nwrote {path} ({mode} mode, {time.perf_counter() - start_all:.0f} s in all)")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
