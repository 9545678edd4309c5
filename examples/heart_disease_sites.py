"""Heart disease: from two large hospitals to two small ones, with differential privacy.

Scenario. Four hospitals recorded the same 13 clinical measurements for patients referred for
coronary angiography (UCI Heart Disease). Cleveland (303 patients) and Budapest ("hungarian",
294) pool their records as the *source*. Two smaller hospitals are the *targets*: the VA Long
Beach hospital (200 patients) and the University Hospital Zurich ("switzerland", 123 patients).
Each target keeps its records private: it receives the pretrained encoder as a model file and
fine-tunes it on its own training part under differential privacy (the privacy unit is one
patient), then measures it on its own held-out part.

What it shows:

* the encoder chosen on the source by leave-one-site-out validation (``pretrain(source,
  "auto")``: Cleveland and Budapest each held out once), and the private fine-tuning
  hyper-parameters chosen there too, by simulating targets of the same sizes on held-out
  source sites (no target record is read for either choice);
* private transfer (epsilon = 3) to each target with the defaults: the ``anchored`` strategy
  (the source model plus a correction pulled toward zero by the source prior) and the private
  negative-transfer guard, which ships the fine-tuned model, the zero-shot source model or a
  target-only head, chosen with differential privacy from the same budget;
* next to it: the non-private transfer (with the cross-fitted negative-transfer check), the
  zero-shot source model, and the yardstick: logistic regression on the source only, on the
  target only and pooled over source + target (the data-sharing reference that privacy rules
  out), target-only XGBoost, and XGBoost on the source only and pooled;
* held-out AUROC with 95% bootstrap intervals, the chosen hyper-parameters and the guard's
  choice, the privacy ledger of every private fit, a membership-inference audit, and one HTML
  report per target with SHAP explanations.

Switzerland has 123 patients and DP fine-tuning needs at least 50 training persons; a 70/30
split keeps 86 for training and 37 for testing. Its positive rate is 0.93 (115 of 123 patients
have disease; 0.95 in the held-out part, which holds only 2 patients without disease), so its
held-out AUROC is very noisy: read it with its wide interval.

Run from the repository root::

    python examples/heart_disease_sites.py            # a few minutes on 2 CPU cores
    python examples/heart_disease_sites.py --quick    # a short check that everything runs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
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

SOURCE_SITES = ["cleveland", "hungarian"]
TARGET_SITES = {"va": "VA Long Beach", "switzerland": "University Hospital Zurich"}
EPSILON = 3.0


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

    heart = datasets.load_heart_disease()
    say("Heart disease (UCI): four hospitals, outcome = angiographic disease (num > 0)")
    summary = heart.summary()
    say(summary[["rows", "persons", "positive_rate"]].to_string(float_format="{:.2f}".format))

    source = heart.select_groups(SOURCE_SITES)
    say(f"\nSource: {' + '.join(SOURCE_SITES)} ({len(source)} patients).")
    splits = {
        site: heart.select_groups(site).split(test_size=0.3, random_state=seed)
        for site in TARGET_SITES
    }

    say("\n[1] Choosing the encoder on the source and pretraining it (pretrain 'auto')...")
    encoder = pretrain_auto(
        source,
        sizes=[train.n_persons for train, _ in splits.values()],
        epsilon=EPSILON,
        quick=quick,
        seed=seed,
        progress=progress,
    )
    encoder.save(out / "heart-encoder")
    say(f"    done in {clock.step():.0f} s: {encoder.name}; saved to {out / 'heart-encoder'}")
    names = list(source.schema.feature_names)

    results: dict[str, pd.DataFrame] = {}
    reports: list[Path] = []
    for step, (site, hospital) in enumerate(TARGET_SITES.items(), start=2):
        target = heart.select_groups(site)
        train, test = splits[site]
        say(
            f"\n[{step}] Target {site} ({hospital}): {len(target)} patients, positive rate "
            f"{float(np.mean(target.y)):.2f}; {len(train)} private training records, "
            f"{len(test)} held out."
        )
        if site == "switzerland":
            say(
                "    Note: DP fine-tuning needs >= 50 training persons, so the split keeps "
                f"{len(train)} for training. Switzerland's positive rate is "
                f"{float(np.mean(target.y)):.2f} ({int(target.y.sum())} of {len(target)} "
                f"patients have disease): the held-out part holds only "
                f"{int((test.y == 0).sum())} patients without disease, so its AUROC is noisy "
                "(see the wide interval)."
            )
        # the defaults: anchored fine-tuning, hyper-parameters from the encoder's presets,
        # the private transfer guard; the quick check uses the faster RDP accountant
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
        board = Scoreboard(f"{site}: held-out AUROC", test, seed=seed, n_boot=100 if quick else 500)
        board.add(f"transfer (anchored), DP (eps={EPSILON:g})", private)
        board.add("transfer (anchored), not private", public)
        board.add("zero-shot source model", ZeroShot(encoder))
        add_baselines(board, source, train, names, seed=seed)
        table = board.show()
        results[site] = table
        show_hyperparameters(private)
        show_transfer_check(private)
        show_transfer_check(public)

        private.add_metrics(test, on="held-out", n_boot=100 if quick else 500, random_state=seed)
        show_audit(private, train, test)
        say("Privacy ledger of the private fit:")
        show_ledger(private)
        private.save(out / f"heart-{site}-model")
        path = write_report(
            private,
            test,
            out / f"heart-{site}-report.html",
            title=f"Heart disease: private transfer to {hospital} ({site})",
            seed=seed,
            progress=progress,
            max_records=8 if quick else 100,
            n_background=6 if quick else 30,
            permutations=1 if quick else 3,
        )
        reports.append(path)
        say(f"Report: {path}    ({clock.step():.0f} s for this target)")

    show_summary(results, "Summary: held-out AUROC [95% CI] per target")
    say("\nReports:")
    for path in reports:
        say(f"  {path.resolve()}")
    say(f"Done in {clock.total:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
