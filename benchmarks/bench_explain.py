"""Explanations per second per explainer: 1,000 predictions over the 13 heart-disease columns.

The permutation explainer runs on a fitted :class:`graphxfer.TransferClassifier` (FT-transformer
encoder, as in the demo). The gradient-based explainers (``gradient``, ``deep``) need a model
that exposes its differentiable path (``torch_explain_parts()``); when the transfer model
does not, they run on a small one-hot MLP over the same columns that does, and the table
says which model each row used.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

from benchmarks._common import Goal, Section, emit, run_child, set_threads, standalone, table
from graphxfer.explain._methods import DEFAULT_GRADIENT_SAMPLES

N_EXPLAIN = 1000
PROBE = 100
TIME_CAP = 300.0
"""An explainer whose probe projects more than this for all records is timed on the probe."""
GOALS = {"permutation": 30.0, "gradient": 5.0}


class OneHotMLP:
    """A torch MLP over standardised numbers and one-hot categories (differentiable path)."""

    def __init__(self, cohort: Any, *, epochs: int = 200, seed: int = 0) -> None:
        import torch

        from graphxfer import Schema

        self.feature_schema_ = Schema(cohort.schema.features)
        X = cohort.X
        self.stats_: dict[str, tuple[float, float]] = {}
        self.groups_: dict[str, list[int]] = {}
        width = 0
        for col in self.feature_schema_.features:
            if col.kind in ("categorical", "ordinal", "binary"):
                k = len(col.vocabulary or ["0", "1"])
            else:
                self.stats_[col.name] = (float(X[col.name].mean()), float(X[col.name].std()) or 1.0)
                k = 1
            self.groups_[col.name] = list(range(width, width + k))
            width += k
        gen = torch.Generator().manual_seed(seed)
        self.module_ = torch.nn.Sequential(
            torch.nn.Linear(width, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )
        for p in self.module_.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        x, y = self.encode(X), torch.as_tensor(cohort.y, dtype=torch.float32)
        opt = torch.optim.Adam(self.module_.parameters(), lr=1e-2)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.module_(x).reshape(-1), y
            )
            loss.backward()
            opt.step()
        self.background_ = X.sample(100, random_state=seed)

    def encode(self, X: Any) -> Any:
        import numpy as np
        import torch

        parts = []
        for col in self.feature_schema_.features:
            values = X[col.name]
            if col.name in self.stats_:
                mean, sd = self.stats_[col.name]
                parts.append(((values.astype(float) - mean) / sd).fillna(0.0).to_numpy()[:, None])
            else:
                vocab = [str(v) for v in (col.vocabulary or ["0", "1"])]
                labels = values.map(
                    lambda v: None if v != v else str(int(v)) if isinstance(v, float) else str(v)
                )
                parts.append(np.stack([(labels == v).to_numpy(float) for v in vocab], axis=1))
        return torch.as_tensor(np.concatenate(parts, axis=1), dtype=torch.float32)

    def predict_proba(self, X: Any) -> Any:
        import numpy as np
        import torch

        with torch.no_grad():
            p = torch.sigmoid(self.module_(self.encode(X)).reshape(-1)).detach().cpu().numpy()
        return np.stack([1 - p, p], axis=1)

    def torch_explain_parts(self) -> dict[str, Any]:
        return {"module": self.module_, "encode": self.encode, "groups": self.groups_}


def child(quick: bool) -> None:
    set_threads()
    from graphxfer import TransferClassifier, datasets, pretrain
    from graphxfer.explain import ExplanationError

    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    enc = pretrain(source, "ft-transformer", "supervised", epochs=5 if quick else 20,
                   random_state=0, device="cpu", progress=False)  # fmt: skip
    clf = TransferClassifier(enc, strategy="lp-ft", epochs=10, random_state=0, device="cpu")
    clf.fit(target)
    n = 100 if quick else N_EXPLAIN
    probe = 25 if quick else PROBE
    data = heart.X.sample(n, replace=True, random_state=0).reset_index(drop=True)
    data = data[list(clf.feature_names_in_)]
    mlp = OneHotMLP(target)
    models = {
        "TransferClassifier (FT-transformer)": clf,
        "one-hot MLP (differentiable stand-in)": mlp,
    }
    rows: list[dict[str, Any]] = []
    for method in ("permutation", "gradient", "deep"):
        for label, model in models.items():
            if method == "permutation" and model is mlp:
                continue
            try:
                # a probe first; all records only when that projects within the time cap
                seconds, info = _timed(model, data.iloc[:probe], method)
                k = probe
                if seconds * n / probe <= TIME_CAP:
                    seconds, info = _timed(model, data, method)
                    k = n
            except ExplanationError as exc:
                reason = str(exc).split(";")[0]
                rows.append({"method": method, "model": label, "error": reason})
                continue
            rows.append(
                {"method": method, "model": label, "records": k, "features": info["features"],
                 "seconds": seconds, "n_background": info["n_background"]}
            )  # fmt: skip
    # the transfer model's own forward rate: what the permutation explainer multiplies
    rows_x = data.sample(27_000 if not quick else 2_700, replace=True, random_state=1)
    clf.predict_proba(rows_x.iloc[:100])
    t = time.perf_counter()
    clf.predict_proba(rows_x)
    forward = len(rows_x) / (time.perf_counter() - t)
    emit({"rows": rows, "n": n, "probe": probe, "forward_rows_per_s": forward})


def _timed(model: Any, data: Any, method: str) -> tuple[float, dict[str, int]]:
    from graphxfer.explain.explain import explain_details

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        ex, info = explain_details(model, data, method=method, random_state=0, progress=False)
        seconds = time.perf_counter() - t
    return seconds, {"features": int(ex.values.shape[1]), "n_background": info.n_background}


def run(quick: bool) -> Section:
    r = run_child("benchmarks.bench_explain", ["--child"] + (["--quick"] if quick else []))
    rows, notes = [], []
    per_1000: dict[str, float] = {}
    product = "TransferClassifier (FT-transformer)"
    for row in r["rows"]:
        if "error" in row:
            notes.append(f"`{row['method']}` on {row['model']}: not available — {row['error']}")
            continue
        scaled = row["seconds"] * N_EXPLAIN / row["records"]
        if row["model"] == product or row["method"] not in per_1000:
            per_1000[row["method"]] = scaled  # the transfer model when it can be explained
        rows.append(
            {
                "explainer": row["method"],
                "model": row["model"],
                "records": row["records"],
                "features": row["features"],
                "background rows": row["n_background"],
                "seconds": row["seconds"],
                "explanations/s": row["records"] / row["seconds"],
                f"seconds per {N_EXPLAIN:,}": scaled,
            }
        )
    perm = next((x for x in r["rows"] if x["method"] == "permutation" and "error" not in x), None)
    section = Section(
        "explain",
        "Explanations per second",
        tables=[table(rows)],
        command="python -m benchmarks.bench_explain" + (" --quick" if quick else ""),
    )
    section.goals = [
        Goal(
            f"{m} explainer, {N_EXPLAIN:,} predictions, 13 features", g, per_1000.get(m), "s", True
        )
        for m, g in GOALS.items()
    ]
    if perm is not None:
        evals = 10 * (2 * perm["features"] + 1)
        notes.append(
            f"Permutation: shap's `PermutationExplainer` with the default budget of "
            f"10 × (2 × {perm['features']} + 1) = {evals} model evaluations per record, each "
            f"over all {perm['n_background']} background rows (drawn from the source "
            f"marginals): {evals * perm['n_background']:,} forward rows of the model per "
            "explained record, so the time follows the model's forward cost (high for the "
            "FT-transformer transfer model); the tree explainer (XGBoost) and the gradient "
            "methods avoid that multiplication."
        )
        forward = r.get("forward_rows_per_s")
        if forward:
            needed = evals * perm["n_background"] * N_EXPLAIN / GOALS["permutation"]
            notes.append(
                f"Why the permutation goal is out of reach for this model: {N_EXPLAIN:,} "
                f"records in {GOALS['permutation']:.0f} s need {needed:,.0f} forward rows per "
                f"second; `predict_proba` of the transfer model runs {forward:,.0f} rows per "
                f"second here ({needed / forward:.0f}× short) before any explainer overhead. "
                "A smaller background (`n_background`) or budget (`max_evals`) divides the "
                "time, at the cost of precision."
            )
    notes.append(
        f"Gradient: expected gradients, {DEFAULT_GRADIENT_SAMPLES} balanced samples per record "
        "(one forward and backward row "
        "each), computed for many records per pass (8,192 points at a time); deep: DeepLIFT "
        "against the background rows. The goals use the transfer model "
        "where it can be explained and the stand-in otherwise. "
        f"Each explainer is timed on {r['probe']} records first and on all {r['n']} when that "
        f"projects to at most {TIME_CAP:.0f} s; *seconds per {N_EXPLAIN:,}* scales the "
        "measured time linearly (every record is explained independently)."
    )
    gradient_goal = next(g for g in section.goals if g.name.startswith("gradient"))
    if gradient_goal.met is False:
        notes.append(
            f"Why the gradient goal is missed: {N_EXPLAIN:,} records × "
            f"{DEFAULT_GRADIENT_SAMPLES} samples = {DEFAULT_GRADIENT_SAMPLES * N_EXPLAIN:,} "
            "forward-and-backward rows through the model, the cost of "
            "about one epoch of training on as many rows (see the pretraining section for the "
            "FT-transformer's rate); fewer samples (`max_evals`) trade precision for time."
        )
    section.notes += notes
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.quick)
    else:
        standalone(run, rest + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
