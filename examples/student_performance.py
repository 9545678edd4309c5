"""Student performance: transfer between school subjects and between schools, privately.

Scenario. Two Portuguese secondary schools, Gabriel Pereira ("GP") and Mousinho da Silveira
("MS"), recorded 29 demographic, family, school and social attributes of their students in
mathematics (395 records) and Portuguese language (649 records) (UCI Student Performance). The
outcome is passing the year (final grade >= 10 of 20); the period grades G1 and G2 are left
out, so the task is an early warning from background attributes only.

Two transfers, each with its own source encoder:

1. **Subject transfer**: an encoder pretrained on the Portuguese-language records of both
   schools is fine-tuned on mathematics records (70% for training, 30% held out).
2. **School transfer**: an encoder pretrained on every GP record (both subjects) is fine-tuned
   on MS records (272 records, 70% for training, 30% held out).

In each, the target fine-tunes an MLP encoder under differential privacy (epsilon = 3, LP-FT),
and is compared on its held-out part with a non-private transfer (with the negative-transfer
check), target-only XGBoost and logistic regression, source-only XGBoost and XGBoost pooled
over source + target training records. Each transfer gets an HTML report with SHAP
explanations, and the ledger of its private fit is printed.

Caveat: many students appear in both subject files and the data carry no student number to
link them, so in the subject transfer some target students are also in the source, and in the
school transfer an MS student taking both subjects is two records. The privacy unit here is one
record (one student in one subject).

Run from the repository root::

    python examples/student_performance.py            # about 2 minutes on 2 CPU cores
    python examples/student_performance.py --quick    # a short check that everything runs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import (
    Clock,
    Scoreboard,
    parse_args,
    quiet_warnings,
    say,
    show_audit,
    show_ledger,
    show_summary,
    show_transfer_check,
    write_report,
)

EPSILON = 3.0
SCENARIOS = {
    "subject": {
        "title": "Portuguese -> Mathematics (subject transfer)",
        "source": ["GP-por", "MS-por"],
        "target": ["GP-mat", "MS-mat"],
    },
    "school": {
        "title": "GP -> MS (school transfer)",
        "source": ["GP-mat", "GP-por"],
        "target": ["MS-mat", "MS-por"],
    },
}


def run_scenario(
    key: str, spec: dict[str, Any], students: Any, args: Any, clock: Any
) -> tuple[pd.DataFrame, Path]:
    import graphxfer as gx
    from graphxfer.exceptions import GraphxferWarning
    from privacy import PrivacyConfig
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    quick, seed, progress, out = args.quick, args.seed, not args.no_progress, args.out
    source = students.select_groups(spec["source"])
    target = students.select_groups(spec["target"])
    train, test = target.split(test_size=0.3, random_state=seed)
    say(
        f"\n== {spec['title']}\nSource: {' + '.join(spec['source'])} ({len(source)} records). "
        f"Target: {' + '.join(spec['target'])} ({len(target)} records): {len(train)} private "
        f"training records, {len(test)} held out."
    )
    epochs = 3 if quick else 40
    say(f"Pretraining an MLP encoder on the source (at most {epochs} epochs)...")
    encoder = gx.pretrain(
        source, "mlp", "supervised+masked", epochs=epochs, random_state=seed, progress=progress
    )
    encoder.save(out / f"student-{key}-encoder")
    say(f"    done in {clock.step():.0f} s ({len(encoder.history)} epochs, early stopping)")

    config = PrivacyConfig(
        epsilon=EPSILON,
        epochs=3 if quick else 15,
        batch_size=32,
        learning_rate=1e-2,
        accountant="rdp" if quick else "prv",
    )
    private = gx.TransferClassifier(
        encoder, strategy="lp-ft", privacy=config, random_state=seed, progress=progress
    )
    public = gx.TransferClassifier(
        encoder,
        strategy="lp-ft",
        epochs=3 if quick else 20,
        check_transfer=not quick,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        private.fit(train)
        public.fit(train)

    names = list(source.schema.feature_names)
    X_train = train.X[names]
    pooled_X = pd.concat([source.X[names], X_train], ignore_index=True)
    pooled_y = np.concatenate([source.y, train.y])
    board = Scoreboard(spec["title"], test, seed=seed, n_boot=100 if quick else 500)
    board.add(f"transfer LP-FT, DP (eps={EPSILON:g})", private)
    board.add("transfer LP-FT, not private", public)
    board.add("XGBoost, target only", XGBoostBaseline(random_state=seed).fit(X_train, train.y))
    board.add("logistic, target only", LogisticBaseline().fit(X_train, train.y))
    board.add(
        "XGBoost, source only", XGBoostBaseline(random_state=seed).fit(source.X[names], source.y)
    )
    board.add(
        "XGBoost, pooled source + target",
        XGBoostBaseline(random_state=seed).fit(pooled_X, pooled_y),
        note="needs the target's records shared",
    )
    table = board.show()
    show_transfer_check(public)

    private.add_metrics(test, on="held-out", random_state=seed)
    show_audit(private, train, test)
    say("Privacy ledger of the private fit:")
    show_ledger(private)
    private.save(out / f"student-{key}-model")
    path = write_report(
        private,
        test,
        out / f"student-{key}-report.html",
        title=f"Student performance: {spec['title']}, private",
        seed=seed,
        progress=progress,
        max_records=10 if quick else 60,
        n_background=8 if quick else 25,
        permutations=1 if quick else 2,
    )
    say(f"Report: {path}    ({clock.step():.0f} s)")
    return table, path


def main(argv: list[str] | None = None) -> int:
    clock = Clock()
    args = parse_args(__doc__, argv)
    quiet_warnings()
    from graphxfer import datasets

    args.out.mkdir(parents=True, exist_ok=True)
    students = datasets.load_student_performance()
    say("Student performance (UCI): two schools x two subjects, outcome = pass (G3 >= 10)")
    summary = students.summary()
    say(summary[["rows", "positive_rate"]].to_string(float_format="{:.2f}".format))

    results: dict[str, pd.DataFrame] = {}
    reports: list[Path] = []
    for key, spec in SCENARIOS.items():
        results[key], path = run_scenario(key, spec, students, args, clock)
        reports.append(path)

    show_summary(results, "Summary: held-out AUROC [95% CI] per transfer")
    say("\nReports:")
    for path in reports:
        say(f"  {path.resolve()}")
    say(f"Done in {clock.total:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
