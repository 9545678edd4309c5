"""Fine-tuning hyper-parameters chosen on public source data, by simulating the target.

How well differentially private fine-tuning works depends on its hyper-parameters (learning
rate, epochs, batch size, clipping bound, strength of the source prior) far more than
non-private training does: the same source model, fine-tuned on 50 records at epsilon = 1,
gains or loses several AUROC points depending on them. Tuning them on the target's records
would spend its budget. :func:`tune_private` tunes them on the *source* instead: it holds out
one source site at a time, pretrains the same encoder configuration on the other sites, draws
``n`` records from the held-out site as a simulated target, fine-tunes at the requested
epsilon (the real :class:`~graphxfer.TransferClassifier`, the same DP-SGD), scores the rest of
the held-out site, repeats, and keeps the best setting. Nothing of the target is read, so
nothing is spent; the result depends only on the source, ``n`` and epsilon, and is stored
with the encoder (``encoder.metadata["dp_presets"]``) by ``pretrain(source, "auto")``.

The same simulation measures the zero-shot source model and a target-only head, which gives
the private transfer guard a public prior over its candidates.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from graphxfer.cohort import Cohort
from graphxfer.exceptions import GraphxferError

__all__ = [
    "DEFAULT_EPSILONS",
    "DEFAULT_SIZES",
    "default_hyperparameters",
    "lookup_presets",
    "tune_private",
]

#: Target sizes simulated by default (those larger than 60% of a held-out site are skipped).
DEFAULT_SIZES: tuple[int, ...] = (30, 50, 100, 200, 500)
#: Epsilons simulated by default; ``None`` is the non-private fit.
DEFAULT_EPSILONS: tuple[float | None, ...] = (1.0, 3.0, None)
#: The private grid: (learning rate, epochs, prior strength alpha); SGD, clipping bound 0.5,
#: expected batch 60% of the records.
PRIVATE_GRID: tuple[tuple[float, int, float], ...] = (
    (0.05, 10, 1.0),
    (0.05, 30, 1.0),
    (0.2, 10, 1.0),
    (0.2, 30, 1.0),
    (0.2, 10, 0.3),
    (0.05, 30, 0.3),
)
#: Prior strengths tried without privacy (exact penalised fit). ``alpha = 1`` weighs a target
#: record like a source record (the fit approximates pooling the two); smaller values were
#: tried and, on the bundled multi-site cohorts, trusted the few target records too much.
NON_PRIVATE_ALPHAS: tuple[float, ...] = (1.0, 3.0)
#: Share of epsilon the fine-tune keeps when the private guard runs (its default fraction).
_GUARD_KEEP = 0.8
#: Temperature (in AUROC) of the guard's prior: a candidate 0.02 behind the best keeps e^-1.
_PRIOR_TEMPERATURE = 0.02


def default_hyperparameters(n: int) -> dict[str, Any]:
    """Anchored DP fine-tuning settings used when an encoder carries no presets.

    Measured on the heart-disease sites (n = 50, epsilon = 1) as a safe middle of the grid:
    SGD at learning rate 0.1 for 10 epochs, clipping bound 0.5, an expected batch of 60% of
    the records (at least 8), and the full source prior (alpha = 1).
    """
    return {
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "epochs": 10,
        "max_grad_norm": 0.5,
        "batch_size": int(min(max(n, 1), 256, max(8, round(0.6 * n)))),
        "alpha": 1.0,
    }


def _log_distance(a: float, b: float) -> float:
    return abs(math.log(a) - math.log(b))


def lookup_presets(
    presets: dict[str, Any] | None, n: int, epsilon: float | None
) -> dict[str, Any] | None:
    """The stored preset nearest to a target of ``n`` records at ``epsilon``.

    Sizes are matched on a log scale; among epsilons, the nearest one not above the request
    is preferred (settings tuned for more noise are the safer side). ``None`` when no preset
    of the same kind (private or not) is stored.
    """
    if not presets:
        return None
    entries = [e for e in presets.get("entries", []) if (e["epsilon"] is None) == (epsilon is None)]
    if not entries:
        return None
    best_n = min({e["n"] for e in entries}, key=lambda m: _log_distance(m, max(n, 1)))
    entries = [e for e in entries if e["n"] == best_n]
    if epsilon is None:
        return dict(entries[0])
    below = [e for e in entries if e["epsilon"] <= epsilon * (1 + 1e-9)]
    pool = below or entries
    return dict(min(pool, key=lambda e: _log_distance(e["epsilon"], epsilon)))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def _target_only_auc(
    encoder: Any, draw: Cohort, test: Cohort, epsilon: float, hp: dict[str, Any], seed: int
) -> float:
    """AUROC of a head trained on the simulated target alone (the guard's third candidate)."""
    import privacy as dp
    from graphxfer.anchoring import anchor_module, train_target_only
    from graphxfer.finetune import module_proba, person_index

    module, make_inputs, _ = encoder.fine_tunable(list(encoder.schema.features), random_state=seed)
    anchor_module(module)
    config = dp.PrivacyConfig(
        epsilon=epsilon,
        epochs=hp["epochs"],
        batch_size=min(draw.n_persons, hp["batch_size"]),
        learning_rate=hp["learning_rate"],
        max_grad_norm=hp["max_grad_norm"],
        optimizer=hp["optimizer"],
        # RDP calibrates fast; where it cannot reach so small an epsilon the candidate
        # counts as unable to win (NaN), and the guard leaves it out
        accountant="rdp",
    )
    try:
        alone = train_target_only(
            module,
            make_inputs(draw.X),
            draw.y,
            config,
            purposes=["simulation"],
            person_index=person_index(draw),
            person_level=True,  # the path of the real guard
        )
    except dp.UnreachableEpsilonError:
        return float("nan")  # the guard drops this candidate in the same case
    return _auc(test.y, module_proba(alone, make_inputs(test.X)))


def tune_private(
    source: Cohort,
    encoder: Any,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    epsilons: Iterable[float | None] = DEFAULT_EPSILONS,
    repeats: int = 2,
    max_folds: int = 3,
    grid: Sequence[tuple[float, int, float]] = PRIVATE_GRID,
    max_rows: int | None = 8_000,
    random_state: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose anchored fine-tuning hyper-parameters by simulating small targets on the source.

    Parameters
    ----------
    source : Cohort
        The source cohort the encoder was pretrained on (public to the target).
    encoder : Encoder
        The pretrained encoder. Its configuration (from ``metadata["selection"]`` when it was
        chosen by ``pretrain(source, "auto")``, else its name with the supervised objective)
        is pretrained again without each held-out site, so that the simulation never scores
        a site the model has seen.
    sizes : sequence of int
        Simulated target sizes.
    epsilons : iterable of float or None
        Simulated epsilons (``None``: without privacy).
    repeats : int, default=2
        Draws per held-out site and size.
    grid : sequence of (learning rate, epochs, alpha), default=PRIVATE_GRID
        Private settings tried (SGD, clipping bound 0.5, expected batch 60% of the records).
    max_rows : int or None, default=8000
        Larger sources are subsampled (by site and outcome, persons kept whole) for the
        simulation: it pretrains once per held-out part and only ranks settings.
    max_folds : int, default=3
        Held-out sites (or folds) used.
    random_state : int, default=0
    progress : bool, default=True

    Returns
    -------
    dict
        JSON-ready: ``{"method", "folds", "seconds", "entries": [{"n", "epsilon",
        "hyperparameters", "simulated", "prior", "table"}]}``.
    """
    from tqdm.auto import tqdm

    import privacy as dp
    from graphxfer.encoder import pretrain
    from graphxfer.selection import Candidate, Leaderboard, _subsample, source_folds
    from graphxfer.transfer import TransferClassifier

    if not source.has_target:
        raise GraphxferError("tune_private needs a source cohort with an outcome column")
    start = time.perf_counter()
    selection = encoder.metadata.get("selection")
    if selection:
        cand = Leaderboard.from_dict(selection).best
    else:
        cand = Candidate(encoder.name, "supervised", {})
    source = _subsample(source, max_rows, random_state)
    method, folds = source_folds(source, max_folds=max_folds, random_state=random_state)
    eps_list = list(epsilons)
    results: dict[tuple[int, float | None], dict[str, list[float]]] = {}
    specs: dict[tuple[int, float | None], dict[str, dict[str, Any]]] = {}
    bar = tqdm(total=len(folds), desc="simulating targets", disable=None if progress else True)
    for k, fold in enumerate(folds):
        enc = pretrain(
            source.subset(fold.train),
            cand.encoder,
            cand.objective,
            random_state=random_state,
            progress=False,
            **cand.params,
        )
        held = source.subset(fold.test)
        for n in sizes:
            if n > 0.6 * held.n_persons or min(np.bincount(held.y, minlength=2)) < 4:
                continue
            for r in range(repeats):
                seed = random_state + 1000 * k + r
                # n persons (all their rows), stratified by outcome, like a real target
                draw, test = held.split(held.n_persons - n, random_state=seed)
                zero_shot = _auc(test.y, enc.predict_proba(test))
                for eps in eps_list:
                    cell = results.setdefault((n, eps), {})
                    cell.setdefault("zero-shot", []).append(zero_shot)
                    settings: list[tuple[str, dict[str, Any]]]
                    if eps is None:
                        settings = [(f"alpha={a}", {"alpha": a}) for a in NON_PRIVATE_ALPHAS]
                    else:
                        settings = [
                            (
                                f"lr={lr} epochs={ep} alpha={a}",
                                {
                                    "optimizer": "sgd",
                                    "learning_rate": lr,
                                    "epochs": ep,
                                    "max_grad_norm": 0.5,
                                    "batch_size": default_hyperparameters(n)["batch_size"],
                                    "alpha": a,
                                },
                            )
                            for lr, ep, a in grid
                        ]
                    for label, hp in settings:
                        privacy = None
                        if eps is not None:
                            fields = {k2: v for k2, v in hp.items() if k2 != "alpha"}
                            # the RDP accountant calibrates in a fraction of PRV's time and
                            # errs on the side of more noise; a simulation only ranks settings
                            privacy = dp.PrivacyConfig(
                                epsilon=eps * _GUARD_KEEP,
                                accountant="rdp",
                                **fields,
                            )
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            clf = TransferClassifier(
                                enc,
                                privacy=privacy,
                                dp_hyperparameters="config",
                                alpha=hp["alpha"],
                                check_transfer=False,
                                random_state=seed,
                            ).fit(draw)
                        auc = _auc(test.y, clf.predict_proba(test)[:, 1])
                        cell.setdefault(label, []).append(auc)
                        specs.setdefault((n, eps), {})[label] = hp
                    if eps is not None:
                        best_hp = default_hyperparameters(n)
                        auc_to = _target_only_auc(
                            enc, draw, test, eps * (1 - _GUARD_KEEP) / 2, best_hp, seed
                        )
                        cell.setdefault("target-only", []).append(auc_to)
        bar.update(1)
    bar.close()
    entries = []
    for (n, eps), cell in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1] or 1e9)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
            means = {label: float(np.nanmean(v)) for label, v in cell.items() if len(v)}
        labels = [label for label in means if label in specs.get((n, eps), {})]
        if not labels:
            continue
        best = max(labels, key=lambda label: means[label])
        simulated = {"fine-tuned": means[best], "zero-shot": means["zero-shot"]}
        if "target-only" in means:
            simulated["target-only"] = means["target-only"]
        top = max(v for v in simulated.values() if not math.isnan(v))
        prior = {
            c: 0.0 if math.isnan(v) else float(math.exp((v - top) / _PRIOR_TEMPERATURE))
            for c, v in simulated.items()
        }
        entries.append({
            "n": int(n),
            "epsilon": eps,
            "hyperparameters": dict(specs[(n, eps)][best]),
            # JSON has no NaN: a candidate that could not be trained is None
            "simulated": {c: None if math.isnan(v) else v for c, v in simulated.items()},
            "prior": prior,
            "table": {
                label: None if math.isnan(means[label]) else means[label] for label in labels
            },
        })  # fmt: skip
    return {
        "method": f"{method} on the source, {repeats} draws per held-out part",
        "folds": [f.to_dict() for f in folds],
        "candidate": cand.to_dict(),
        "seconds": time.perf_counter() - start,
        "entries": entries,
    }
