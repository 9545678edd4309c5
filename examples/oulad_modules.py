"""OULAD: from six large course modules to a seventh, with 100 students of its own.

Scenario. The Open University (UK) recorded, for 32,593 registrations on seven course modules
(OULAD), the students' demographics and their first 60 days of study (registration dates,
assessments submitted and their scores). The outcome is being *at risk*: failing or withdrawing
from the module. The six modules BBB ... GGG (31,845 registrations) are the *source*. Module
AAA (748 registrations) is the *target*; it wants an early-warning model before it has labelled
many students of its own, so it fine-tunes on only 100 students and keeps the rest (about 650
registrations) to measure the model.

What it shows:

* the privacy unit is a student, not a registration: the loader's id is one registration, and
  36 AAA students registered on two presentations. The cohort is rebuilt with ``id_student`` as
  the id (``repeated_ids="allow"``), so a student's registrations are split, sampled, clipped
  and counted together;
* the encoder chosen on the source by validation across course modules (``pretrain(source,
  "auto")`` over a short candidate list: logistic regressions over the featurizer's features
  at five weight decays; the default list adds an MLP and GraphSAGE, which take minutes to
  pretrain on 31,845 registrations), and the private fine-tuning hyper-parameters chosen by
  simulating a 100-student target on held-out source modules;
* private transfer (epsilon = 3) with 100 training students and the defaults (the
  ``anchored`` strategy and the private negative-transfer guard), against a non-private
  transfer, the zero-shot source model, and the yardstick on the same 100 students:
  logistic regression on the source only, on the target only and pooled over source + the
  100 students, target-only XGBoost, and XGBoost on the source only and pooled;
* held-out AUROC with 95% bootstrap intervals, the privacy ledger, a membership-inference
  audit and an HTML report with SHAP explanations (of a sample of 60 held-out records).

Run from the repository root::

    python examples/oulad_modules.py            # a few minutes on 2 CPU cores
    python examples/oulad_modules.py --quick    # a short check that everything runs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shared import (
    LINEAR_CANDIDATES,
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
    show_transfer_check,
    write_report,
)

if TYPE_CHECKING:
    from graphxfer import Cohort

TARGET = "AAA"
N_TRAIN = 100
EPSILON = 3.0


def load_by_student() -> Cohort:
    """OULAD with the student (not the registration) as the person of every row."""
    from graphxfer import Cohort, datasets

    oulad = datasets.load_oulad()
    schema = oulad.schema.replace("registration_id", role="ignore").replace("id_student", role="id")
    return Cohort(oulad.data, schema, all_missing="keep", repeated_ids="allow", name=oulad.name)


def main(argv: list[str] | None = None) -> int:
    clock = Clock()
    args = parse_args(__doc__, argv)
    quiet_warnings()
    import graphxfer as gx
    from graphxfer import datasets
    from graphxfer.exceptions import GraphxferWarning
    from privacy import PrivacyConfig

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress, seed, quick = not args.no_progress, args.seed, args.quick

    oulad = load_by_student()
    say("OULAD: seven course modules, outcome = at risk (Fail or Withdrawn)")
    say(
        oulad.summary()[["rows", "persons", "positive_rate"]].to_string(
            float_format="{:.2f}".format
        )
    )
    modules = list(datasets.OULAD_MODULES)
    source = oulad.select_groups([m for m in modules if m != TARGET])
    target = oulad.select_groups(TARGET)
    train, test = target.split(test_size=target.n_persons - N_TRAIN, random_state=seed)
    say(
        f"\nSource: {len(modules) - 1} modules, {len(source):,} registrations. Target {TARGET}: "
        f"{len(target)} registrations of {target.n_persons} students; {train.n_persons} "
        f"students ({len(train)} registrations) for private training, {test.n_persons} "
        f"students ({len(test)} registrations) held out."
    )

    pretrain_source = source
    if quick:  # a sample of the source keeps the check short
        rows = np.random.default_rng(seed).choice(len(source), 3000, replace=False)
        pretrain_source = source.subset(np.sort(rows))
    say(
        f"\n[1] Choosing the encoder on {len(pretrain_source):,} source registrations and "
        "pretraining it (pretrain 'auto')..."
    )
    encoder = pretrain_auto(
        pretrain_source,
        sizes=[N_TRAIN],
        epsilon=EPSILON,
        quick=quick,
        seed=seed,
        progress=progress,
        candidates=LINEAR_CANDIDATES,
    )
    encoder.save(out / "oulad-encoder")
    say(f"    done in {clock.step():.0f} s: {encoder.name}")

    say(f"[2] Fine-tuning on {N_TRAIN} {TARGET} students with and without privacy...")
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
    say(f"    done in {clock.step():.0f} s")

    say("[3] Comparing on the held-out students...")
    board = Scoreboard(
        f"{TARGET}, {N_TRAIN} training students", test, seed=seed, n_boot=100 if quick else 500
    )
    board.add(f"transfer (anchored), DP (eps={EPSILON:g})", private)
    board.add("transfer (anchored), not private", public)
    board.add("zero-shot source model", ZeroShot(encoder))
    add_baselines(board, source, train, source.schema.feature_names, seed=seed)
    board.show()
    show_hyperparameters(private)
    show_transfer_check(private)
    show_transfer_check(public)

    say("\n[4] Audit, ledger and report...")
    private.add_metrics(test, on="held-out", n_boot=100 if quick else 500, random_state=seed)
    show_audit(private, train, test)
    say("Privacy ledger of the private fit:")
    show_ledger(private)
    private.save(out / "oulad-aaa-model")
    path = write_report(
        private,
        test,
        out / "oulad-aaa-report.html",
        title=f"OULAD: private transfer to module {TARGET} ({N_TRAIN} training students)",
        seed=seed,
        progress=progress,
        max_records=10 if quick else 60,
        n_background=8 if quick else 25,
        permutations=1 if quick else 2,
    )
    say(f"Report: {path.resolve()}")
    say(f"Done in {clock.total:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
