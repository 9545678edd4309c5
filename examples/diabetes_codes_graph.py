"""Diabetes readmission: a patient-diagnosis code graph, transferred to a small site privately.

Scenario. 130 US hospitals recorded 101,766 inpatient encounters of diabetic patients (Diabetes
130-US hospitals, 1999-2008); the outcome is readmission within 30 days. The admission source
serves as a proxy site. Encounters admitted through the *Emergency Room* (57,494) are the
large source; encounters *transferred from another hospital* (3,187) are the small target.

Each encounter carries up to three ICD-9 diagnosis codes (``diag_1`` .. ``diag_3``). Records
that share a diagnosis are related, so the source is a graph:

* :func:`graphxfer.graphs.build_code_graph` builds the bipartite encounter-code graph and
  :func:`graphxfer.graphs.project_code_graph` projects it onto the encounters (encounters that
  share a code are neighbours; every encounter gets at most 10 neighbours, so the graph stays
  linear in size however common a code is);
* a GraphSAGE encoder is pretrained over that graph (supervised, neighbour-sampled
  mini-batches) on a sample of 12,000 Emergency-Room encounters;
* a target encounter joins the source graph through its k nearest *source* encounters only
  (never through other target encounters), so its prediction depends on its own record and
  public source data, and per-record clipping in DP-SGD bounds its influence.

Patients repeat: the target's id is ``patient_nbr`` and a patient may have several encounters
(``repeated_ids="allow"``). The split keeps a patient's encounters together, and DP fine-tuning
samples, clips and counts each *patient* as one unit (the ledger says ``unit=person`` and
``n`` = patients). The target fine-tunes on 400 patients and is measured on the other ~2,660.

Beside the graph path runs the default one: ``pretrain(source, "auto")`` chooses a tabular
encoder on the source (validation across held-out parts of the source, over a short candidate
list of logistic regressions over the featurizer's features; the default list adds an MLP and
GraphSAGE over the k-nearest-neighbour graph) and simulates a 400-patient target on held-out
source parts to choose the private fine-tuning hyper-parameters. Both the default and the
code-graph encoder are fine-tuned with the defaults of ``TransferClassifier`` (the ``anchored``
strategy and the private negative-transfer guard).

The target's privacy budget is epsilon = 3 for its patients, whatever is fitted on them: the
two private fits (default and code graph) take 1.5 each, are charged to one privacy ledger
under one data-set label, and ``PrivacyConfig(total_budget=3)`` would refuse a third. The
printed ledger composes both.

Compared on the held-out patients: the two private transfers, their non-private versions
(with the cross-fitted negative-transfer check), the same GraphSAGE pretrained over the
k-nearest-neighbour graph of the features instead of the code graph (non-private), the
zero-shot source model, and the yardstick: logistic regression on the source only, on the
target only and pooled over source + target, target-only XGBoost, and XGBoost on the source
only and pooled. The report explains a sample of held-out encounters of the private
code-graph model with SHAP (the graph attachment is part of the explained model).

Run from the repository root::

    python examples/diabetes_codes_graph.py            # a few minutes on 2 CPU cores
    python examples/diabetes_codes_graph.py --quick    # a short check that everything runs
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

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

SOURCE_SITE = "Emergency Room"
TARGET_SITE = "Transfer from a hospital"
CODE_COLUMNS = ["diag_1", "diag_2", "diag_3"]
# Every prediction searches the source for a record's nearest neighbours, so its cost (and that
# of the thousands of model calls behind a SHAP explanation) grows with the source size.
N_SOURCE = 12_000
N_TRAIN = 400  # target training patients
EPSILON = 3.0  # the target's budget for its patients, over every private fit on them
DATA_ID = "diabetes:transfer-from-hospital"


def main(argv: list[str] | None = None) -> int:
    clock = Clock()
    args = parse_args(__doc__, argv)
    quiet_warnings()
    import graphxfer as gx
    from graphxfer import datasets, graphs
    from graphxfer.exceptions import GraphxferWarning
    from privacy import PrivacyConfig, PrivacyLedger

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress, seed, quick = not args.no_progress, args.seed, args.quick

    diabetes = datasets.load_diabetes_130()
    say("Diabetes 130-US hospitals: outcome = readmitted within 30 days; site = admission source")
    summary = diabetes.summary()[["rows", "persons", "positive_rate"]]
    summary = summary.sort_values("rows", ascending=False).head(6)
    say(summary.to_string(float_format="{:.3f}".format))

    n_source = 3000 if quick else N_SOURCE
    er = diabetes.select_groups(SOURCE_SITE)
    rows = np.sort(np.random.default_rng(seed).choice(len(er), n_source, replace=False))
    source = er.subset(rows)
    target = diabetes.select_groups(TARGET_SITE)
    train, test = target.split(test_size=target.n_persons - N_TRAIN, random_state=seed)
    repeats = int((pd.Series(train.person_index).value_counts() > 1).sum())
    say(
        f"\nSource: {len(source):,} of {len(er):,} '{SOURCE_SITE}' encounters "
        f"({source.n_persons:,} patients).\nTarget '{TARGET_SITE}': {len(target):,} encounters "
        f"of {target.n_persons:,} patients. Private training part: {train.n_persons} patients "
        f"with {len(train)} encounters ({repeats} patients have more than one); held out: "
        f"{test.n_persons:,} patients, {len(test):,} encounters."
    )

    say("\n[1] Building the encounter-diagnosis graph of the source...")
    bipartite = graphs.build_code_graph(source, CODE_COLUMNS)
    graph = graphs.project_code_graph(bipartite, max_degree=10, random_state=seed)
    src, dst = graph.edge_index.numpy()
    degree = np.bincount(dst[src != dst], minlength=len(source))  # self-loops not counted
    say(
        f"    {bipartite['code'].num_nodes:,} distinct ICD-9 codes, "
        f"{bipartite['record', 'has', 'code'].num_edges:,} encounter-code links; projected "
        f"graph: {graph.num_edges:,} edges, mean degree {degree.mean():.1f}, "
        f"{int((degree == 0).sum())} encounters without a shared code ({clock.step():.0f} s)"
    )

    epochs = 1 if quick else 20
    graph_options = {
        "knn_method": "exact",
        "k": 10,
        "fanout": (5, 5),
        "batch_size": 1024,
        "epochs": epochs,
        "random_state": seed,
        "progress": progress,
    }
    say(f"[2] Pretraining GraphSAGE over the code graph (at most {epochs} epochs)...")
    encoder = gx.pretrain(
        source, "graphsage", "supervised", graph=graph, isolated="self_loops", **graph_options
    )
    say(f"    done in {clock.step():.0f} s ({len(encoder.history)} epochs): {encoder.inner!r}")
    say("    and, for comparison, over the k-nearest-neighbour graph of the features...")
    knn_encoder = gx.pretrain(source, "graphsage", "supervised", **graph_options)
    say(f"    done in {clock.step():.0f} s ({len(knn_encoder.history)} epochs)")

    say("[3] The default path: choosing a tabular encoder on the source (pretrain 'auto')...")
    auto_encoder = pretrain_auto(
        source,
        sizes=[N_TRAIN],
        epsilon=EPSILON / 2,
        quick=quick,
        seed=seed,
        progress=progress,
        candidates=LINEAR_CANDIDATES,
    )
    say(f"    done in {clock.step():.0f} s: {auto_encoder.name}")

    say(f"[4] Fine-tuning on {N_TRAIN} target patients with and without privacy...")
    # one ledger for the target's patients: the two private fits compose on it, and
    # total_budget refuses any fit that would take the data set past EPSILON
    ledger = PrivacyLedger(accountant="rdp" if quick else "prv")
    config = PrivacyConfig(
        epsilon=EPSILON / 2, total_budget=EPSILON, accountant="rdp" if quick else "prv"
    )

    def private_fit(encoder: gx.Encoder) -> gx.TransferClassifier:
        # the defaults: anchored fine-tuning, hyper-parameters from the encoder's presets
        # (defaults for small targets when it has none), the private transfer guard
        return gx.TransferClassifier(
            encoder,
            privacy=config,
            ledger=ledger,
            data_id=DATA_ID,
            random_state=seed,
            progress=progress,
        ).fit(train)

    def public_fit(encoder: gx.Encoder, check: bool) -> gx.TransferClassifier:
        return gx.TransferClassifier(encoder, check_transfer=check, random_state=seed).fit(train)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        private_auto = private_fit(auto_encoder)
        public_auto = public_fit(auto_encoder, not quick)
        private = private_fit(encoder)
        public = public_fit(encoder, not quick)
        public_knn = public_fit(knn_encoder, False)
    say(f"    done in {clock.step():.0f} s")

    say("[5] Comparing on the held-out patients...")
    board = Scoreboard(
        f"'{TARGET_SITE}', {N_TRAIN} training patients",
        test,
        seed=seed,
        n_boot=100 if quick else 500,
    )
    eps = f"eps={EPSILON / 2:g} of {EPSILON:g}"
    board.add(f"default ({auto_encoder.name}, anchored), DP ({eps})", private_auto)
    board.add(f"default ({auto_encoder.name}, anchored), not private", public_auto)
    board.add(f"zero-shot source model ({auto_encoder.name})", ZeroShot(auto_encoder))
    board.add(f"code-graph GraphSAGE (anchored), DP ({eps})", private)
    board.add("code-graph GraphSAGE (anchored), not private", public)
    board.add("kNN-graph GraphSAGE (anchored), not private", public_knn)
    add_baselines(board, source, train, source.schema.feature_names, seed=seed)
    board.show()
    for label, model in (("default", private_auto), ("code graph", private)):
        say(f"Private {label} fit:")
        show_hyperparameters(model)
        show_transfer_check(model)
    show_transfer_check(public_auto)
    show_transfer_check(public)

    say("\n[6] Audit, ledger and report...")
    private.add_metrics(test, on="held-out", n_boot=100 if quick else 500, random_state=seed)
    show_audit(private, train, test)
    say(
        f"Privacy ledger of the target's patients after both private fits (unit = person: "
        f"{train.n_persons} patients, {len(train)} encounters):"
    )
    show_ledger(private)
    saved = private.save(out / "diabetes-transfer-model")
    size = sum(f.stat().st_size for f in Path(saved).rglob("*") if f.is_file()) / 2**20
    say(
        f"Model file: {saved} ({size:.0f} MiB; a graph model holds the featurized source "
        "encounters it attaches to, so share it only where the source may be shared)"
    )
    path = write_report(
        private,
        test,
        out / "diabetes-transfer-report.html",
        title=f"Diabetes readmission: private GraphSAGE transfer to '{TARGET_SITE}'",
        seed=seed,
        progress=progress,
        max_records=6 if quick else 24,
        n_background=5 if quick else 12,
        permutations=1,
    )
    say(f"Report: {path.resolve()}    ({clock.step():.0f} s)")
    say(f"Done in {clock.total:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
