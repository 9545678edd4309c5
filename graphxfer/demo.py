"""The main job, end to end, on the bundled heart-disease cohorts (``graphxfer demo``).

Source: the Cleveland and Hungarian hospitals. Target: the VA Long Beach hospital, split into
a private training part and a held-out part. An FT-transformer is pretrained on the source,
fine-tuned at the target with differential privacy, compared with a non-private transfer and
target-only baselines on the held-out records, audited, saved, explained and reported.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["run_demo"]


def _say(text: str) -> None:
    print(text, flush=True)


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
    from graphxfer.cli import format_summary
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
    for title, loader in (
        ("Heart disease (UCI)", datasets.load_heart_disease),
        ("Student performance (UCI)", datasets.load_student_performance),
        ("OULAD", datasets.load_oulad),
        ("Diabetes 130-US hospitals", datasets.load_diabetes_130),
    ):
        cohort = loader()
        _say(f"\n== {title}: {len(cohort):,} rows, {len(cohort.schema.features)} features")
        _say(format_summary(cohort.summary(), max_missing_columns=3))

    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    target = heart.select_groups("va")
    train, test = target.split(test_size=0.3, random_state=seed)
    _say(
        f"\nSource: cleveland + hungarian ({len(source)} records). Target: va, "
        f"{len(train)} private training records, {len(test)} held out."
    )

    epochs = 5 if quick else 40
    _say(f"\n[1/5] Pretraining an FT-transformer on the source ({epochs} epochs)...")
    encoder = pretrain(
        source,
        "ft-transformer",
        "supervised+masked",
        epochs=epochs,
        random_state=seed,
        progress=progress,
    )
    encoder.save(out / "heart-encoder")

    _say(f"[2/5] Fine-tuning at the target with differential privacy (epsilon={epsilon:g})...")
    config = PrivacyConfig(
        epsilon=epsilon,
        epochs=5 if quick else 20,
        batch_size=32,
        learning_rate=1e-2,
        accountant="prv",
    )
    private = TransferClassifier(
        encoder, strategy="lp-ft", privacy=config, random_state=seed, progress=progress
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        # reproducible noise for the demo; production runs set PrivacyConfig(secure_mode=True)
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        private.fit(train)

    _say("[3/5] Comparing with non-private transfer and target-only baselines (held-out)...")
    public = TransferClassifier(
        encoder,
        strategy="lp-ft",
        epochs=5 if quick else 30,
        check_transfer=True,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always", GraphxferWarning)
        public.fit(train)
    names = list(private.feature_names_in_)
    X_train, X_test = train.X[names], test.X[names]
    candidates: list[tuple[str, Any]] = [
        (f"transfer, DP (ε={private.fine_tune_['epsilon']:.2f})", private),
        ("transfer, not private", public),
        ("XGBoost, target only", XGBoostBaseline(random_state=seed).fit(X_train, train.y)),
        ("logistic, target only", LogisticBaseline().fit(X_train, train.y)),
    ]
    rows = []
    for label, model in candidates:
        p = model.predict_proba(X_test)[:, 1]
        auc, lo, hi = bootstrap_ci(test.y, p, "auroc", n_boot=500, random_state=seed)
        rows.append({"model": label, "AUROC": auc, "95% CI": f"[{lo:.3f}, {hi:.3f}]"})
    table = pd.DataFrame(rows).set_index("model")
    _say(table.to_string(float_format=lambda v: f"{v:.3f}"))
    check = public.transfer_check_ or {}
    if check.get("ran"):
        verdict = "passed" if check["passed"] else "FAILED (negative transfer)"
        _say(
            f"Negative-transfer check (cross-fitted on the training part): transfer "
            f"{check['transfer_auc']:.3f} vs {check['baseline']} {check['baseline_auc']:.3f}: "
            f"{verdict}"
        )

    _say("[4/5] Auditing the private model (membership inference)...")
    private.add_metrics(test, on="held-out", random_state=seed)
    audit = private.audit(train, test)
    _say(
        f"attack AUROC {audit['attack_auc']:.3f}; empirical epsilon lower bound "
        f"{audit['eps_lower_bound']:.2f} <= claimed {audit['claimed_epsilon']:.2f}: "
        f"{'passed' if audit['passed'] else 'FAILED'}"
    )
    private.save(out / "heart-va-model")
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
    elapsed = time.perf_counter() - start
    _say(f"\nReport: {path.resolve()}")
    _say(f"Model:  {(out / 'heart-va-model').resolve()} (weights.safetensors + meta.json)")
    _say(f"Done in {elapsed:.0f} s.")
    return 0
