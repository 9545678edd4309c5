"""The main job, end to end, on the bundled heart-disease cohorts (``graphxfer demo``).

Source: the Cleveland and Hungarian hospitals. Target: the VA Long Beach hospital, split into
a private training part and a held-out part. The encoder is chosen and pretrained on the
source (``pretrain(source, "auto")``: cross-site validation, then DP hyper-parameters chosen
by simulating the target on held-out source sites), fine-tuned at the target with
differential privacy and the private transfer guard (the defaults), compared on the held-out
records with the non-private transfer and with logistic regression and XGBoost fitted on the
source only, the target only and both pooled, audited, saved, explained and reported.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["print_checks", "print_fit", "run_demo"]


def _say(text: str) -> None:
    print(text, flush=True)


def print_fit(model: Any) -> None:
    """Print the fit's released facts: the lines the report's model card shows."""
    from graphxfer.report.summary import fit_summary, summary_lines

    for line in summary_lines(fit_summary(model)):
        _say(line)


def print_checks(model: Any, cohort: Any) -> None:
    """Print the report's checks of ``model`` on ``cohort`` (calibration, shift from the
    source): computed on those records, not covered by epsilon."""
    from graphxfer.report.checks import calibration_check, shift_check

    if cohort.has_target:
        _say(calibration_check(cohort.y, model.predict_proba(cohort)[:, 1])["line"])
    _say(shift_check(model, model.transform_features(cohort))["line"])
    _say("(computed on the reported records, not covered by epsilon)")


def run_demo(
    out_dir: str | Path = "reports",
    *,
    progress: bool = True,
    seed: int = 0,
    quick: bool = False,
    epsilon: float = 3.0,
) -> int:
    """Run the demo; write the model and the HTML report under ``out_dir``.

    Returns
    -------
    int
        Exit status (0).
    """
    from graphxfer import TransferClassifier, datasets, pretrain
    from graphxfer._cli_cohorts import format_summary
    from graphxfer.evaluate.metrics import bootstrap_ci
    from graphxfer.exceptions import GraphxferWarning
    from graphxfer.explain import explain
    from graphxfer.report import report
    from privacy import PrivacyConfig
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    _say("graphxfer demo: transfer from two hospitals to a third, with differential privacy\n")
    _say("Bundled cohorts (per site: rows, persons, positive rate, most-missing columns)")
    for name in datasets.dataset_names(bundled=True):
        loader = datasets.dataset_loader(name)
        cohort = loader.load()
        _say(f"\n== {loader.title}: {len(cohort):,} rows, {len(cohort.schema.features)} features")
        _say(format_summary(cohort.summary(), max_missing_columns=3))

    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    train, test = target.split(test_size=0.3, random_state=seed)
    _say(
        f"\nSource: cleveland + hungarian ({len(source)} records). Target: va, "
        f"{len(train)} private training records, {len(test)} held out."
    )

    _say("\n[1/5] Choosing and pretraining the encoder on the source (cross-site validation)...")
    candidates: Any = "fast"
    if quick:
        candidates = [{"encoder": "linear", "params": {"weight_decay": 0.03}}]
    encoder = pretrain(
        source,
        "auto",
        candidates=candidates,
        # DP hyper-parameters for this target size, simulated on held-out source sites
        dp_presets={"sizes": (len(train),), "epsilons": (epsilon, None), "repeats": 1},
        random_state=seed,
        progress=progress,
    )
    from graphxfer.selection import Leaderboard

    board = Leaderboard.from_dict(encoder.metadata["selection"])
    _say(f"chosen: {board.best.label} ({board.method} on the source sites)")
    encoder.save(out / "heart-encoder")

    _say(f"[2/5] Fine-tuning at the target with differential privacy (epsilon={epsilon:g})...")
    private = TransferClassifier(
        encoder, privacy=PrivacyConfig(epsilon=epsilon), random_state=seed, progress=progress
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        # the noise comes from a secure source: this step differs from run to run
        private.fit(train)
    print_fit(private)

    _say("[3/5] Comparing on the held-out records with what an analyst would fit instead...")
    public = TransferClassifier(encoder, random_state=seed).fit(train)
    names = list(private.feature_names_in_)
    X_train, X_test = train.X[names], test.X[names]
    X_source = source.X[names]
    X_pooled = pd.concat([X_source, X_train], ignore_index=True)
    y_pooled = np.concatenate([source.y, train.y])
    rows_: list[tuple[str, Any]] = [
        (f"graphxfer, DP (ε={private.privacy.epsilon:g}, default)", private),
        ("graphxfer, not private", public),
        ("logistic regression, source only", LogisticBaseline().fit(X_source, source.y)),
        ("logistic regression, target only", LogisticBaseline().fit(X_train, train.y)),
        (
            "logistic regression, pooled (needs data sharing)",
            LogisticBaseline().fit(X_pooled, y_pooled),
        ),
        ("XGBoost, target only", XGBoostBaseline(random_state=seed).fit(X_train, train.y)),
    ]
    rows = []
    aucs: dict[str, float] = {}
    for label, model in rows_:
        p = model.predict_proba(X_test)[:, 1]
        auc, lo, hi = bootstrap_ci(test.y, p, "auroc", n_boot=500, random_state=seed)
        aucs[label] = auc
        rows.append({"model": label, "AUROC": auc, "95% CI": f"[{lo:.3f}, {hi:.3f}]"})
    table = pd.DataFrame(rows).set_index("model")
    _say(table.to_string(float_format=lambda v: f"{v:.3f}"))
    dp_auc = aucs[rows_[0][0]]
    behind = [
        k
        for k, v in aucs.items()
        if k != rows_[0][0] and "pooled" not in k and "not private" not in k and v > dp_auc
    ]
    if behind:
        _say(
            "Held-out check: the private model is behind " + ", ".join(behind) + " on these "
            f"{len(test)} records (computed on private records, not covered by ε)."
        )
    else:
        _say(
            "Held-out check: the private model is ahead of every source-only and target-only "
            f"baseline on these {len(test)} records (computed on private records, not "
            "covered by ε)."
        )

    _say("[4/5] Auditing the private model (membership inference)...")
    private.add_metrics(test, on="held-out", random_state=seed)
    audit = private.audit(train, test)
    _say(
        f"attack AUROC {audit['attack_auc']:.3f}; empirical epsilon lower bound "
        f"{audit['eps_lower_bound']:.2f} <= claimed {audit['claimed_epsilon']:.2f}: "
        f"{'passed' if audit['passed'] else 'FAILED'} (computed on private records, not "
        "covered by epsilon)"
    )
    private.save(out / "heart-va-model")
    # metrics and audit read private records: they go to their own file, never the model's
    private.save_evaluation(out / "heart-va-evaluation.json")
    _say(str(private.ledger_))

    _say("[5/5] Explaining every held-out prediction (SHAP) and writing the report...")
    explained = test if not quick else test.subset(list(range(20)))
    explanation = explain(
        private,
        explained,
        n_background=25,
        max_evals=4 * len(names) + 2,
        random_state=seed,
        progress=progress,
    )
    path = report(
        private,
        explained,
        out / "heart-va-report.html",
        explanation=explanation,
        title="Heart disease: private transfer to VA Long Beach",
        progress=progress,
    )
    print_checks(private, explained)
    elapsed = time.perf_counter() - start
    _say(f"\nReport: {path.resolve()}")
    _say(f"Model:  {(out / 'heart-va-model').resolve()} (weights.safetensors + meta.json)")
    _say(f"Evaluation (outside epsilon): {(out / 'heart-va-evaluation.json').resolve()}")
    _say(f"Done in {elapsed:.0f} s.")
    return 0
