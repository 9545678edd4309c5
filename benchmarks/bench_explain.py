"""Explanations of a transfer model: 1,000 predictions over the 13 heart-disease columns.

The model is a :class:`graphxfer.TransferClassifier` over an FT-transformer encoder pretrained
on the bundled heart-disease source sites and fine-tuned on a target site (as in the demo).
Measured, with the library's defaults:

- ``permutation`` and ``gradient`` on 1,000 records, once per thread setting (one thread, and
  every core): wall time and the network rows run per record;
- the precision of the default split background: the attributions of the first records
  against the all-rows estimate (``summary="none"``, the 100-row background for every
  permutation) with the same permutations, and the all-rows estimate against itself with
  other permutations (the permutation sampling's own spread);
- the previous path, in the same run: shap's ``PermutationExplainer`` calling
  ``predict_proba`` for every permutation over all 100 background rows (a probe of records),
  and expected gradients without merging identical records.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from typing import Any

import numpy as np

from benchmarks._common import Goal, Section, emit, run_child, set_threads, standalone, table

N_EXPLAIN = 1000
N_REFERENCE = 100
"""Records explained with all background rows for every permutation (ten times the cost)."""
N_OLD = 25
"""Records explained through the previous path (shap over predict_proba)."""
REPEATS = 3
"""The gradient explainer (seconds) is timed this many times; the fastest counts."""
GOALS = {"permutation": 30.0, "gradient": 5.0}
TOLERANCE = 0.05
"""Stated tolerance of the default split background on this model: mean absolute difference
from the all-rows attributions, relative to the mean absolute attribution."""


def _build(quick: bool) -> tuple[Any, Any]:
    from graphxfer import TransferClassifier, datasets, pretrain

    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    enc = pretrain(source, "ft-transformer", "supervised", epochs=5 if quick else 20,
                   random_state=0, device="cpu", progress=False)  # fmt: skip
    clf = TransferClassifier(enc, strategy="lp-ft", epochs=10, random_state=0, device="cpu")
    clf.fit(target)
    n = 100 if quick else N_EXPLAIN
    data = heart.X.sample(n, replace=True, random_state=0).reset_index(drop=True)
    return clf, data[list(clf.feature_names_in_)]


class _RowCounter:
    """Counts the network rows the fast path runs (wraps ``TorchRows.proba``)."""

    def __init__(self) -> None:
        from graphxfer.explain._rows import TorchRows

        self.rows = 0
        self._inner = TorchRows.proba
        counter = self

        def proba(self: Any, records: Any, rows: Any, take: Any) -> Any:
            counter.rows += len(records)
            return counter._inner(self, records, rows, take)

        TorchRows.proba = proba  # type: ignore[method-assign]


class _CountedFunction:
    """The previous path's model function (``predict_proba`` on decoded rows), counting rows."""

    def __init__(self, model: Any, codec: Any, link: str) -> None:
        from graphxfer.explain._model import ModelFunction

        self.function = ModelFunction(model, codec, link)
        self.rows = 0

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        self.rows += len(matrix)
        return self.function(matrix)


def _explain(model: Any, data: Any, method: str, **kwargs: Any) -> tuple[Any, Any, float]:
    from graphxfer.explain.explain import explain_details

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        ex, info = explain_details(model, data, method=method, progress=False, **kwargs)
        return ex, info, time.perf_counter() - start


def _gap(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    importance, expected = np.abs(values).mean(axis=0), np.abs(reference).mean(axis=0)
    return {
        "relative gap": float(np.abs(values - reference).mean() / np.abs(reference).mean()),
        "importance gap": float(np.abs(importance - expected).sum() / expected.sum()),
        "importance rank correlation": float(spearmanr(importance, expected)[0]),
    }


def child(quick: bool, compare: bool) -> None:
    threads = set_threads()
    clf, data = _build(quick)
    counter = _RowCounter()
    distinct = len(data.drop_duplicates())
    out: dict[str, Any] = {"threads": threads, "n": len(data), "distinct": distinct,
                           "load": [os.getloadavg()[0]]}  # fmt: skip
    _explain(clf, data.iloc[:5], "permutation", random_state=0)  # warm-up
    counter.rows = 0
    default, info, seconds = _explain(clf, data, "permutation", random_state=0)
    out["permutation"] = {"seconds": seconds, "rows": counter.rows, "summary": info.summary,
                          "n_background": info.n_background}  # fmt: skip
    times = [_explain(clf, data, "gradient", random_state=0)[1:] for _ in range(REPEATS)]
    info = times[0][0]
    out["gradient"] = {"seconds": min(t for _, t in times), "n_background": info.n_background}
    if compare:
        out.update(_compare(clf, data, default.values, counter, quick))
    out["load"].append(os.getloadavg()[0])
    emit(out)


def _compare(clf: Any, data: Any, values: np.ndarray, counter: _RowCounter, quick: bool) -> dict:
    """Precision of the default against all rows, and the previous path's speed."""
    import shap
    import torch

    from graphxfer.explain._codec import FeatureCodec, model_columns
    from graphxfer.explain._torch import expected_gradients, torch_parts

    first = ~data.duplicated().to_numpy()  # the first copy of each distinct record
    rows = np.flatnonzero(first)[: 20 if quick else N_REFERENCE]
    probe = data.iloc[rows]
    counter.rows = 0
    every, _, seconds = _explain(clf, probe, "permutation", summary="none", random_state=0)
    reference = {"seconds": seconds, "rows": counter.rows, "records": len(rows)}
    other, _, _ = _explain(clf, probe, "permutation", summary="none", random_state=1)
    precision = {
        "split": _gap(values[rows], every.values),
        "other permutations": _gap(other.values, every.values),
    }

    # the previous path: shap's PermutationExplainer over predict_proba, all 100 rows each time
    frame = clf.transform_features(data)
    background = clf.background_
    codec = FeatureCodec.build(model_columns(clf, frame), [frame, background])
    masker = shap.maskers.Independent(codec.encode(background), max_samples=len(background))
    counted = _CountedFunction(clf, codec, "identity")
    explainer = shap.explainers.Permutation(counted, masker, seed=0)
    evals = 10 * (2 * codec.n_features + 1)
    matrix = codec.encode(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer(matrix[:1], max_evals=evals, silent=True)  # numba compiles on first use
        n_old = 5 if quick else N_OLD
        counted.rows = 0
        start = time.perf_counter()
        explainer(matrix[:n_old], max_evals=evals, silent=True)
        old_seconds = time.perf_counter() - start
    old = {"records": n_old, "seconds": old_seconds, "rows": counted.rows}

    # expected gradients as before: every record, identical ones included
    parts = torch_parts(clf, list(codec.names), [])
    head = parts.head("identity", torch.float32)
    old_gradient = np.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        expected_gradients(
            head, parts.tensor(background, torch.float32), parts.tensor(frame, torch.float32),
            samples=100, seed=0,
        )  # fmt: skip
        old_gradient = min(old_gradient, time.perf_counter() - start)
    return {"reference": reference, "precision": precision, "old": old,
            "old_gradient": old_gradient}  # fmt: skip


def run(quick: bool) -> Section:
    cores = os.cpu_count() or 1
    settings = [1] + ([cores] if cores > 1 else [])
    args = ["--child"] + (["--quick"] if quick else [])
    results = []
    for threads in settings:
        extra = ["--compare"] if threads == settings[0] else []
        env = {"BENCH_THREADS": str(threads)}
        results.append(run_child("benchmarks.bench_explain", args + extra, env=env))
    first = results[0]
    n, distinct = first["n"], first["distinct"]
    rows, best = [], {}
    for r in results:
        for method in ("permutation", "gradient"):
            m = r[method]
            best[method] = min(best.get(method, np.inf), m["seconds"] * N_EXPLAIN / n)
            rows.append({
                "explainer": method, "threads": r["threads"], "records": n,
                "distinct records": distinct, "background rows": m["n_background"],
                "network rows per distinct record": m["rows"] / distinct if "rows" in m else None,
                "seconds": m["seconds"], f"seconds per {N_EXPLAIN:,}": m["seconds"] * N_EXPLAIN / n,
            })  # fmt: skip
    ref, old, precision = first["reference"], first["old"], first["precision"]
    new_per_record = first["permutation"]["seconds"] / n
    old_per_record = old["seconds"] / old["records"]
    speed = [
        {"path": "previous: shap PermutationExplainer over predict_proba, all 100 rows per "
                 "permutation", "records": old["records"], "seconds": old["seconds"],
         "seconds per record": old_per_record,
         "network rows per record": old["rows"] / old["records"]},
        {"path": "all 100 rows per permutation, fast path (`summary=\"none\"`)",
         "records": ref["records"], "seconds": ref["seconds"],
         "seconds per record": ref["seconds"] / ref["records"],
         "network rows per record": ref["rows"] / ref["records"]},
        {"path": "default: split background, fast path", "records": n,
         "seconds": first["permutation"]["seconds"], "seconds per record": new_per_record,
         "network rows per record": first["permutation"]["rows"] / n},
    ]  # fmt: skip
    gaps = [
        {"compared with the all-rows estimate (same permutations)": name, **values}
        for name, values in precision.items()
    ]
    split_gap = precision["split"]["relative gap"]
    noise = precision["other permutations"]["relative gap"]
    section = Section(
        "explain",
        "Explanations of a transfer model",
        tables=[table(rows), table(speed), table(gaps)],
        command="python -m benchmarks.bench_explain" + (" --quick" if quick else ""),
    )
    section.goals = [
        Goal(f"{m} explainer, {N_EXPLAIN:,} predictions, 13 features", g, best.get(m), "s", True)
        for m, g in GOALS.items()
    ] + [
        Goal("split background: attribution gap to all rows", TOLERANCE, split_gap, "", True),
        Goal("split gap / gap between all-rows runs with other permutations", 1.0,
             split_gap / noise if noise > 0 else None, "×", True),
    ]  # fmt: skip
    section.notes += [
        f"Model: TransferClassifier (`lp-ft`) over an FT-transformer pretrained on the "
        f"Cleveland and Hungarian sites, fine-tuned on VA. The {n:,} records are drawn with "
        f"replacement from the 920 heart-disease records ({distinct} distinct); identical "
        "records get identical explanations and are computed once. The library's defaults "
        f"throughout: 100 background rows drawn from the source marginals, the permutation "
        "budget 10 × (2 × 13 + 1) = 270 coalitions per record, 100 gradient samples per "
        "record. The goals take the faster thread setting; timings include translating the "
        "records, the checks and the additivity guard. Load average (1 min) at the start and "
        "end of each measuring process: "
        + "; ".join(
            f"{r['threads']} thread(s): {r['load'][0]:.1f} and {r['load'][1]:.1f}" for r in results
        )
        + " on "
        + f"{cores} cores: other jobs shared the machine.",
        f'Permutation, default (`summary="split"`, {first["permutation"]["summary"]}): '
        "the records and background rows are translated into the network's column tokens "
        "once (validation, featurizer, `column_inputs`); a masked row takes each column's "
        "token from the record or the background row, and the fine-tuned network runs on "
        "4,096 such rows at a time under `torch.inference_mode`. A step that leaves the "
        "masked row unchanged, the rows shared by every permutation and identical rows of "
        "different records are run once. Each permutation masks with its own 10 of the 100 "
        "rows, so every row is used once: the cost of one permutation over all rows.",
        f"Against the previous path in this run: {old_per_record / new_per_record:,.0f}× "
        f"faster per record ({old_per_record:.2f} s against {new_per_record * 1000:.1f} ms "
        f"on one thread); the all-rows estimate on the fast path is "
        f"{old_per_record / (ref['seconds'] / ref['records']):,.0f}× faster than the "
        "previous path, and the split a further "
        f"{(ref['seconds'] / ref['records']) / new_per_record:.1f}× (network rows: "
        f"{ref['rows'] / ref['records']:,.0f} and {first['permutation']['rows'] / n:,.0f} "
        f"per record, against {old['rows'] / old['records']:,.0f}).",
        f"Precision (on the first {ref['records']} distinct records): the split's "
        f"attributions differ from the all-rows estimate with the same permutations by "
        f"{split_gap:.1%} of the mean absolute attribution (stated tolerance: at most "
        f"{TOLERANCE:.0%}, and no more than the permutation sampling itself, whose all-rows "
        f"estimates with other permutations differ by {noise:.1%}); global importance "
        f"(mean |attribution| per column) moves by {precision['split']['importance gap']:.1%} "
        f"with rank correlation {precision['split']['importance rank correlation']:.3f}.",
        f"Gradient: expected gradients, 100 balanced samples per record through the same "
        f"per-column path; identical records once (fastest of {REPEATS} runs). Computing "
        f"every record as before took {first['old_gradient']:.2f} s on one thread in this "
        "run. Gradient uses the 100 rows themselves (its cost does not grow with them), so "
        "its attributions are the all-rows ones.",
    ]
    fastest = min(results, key=lambda r: r["permutation"]["seconds"])
    perm = fastest["permutation"]
    if perm["seconds"] * N_EXPLAIN / n > GOALS["permutation"]:
        rate = perm["rows"] / perm["seconds"]
        needed = perm["rows"] * N_EXPLAIN / n / GOALS["permutation"]
        section.notes.append(
            f"Why the permutation goal is missed here: the fine-tuned network ran "
            f"{rate:,.0f} masked rows per second ({fastest['threads']} thread(s)); "
            f"{N_EXPLAIN:,} records in {GOALS['permutation']:.0f} s need {needed:,.0f} "
            f"({needed / rate:.1f}× more). Nearly all the time is the network's forward pass "
            "(two attention layers over 14 tokens per row), which no explainer setting "
            "removes; the previous path ran "
            f"{old_per_record:.2f} s per record in this run, so the speed-up, not the "
            "absolute time, is what carries over from a busier or slower machine."
        )
    grad = min(r["gradient"]["seconds"] for r in results)
    if grad * N_EXPLAIN / n > GOALS["gradient"]:
        rows_done = distinct * 100
        needed = rows_done * N_EXPLAIN / n / GOALS["gradient"]
        section.notes.append(
            f"Why the gradient goal is missed here: {rows_done:,} forward-and-backward rows "
            f"(100 samples for each of {distinct} distinct records) in {grad:.2f} s, "
            f"{rows_done / grad:,.0f} rows per second; the goal needs {needed:,.0f} "
            f"({needed * grad / rows_done:.1f}× more). Fewer samples (`max_evals`) trade "
            "precision for time."
        )
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare", action="store_true")
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.quick, args.compare)
    else:
        standalone(run, rest + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
