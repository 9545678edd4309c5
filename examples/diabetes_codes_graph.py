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

Compared on the held-out patients: private transfer (LP-FT, epsilon = 3), non-private transfer
with the negative-transfer check, the same GraphSAGE pretrained over the k-nearest-neighbour
graph of the features instead of the code graph (non-private: a second private fit on the same
patients would spend a second budget), target-only XGBoost and logistic regression, source-only
XGBoost and XGBoost pooled over source + target training records. The report explains a sample
of held-out encounters with SHAP (the graph attachment is part of the explained model).

Run from the repository root::

    python examples/diabetes_codes_graph.py            # about 2-3 minutes on 2 CPU cores
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
    Clock,
    Scoreboard,
    parse_args,
    quiet_warnings,
    say,
    show_audit,
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
EPSILON = 3.0


def main(argv: list[str] | None = None) -> int:
    clock = Clock()
    args = parse_args(__doc__, argv)
    quiet_warnings()
    import graphxfer as gx
    from graphxfer import datasets, graphs
    from graphxfer.exceptions import GraphxferWarning
    from privacy import PrivacyConfig
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

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

    say(f"[3] Fine-tuning on {N_TRAIN} target patients with and without privacy...")
    config = PrivacyConfig(
        epsilon=EPSILON,
        epochs=3 if quick else 10,
        batch_size=64,
        learning_rate=1e-2,
        accountant="rdp" if quick else "prv",
    )
    private = gx.TransferClassifier(
        encoder, strategy="lp-ft", privacy=config, random_state=seed, progress=progress
    )
    public = gx.TransferClassifier(
        encoder,
        strategy="lp-ft",
        epochs=3 if quick else 15,
        check_transfer=not quick,
        random_state=seed,
    )
    # the kNN-graph encoder is compared without privacy: a second private fit on the same
    # patients would spend a second budget (the two epsilons would add up)
    public_knn = gx.TransferClassifier(
        knn_encoder, strategy="lp-ft", epochs=3 if quick else 15, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        private.fit(train)
        public.fit(train)
        public_knn.fit(train)
    say(f"    done in {clock.step():.0f} s")

    say("[4] Comparing on the held-out patients...")
    names = list(source.schema.feature_names)
    X_train = train.X[names]
    board = Scoreboard(
        f"'{TARGET_SITE}', {N_TRAIN} training patients",
        test,
        seed=seed,
        n_boot=100 if quick else 500,
    )
    board.add(f"code-graph GraphSAGE LP-FT, DP (eps={EPSILON:g})", private)
    board.add("code-graph GraphSAGE LP-FT, not private", public)
    board.add("kNN-graph GraphSAGE LP-FT, not private", public_knn)
    board.add("XGBoost, target only", XGBoostBaseline(random_state=seed).fit(X_train, train.y))
    board.add("logistic, target only", LogisticBaseline().fit(X_train, train.y))
    board.add(
        "XGBoost, source only", XGBoostBaseline(random_state=seed).fit(source.X[names], source.y)
    )
    board.add(
        "XGBoost, pooled source + target",
        XGBoostBaseline(random_state=seed).fit(
            pd.concat([source.X[names], X_train], ignore_index=True),
            np.concatenate([source.y, train.y]),
        ),
        note="needs the target's records shared",
    )
    board.show()
    show_transfer_check(public)

    say("\n[5] Audit, ledger and report...")
    private.add_metrics(test, on="held-out", random_state=seed)
    show_audit(private, train, test)
    say(
        f"Privacy ledger of the private fit (unit = person: {train.n_persons} patients, "
        f"{len(train)} encounters):"
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
