"""Side by side on the same target splits: our transfer flow, pytorch-tabnet's own
``TabNetPretrainer`` + ``TabNetClassifier(from_unsupervised=...)`` flow, and target-only
XGBoost and logistic regression (held-out AUROC and time).

Every method sees the same source cohort (for pretraining) and, per repeat, the same seeded,
stratified split of the target cohort into a training part and a held-out part.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

from benchmarks._common import Section, emit, run_child, set_threads, standalone, table

REPEATS = {False: 5, True: 2}


def _datasets(quick: bool) -> list[tuple[str, Any, Any, dict[str, int]]]:
    from graphxfer import datasets

    heart = datasets.load_heart_disease()
    out = [
        (
            "heart disease: cleveland + hungarian -> va",
            heart.select_groups(["cleveland", "hungarian"]),
            heart.select_groups("va"),
            {"epochs": 10 if quick else 40, "batch": 64, "tabnet_epochs": 20 if quick else 100},
        )
    ]
    if not quick:
        synth = datasets.make_multisite(
            n_sites=3, n_per_site=[20_000, 20_000, 400], shift=0.7, random_state=11
        )
        out.append(
            (
                "synthetic: 2 sites x 20,000 -> 400 records",
                synth.select_groups(["site0", "site1"]),
                synth.select_groups("site2"),
                {"epochs": 10, "batch": 512, "tabnet_epochs": 10},
            )
        )
    return out


def _tabnet_matrix(featurizer: Any, X: Any) -> Any:
    """Featurizer output as one float matrix: standardised values, missing flags, category
    indices (the layout pytorch-tabnet takes, with ``cat_idxs`` pointing at the indices)."""
    import numpy as np

    b = featurizer.transform(X)
    return np.concatenate([b.numeric, b.missing.astype(np.float32), b.categorical], axis=1)


def _tabnet_common(featurizer: Any, seed: int) -> dict[str, Any]:
    p = len(featurizer.numeric_columns_)
    cat_idxs = list(range(2 * p, 2 * p + len(featurizer.categorical_columns_)))
    return {"cat_idxs": cat_idxs, "cat_dims": featurizer.cardinalities_, "cat_emb_dim": 2,
            "n_d": 16, "n_a": 16, "n_steps": 3, "verbose": 0, "seed": seed}  # fmt: skip


def _tabnet_pretrain(source: Any, featurizer: Any, opts: dict[str, int]) -> Any:
    from pytorch_tabnet.pretraining import TabNetPretrainer

    pretrainer = TabNetPretrainer(**_tabnet_common(featurizer, 0))
    pretrainer.fit(
        _tabnet_matrix(featurizer, source.X),
        pretraining_ratio=0.3,
        max_epochs=opts["tabnet_epochs"],
        batch_size=max(opts["batch"], 256),
        virtual_batch_size=128,
        drop_last=False,
    )
    return pretrainer


def _tabnet_fit_predict(pretrainer: Any, featurizer: Any, train: Any, test: Any, seed: int) -> Any:
    from pytorch_tabnet.tab_model import TabNetClassifier

    clf = TabNetClassifier(**_tabnet_common(featurizer, seed))
    clf.fit(
        _tabnet_matrix(featurizer, train.X),
        train.y,
        from_unsupervised=pretrainer,
        max_epochs=50,
        batch_size=64,
        virtual_batch_size=32,
        drop_last=False,
    )
    return clf.predict_proba(_tabnet_matrix(featurizer, test.X))[:, 1]


METHODS = (
    "graphxfer: FT-transformer (supervised+masked) -> lp-ft",
    "graphxfer: TabNet (masked) -> lp-ft",
    "XGBoost, target only",
    "logistic, target only",
)


def _fit_predict(method: str, encoders: dict[str, Any], train: Any, test: Any, seed: int) -> Any:
    """Held-out probabilities of ``method`` fitted on ``train``."""
    from graphxfer import TransferClassifier
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    if method.startswith("graphxfer"):
        encoder = encoders["ft" if "FT" in method else "tabnet"]
        clf = TransferClassifier(encoder, strategy="lp-ft", epochs=30, random_state=seed)
        return clf.fit(train).predict_proba(test)[:, 1]
    names = [c.name for c in train.schema.features]
    base = (
        XGBoostBaseline(random_state=seed) if method.startswith("XGBoost") else LogisticBaseline()
    )
    return base.fit(train.X[names], train.y).predict_proba(test.X[names])[:, 1]


def child(quick: bool) -> None:
    set_threads()
    from sklearn.metrics import roc_auc_score

    from graphxfer import pretrain
    from tabular import Featurizer

    warnings.simplefilter("ignore")
    results: list[dict[str, Any]] = []
    sizes: dict[str, list[int]] = {}
    for name, source, target, opts in _datasets(quick):
        sizes[name] = [len(source), len(target)]
        encoders: dict[str, Any] = {}
        for key, encoder, objective in (
            ("ft", "ft-transformer", "supervised+masked"),
            ("tabnet", "tabnet", "masked"),
        ):
            t = time.perf_counter()
            encoders[key] = pretrain(
                source, encoder, objective, epochs=opts["epochs"], batch_size=opts["batch"],
                random_state=0, device="cpu", progress=False,
            )  # fmt: skip
            results.append(
                {"dataset": name, "method": f"graphxfer: {encoder} ({objective}) pretraining",
                 "seed": -1, "seconds": time.perf_counter() - t}
            )  # fmt: skip
        featurizer = Featurizer().fit(source.X, source.schema.features)
        t = time.perf_counter()
        tabnet_pretrainer = _tabnet_pretrain(source, featurizer, opts)
        results.append(
            {"dataset": name, "method": "pytorch-tabnet: TabNetPretrainer pretraining",
             "seed": -1, "seconds": time.perf_counter() - t}
        )  # fmt: skip
        for seed in range(REPEATS[quick]):
            train, test = target.split(test_size=0.3, random_state=seed)
            for method in METHODS:
                t = time.perf_counter()
                p = _fit_predict(method, encoders, train, test, seed)
                results.append(
                    {"dataset": name, "method": method, "seed": seed,
                     "auroc": float(roc_auc_score(test.y, p)), "seconds": time.perf_counter() - t}
                )  # fmt: skip
            t = time.perf_counter()
            p = _tabnet_fit_predict(tabnet_pretrainer, featurizer, train, test, seed)
            results.append(
                {"dataset": name, "method": "pytorch-tabnet: TabNetPretrainer -> from_unsupervised",
                 "seed": seed, "auroc": float(roc_auc_score(test.y, p)),
                 "seconds": time.perf_counter() - t}
            )  # fmt: skip
    emit({"results": results, "sizes": sizes})


def run(quick: bool) -> Section:
    import numpy as np

    r = run_child("benchmarks.bench_compare", ["--child"] + (["--quick"] if quick else []))
    res = r["results"]
    sizes = {k: tuple(v) for k, v in r["sizes"].items()}
    rows, pre_rows = [], []
    for dataset in sizes:
        mine = [x for x in res if x["dataset"] == dataset]
        for method in dict.fromkeys(x["method"] for x in mine if x["seed"] >= 0):
            runs = [x for x in mine if x["method"] == method]
            auc = np.array([x["auroc"] for x in runs])
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "AUROC mean": float(auc.mean()),
                    "AUROC sd": float(auc.std(ddof=1)) if len(auc) > 1 else None,
                    "repeats": len(auc),
                    "fit s (mean)": float(np.mean([x["seconds"] for x in runs])),
                }
            )
        pre_rows += [
            {"dataset": dataset, "pretraining": x["method"], "seconds": x["seconds"]}
            for x in mine
            if x["seed"] < 0
        ]
    section = Section(
        "compare",
        "Against the alternatives: pytorch-tabnet's flow and XGBoost (held-out AUROC)",
        tables=[table(rows), table(pre_rows)],
        command="python -m benchmarks.bench_compare" + (" --quick" if quick else ""),
    )
    for dataset, (n_source, n_target) in sizes.items():
        section.notes.append(
            f"{dataset}: {n_source:,} source records; {n_target:,} target records split 70/30 "
            "(stratified, one seed per repeat; every method sees the same splits)."
        )
    section.notes.append(
        "pytorch-tabnet reads our featurizer's output (standardised values, missing flags and "
        "category indices with `cat_idxs`/`cat_dims`), is pretrained once per dataset with "
        "`TabNetPretrainer` (pretraining ratio 0.3) and fine-tuned per split with "
        "`TabNetClassifier.fit(from_unsupervised=...)` for 50 epochs. Pretraining times (once "
        "per dataset) are listed separately from the per-split fit times."
    )
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
