"""k-nearest-neighbour graph over source records: time and peak memory at 100k and 1M records.

The graph is built the way :func:`graphxfer.graphs.pretrain_graph` builds it: featurizer ->
dense features -> :func:`graphxfer.graphs.build_knn_graph` (``method="auto"``: exact blockwise
search up to ~15,800 records, NN-descent above), k = 10.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._common import (
    Goal,
    Section,
    current_rss_mib,
    emit,
    run_child,
    set_threads,
    standalone,
    table,
)

SIZES = {False: [100_000, 1_000_000], True: [20_000, 100_000]}
K = 10
GOAL_SECONDS = 300.0
GOAL_GIB = 4.0


def child(n: int) -> None:
    set_threads()
    from graphxfer.datasets import make_multisite
    from graphxfer.graphs import DenseFeatures, build_knn_graph
    from tabular import Featurizer

    cohort = make_multisite(n_sites=3, n_per_site=n // 3 + (n % 3 > 0), random_state=0)
    X = cohort.X.iloc[:n]
    fz = Featurizer().fit(X, cohort.schema.features)
    batch = fz.transform(X)
    dense = DenseFeatures().fit(
        batch, numeric_names=fz.numeric_columns_, categorical_names=fz.categorical_columns_
    )
    x = dense.transform(batch)
    del cohort, X, batch
    start_rss = current_rss_mib()
    t = time.perf_counter()
    edge_index = build_knn_graph(x, k=K, method="auto", random_state=0)
    seconds = time.perf_counter() - t
    emit(
        {
            "records": n,
            "dims": int(x.shape[1]),
            "edges": int(edge_index.shape[1]),
            "method": "exact" if n * n <= 250_000_000 else "nndescent",
            "seconds": seconds,
            "start_rss_mib": start_rss,
        }
    )


def run(quick: bool) -> Section:
    rows = []
    for n in SIZES[quick]:
        r = run_child("benchmarks.bench_knn", ["--child", str(n)])
        rows.append(
            {
                "records": r["records"],
                "dense dims": r["dims"],
                "search": r["method"],
                "build s": r["seconds"],
                "records/s": r["records"] / r["seconds"],
                "peak RSS MiB": r["peak_rss_mib"],
                "over start MiB": r["peak_rss_mib"] - r["start_rss_mib"],
            }
        )
    largest = rows[-1]
    section = Section(
        "knn",
        f"kNN graph build (k = {K})",
        tables=[table(rows)],
        command="python -m benchmarks.bench_knn" + (" --quick" if quick else ""),
    )
    label = f"{largest['records']:,} records"
    section.goals = [
        Goal(f"kNN graph over {label}: time", GOAL_SECONDS, largest["build s"], "s", True),
        Goal(
            f"kNN graph over {label}: peak memory",
            GOAL_GIB,
            largest["peak RSS MiB"] / 1024,
            "GiB",
            True,
        ),
    ]
    if quick:
        section.notes.append(
            "Quick mode: the goals are stated for 1M records; the largest size here is smaller."
        )
    section.notes.append(
        "Each size runs in a fresh process, so its time includes compiling NN-descent's numba "
        "kernels on first use, as a first pretraining run would. Peak memory is that of the "
        "whole process (source features, the index built with max(3k, 30) neighbours per "
        "record, the graph)."
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", type=int)
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.child)
    else:
        standalone(run, rest)


if __name__ == "__main__":
    main()
