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

In each, the encoder is chosen on the source by leave-one-site-out validation
(``pretrain(source, "auto")``; the sites are the school-subject files), and the private
fine-tuning hyper-parameters are chosen there too, by simulating a target of the same size on
held-out source sites. The target fine-tunes it under differential privacy (epsilon = 3) with
the defaults (the ``anchored`` strategy and the private negative-transfer guard), and is
compared on its held-out part with a non-private transfer (with the cross-fitted
negative-transfer check), the zero-shot source model, and the yardstick: logistic regression
on the source only, on the target only and pooled over source + target, target-only XGBoost,
and XGBoost on the source only and pooled. Each transfer gets an HTML report with SHAP
explanations, and the ledger of its private fit is printed.

Caveat: many students appear in both subject files and the data carry no student number to
link them, so in the subject transfer some target students are also in the source, and in the
school transfer an MS student taking both subjects is two records. The privacy unit here is one
record (one student in one subject).

Run from the repository root::

    python examples/student_performance.py            # a few minutes on 2 CPU cores
    python examples/student_performance.py --quick    # a short check that everything runs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import (
    Clock,
    Scoreboard,
    ZeroShot,
    add_baselines,
    parse_args,
    pretrain_auto,
    quiet_warnings,
    say,
    show_audit,
    show_hyperparameters,
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

    quick, seed, progress, out = args.quick, args.seed, not args.no_progress, args.out
    source = students.select_groups(spec["source"])
    target = students.select_groups(spec["target"])
    train, test = target.split(test_size=0.3, random_state=seed)
    say(
        f"\n== {spec['title']}\nSource: {' + '.join(spec['source'])} ({len(source)} records). "
        f"Target: {' + '.join(spec['target'])} ({len(target)} records): {len(train)} private "
        f"training records, {len(test)} held out."
    )
    say("Choosing the encoder on the source and pretraining it (pretrain 'auto')...")
    encoder = pretrain_auto(
        source, sizes=[train.n_persons], epsilon=EPSILON, quick=quick, seed=seed, progress=progress
    )
    encoder.save(out / f"student-{key}-encoder")
    say(f"    done in {clock.step():.0f} s: {encoder.name}")

    # the defaults: anchored fine-tuning, hyper-parameters from the encoder's presets, the
    # private transfer guard; the quick check uses the faster RDP accountant
    private = gx.TransferClassifier(
        encoder,
        privacy=PrivacyConfig(epsilon=EPSILON, accountant="rdp" if quick else "prv"),
        random_state=seed,
        progress=progress,
    )
    public = gx.TransferClassifier(encoder, check_transfer=not quick, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        private.fit(train)
        public.fit(train)

    board = Scoreboard(spec["title"], test, seed=seed, n_boot=100 if quick else 500)
    board.add(f"transfer (anchored), DP (eps={EPSILON:g})", private)
    board.add("transfer (anchored), not private", public)
    board.add("zero-shot source model", ZeroShot(encoder))
    add_baselines(board, source, train, source.schema.feature_names, seed=seed)
    table = board.show()
    show_hyperparameters(private)
    show_transfer_check(private)
    show_transfer_check(public)

    private.add_metrics(test, on="held-out", n_boot=100 if quick else 500, random_state=seed)
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
