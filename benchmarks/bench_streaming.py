"""Streaming pretraining from Parquet: peak memory stays flat as the source grows.

A synthetic source (:func:`graphxfer.datasets.make_multisite`) is written to Parquet in
row groups of 65,536 shuffled rows; a fresh process then pretrains an MLP on it with
:func:`graphxfer.distributed.pretrain_stream` (one streaming pass to fit the featurizer and
gather the source summary, then one training epoch) and reports its peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks._common import (
    Section,
    current_rss_mib,
    emit,
    run_child,
    set_threads,
    standalone,
    table,
)

SIZES = {False: [1_000_000, 5_000_000], True: [500_000, 1_000_000]}
ROW_GROUP = 65_536
ENCODER = "mlp"
BATCH = 1024
FLAT_TOLERANCE = 0.15
"""Peak memory at the largest size may exceed that at the smallest by at most this share."""


def write_source(folder: Path, n: int, random_state: int = 0) -> tuple[Path, Path]:
    """Write ``n`` shuffled synthetic records to ``folder/source.parquet`` (+ schema JSON)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from graphxfer.datasets import make_multisite

    cohort = make_multisite(n_sites=3, n_per_site=-(-n // 3), random_state=random_state)
    table_ = pa.Table.from_pandas(cohort.data.iloc[:n], preserve_index=False)
    schema_path = folder / "schema.json"
    schema_path.write_text(json.dumps(cohort.schema.to_dict()))
    del cohort
    order = np.random.default_rng(random_state).permutation(n)
    path = folder / "source.parquet"
    with pq.ParquetWriter(path, table_.schema) as writer:
        for lo in range(0, n, ROW_GROUP):
            writer.write_table(table_.take(order[lo : lo + ROW_GROUP]), row_group_size=ROW_GROUP)
    return path, schema_path


def child(path: str, schema_path: str) -> None:
    set_threads()
    from graphxfer import Schema
    from graphxfer.distributed import pretrain_stream

    schema = Schema.from_dict(json.loads(Path(schema_path).read_text()))
    start_rss = current_rss_mib()
    t = time.perf_counter()
    enc = pretrain_stream(
        path,
        schema,
        ENCODER,
        "masked",
        epochs=1,
        batch_size=BATCH,
        random_state=0,
        device="cpu",
        progress=False,
    )
    total = time.perf_counter() - t
    epoch = enc.history[0]
    emit(
        {
            "records": enc.source_summary["n_rows"],
            "epoch_s": epoch["seconds"],
            "total_s": total,
            "rows_trained": epoch["rows"],
            "records_per_s": epoch["records_per_s"],
            "start_rss_mib": start_rss,
        }
    )


def run(quick: bool) -> Section:
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="graphxfer-bench-"))
    try:
        for n in SIZES[quick]:
            t = time.perf_counter()
            path, schema_path = write_source(folder, n)
            written = time.perf_counter() - t
            r = run_child("benchmarks.bench_streaming", ["--child", str(path), str(schema_path)])
            rows.append(
                {
                    "records": n,
                    "Parquet MiB": path.stat().st_size / 2**20,
                    "write s": written,
                    "featurizer + summary pass s": r["total_s"] - r["epoch_s"],
                    "epoch s": r["epoch_s"],
                    "records/s (epoch)": r["records_per_s"],
                    "peak RSS MiB": r["peak_rss_mib"],
                    "over start MiB": r["peak_rss_mib"] - r["start_rss_mib"],
                }
            )
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    small, large = rows[0], rows[-1]
    growth = large["peak RSS MiB"] / small["peak RSS MiB"] - 1
    flat = growth <= FLAT_TOLERANCE
    section = Section(
        "streaming",
        "Streaming pretraining from Parquet (flat memory)",
        tables=[table(rows)],
        command="python -m benchmarks.bench_streaming" + (" --quick" if quick else ""),
    )
    section.notes.append(
        f"Peak memory at {large['records']:,} records is {growth:+.1%} of that at "
        f"{small['records']:,} records for {large['records'] / small['records']:.0f}× the rows: "
        + (
            "flat, as designed."
            if flat
            else f"NOT flat (more than {FLAT_TOLERANCE:.0%} growth) — investigate."
        )
    )
    section.notes.append(
        f"{ENCODER} encoder, `masked` objective, batch {BATCH}; Parquet row groups of "
        f"{ROW_GROUP:,} rows; `pretrain_stream` defaults otherwise (chunks of 65,536 rows, "
        "a shuffle buffer of 4 chunks, at most 20,000 validation rows). Every chunk is "
        "validated against "
        "the schema (as a `Cohort`) in every pass; the records/s column counts that reading and "
        "featurising too. The writer process (not measured) holds the synthetic cohort while "
        "it writes the file."
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("PARQUET", "SCHEMA"))
    args, rest = parser.parse_known_args()
    if args.child:
        child(*args.child)
    else:
        standalone(run, rest)


if __name__ == "__main__":
    main()
