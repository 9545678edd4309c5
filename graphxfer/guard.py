"""The negative-transfer guard of a fit: is the transferred model better than the alternatives?

- Under differential privacy (:func:`private_guard`): a DP choice between the zero-shot source
  model, the DP fine-tuned model and, where the encoder's presets show it can win, a DP
  target-only head; its epsilon is part of the fit's budget and recorded in the ledger.
- Without privacy (:func:`cross_fit_check`): the transferred model against a target-only
  baseline, by cross-fitting on the training records. The baseline must be ahead by more than
  :data:`CHECK_MARGIN_SE` bootstrap standard errors of the AUROC difference for the check to
  fail (a smaller gap is *inconclusive*: the transferred model is kept, without a warning);
  with ``on_negative_transfer="fallback"`` a failed check makes the baseline predict.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferWarning, NegativeTransferWarning
from graphxfer.finetune import FitLedger, fit_aligned, module_proba, person_index
from graphxfer.schema import Column

__all__ = [
    "CHECK_MARGIN_SE",
    "TransferCheckSkippedWarning",
    "compare_aurocs",
    "cross_fit_check",
    "guard_requested",
    "make_baseline",
    "private_guard",
    "run_guard",
]


_STACKLEVEL = 4  # warnings name the caller of fit (through run_guard and fit)

CHECK_MARGIN_SE = 2.0
"""A cross-fitted check fails only when the baseline's AUROC is ahead by more than this many
standard errors of the difference (about a 95% two-sided interval): with a few dozen events,
cross-fitted AUROCs differ by several hundredths by chance, and falling back to the baseline
on such a gap would often replace the better model."""

_N_BOOTSTRAP = 200


class TransferCheckSkippedWarning(GraphxferWarning):
    """The negative-transfer check was not run (e.g. under differential privacy)."""


def guard_requested(model: Any) -> bool:
    """Whether a fit of ``model`` runs the guard: ``check_transfer``, or by default under
    privacy with the ``anchored`` strategy (which the private guard needs)."""
    if model.check_transfer is None:
        return model.privacy is not None and model.strategy == "anchored"
    return bool(model.check_transfer)


def run_guard(
    model: Any,
    encoder: Encoder,
    fitted: tuple[Encoder, Any, Any],
    aligned: Cohort,
    columns: list[Column],
    plan: dict[str, Any],
    ledger: FitLedger | None,
) -> tuple[dict[str, Any] | None, Any]:
    """The guard of a fit of ``model``, where :func:`guard_requested`.

    Parameters
    ----------
    model : TransferClassifier
        Read for its parameters.
    encoder : Encoder
        The pretrained encoder (cross-fitting fine-tunes copies of it).
    fitted : tuple
        The fit's adapted encoder, network and input builder (:func:`fit_aligned`); under
        privacy the chosen candidate is loaded into the network.
    aligned, columns, plan :
        The aligned training records, the columns the network reads, and the plan.
    ledger : FitLedger or None
        The fit's ledger (under privacy).

    Returns
    -------
    check : dict or None
        The transfer check as the model card shows it; None when no guard ran.
    fallback : estimator or None
        See :func:`cross_fit_check`.
    """
    if not guard_requested(model):
        return None, None
    adapted, module, make_inputs = fitted
    if ledger is not None:
        source = adapted.source_head is not None
        check = private_guard(
            model, module, make_inputs, aligned, columns, plan, ledger, has_source_model=source
        )
        return check, None
    return cross_fit_check(model, encoder, aligned, columns)


def private_guard(
    model: Any,
    module: Any,
    make_inputs: Any,
    aligned: Cohort,
    columns: list[Column],
    plan: dict[str, Any],
    ledger: FitLedger,
    *,
    has_source_model: bool,
) -> dict[str, Any]:
    """Differentially private choice of the model to ship; loads it into ``module``.

    Candidates: the zero-shot source model (the anchored model with a zero correction;
    ``has_source_model``), the DP fine-tuned model and, unless the presets show it cannot win,
    a head trained on the target alone with DP-SGD. The exponential mechanism picks one with
    utility minus the summed Brier score over the training persons (each person's mean over
    their rows, in [0, 1], so one person changes a utility by at most 1, and all utilities
    move the same way: monotone), with the presets' simulated prior as a public base measure.

    Returns
    -------
    dict
        The transfer check as the model card shows it.
    """
    import privacy as dp
    from graphxfer.anchoring import train_target_only
    from privacy.selection import exponential_mechanism

    if not plan.get("guard"):
        reason = (
            "under differential privacy the negative-transfer guard needs "
            f"strategy='anchored' (got {model.strategy!r})"
        )
        warnings.warn(
            f"the negative-transfer check was skipped: {reason}; compare on held-out data "
            "with graphxfer.evaluate.transfer_curve instead",
            TransferCheckSkippedWarning,
            stacklevel=_STACKLEVEL,
        )
        return {"ran": False, "reason": reason}
    inputs = make_inputs(aligned.X[[c.name for c in columns]])
    y = aligned.y.astype(float)
    states: dict[str, dict[str, Any]] = {"fine-tuned": copy.deepcopy(module.state_dict())}
    zero = copy.deepcopy(states["fine-tuned"])
    zero["head.correction.weight"].zero_()
    zero["head.correction.bias"].zero_()
    if has_source_model:  # else there is no source model to ship
        states["zero-shot"] = zero
    persons = person_index(aligned)
    eps_to = float(plan["epsilon_target_only"])
    if eps_to > 0:
        config = dataclasses.replace(plan["config"], epsilon=eps_to)
        try:
            alone = train_target_only(
                module,
                inputs,
                y,
                config,
                purposes=["transfer-guard:target-only"],
                person_index=persons,
                person_level=True,
                ledger=ledger.ledger,
                data_id=ledger.data_id,
                device=model.device,
            )
        except dp.UnreachableEpsilonError:
            # refused before any step (nothing spent): the candidate is left out
            eps_to = 0.0
        else:
            states["target-only"] = copy.deepcopy(alone.state_dict())
    names = list(states)
    prior_map = plan.get("prior") or {}
    prior = [float(prior_map.get(name, 1.0)) for name in names]
    eps_sel = float(plan["epsilon_selection"])
    if len(names) == 1:  # nothing to choose: no target record is read, nothing spent
        choice, eps_sel = names[0], 0.0
    else:
        scratch = copy.deepcopy(module)
        utilities = []
        for name in names:
            scratch.load_state_dict(states[name])
            brier = (module_proba(scratch, inputs) - y) ** 2
            per_person = pd.Series(brier).groupby(np.asarray(persons)).mean()
            utilities.append(-float(per_person.sum()))
        choice = names[
            exponential_mechanism(
                utilities, epsilon=eps_sel, sensitivity=1.0, monotone=True, prior=prior
            )
        ]
        ledger.ledger.append(
            dp.LedgerEntry(
                mechanism="exponential-mechanism",
                epsilon=eps_sel,
                delta=0.0,
                data_id=ledger.data_id,
                purpose="transfer-guard:selection",
                n_records=int(aligned.n_persons),
                unit="person",
            )
        )
    module.load_state_dict(states[choice])
    module.eval()
    return {
        "ran": True,
        "private": True,
        "method": "exponential mechanism over the training records' Brier score",
        "candidates": names,
        "prior": dict(zip(names, prior)),
        "chosen": choice,
        "epsilon_selection": eps_sel,
        "epsilon_target_only": eps_to,
        "passed": choice == "fine-tuned",
        "action": "shipped " + choice,
    }


def cross_fit_check(
    model: Any, encoder: Encoder, aligned: Cohort, columns: list[Column]
) -> tuple[dict[str, Any], Any]:
    """The transferred model against a target-only baseline, by cross-fitting (no privacy).

    Returns
    -------
    check : dict
        The transfer check as the model card shows it.
    fallback : estimator or None
        The baseline fitted on all records, after a failed check with
        ``on_negative_transfer="fallback"``.
    """
    from sklearn.model_selection import StratifiedKFold

    y = aligned.y
    n_splits = int(min(3, np.bincount(y).min()))
    if n_splits < 2:
        return {"ran": False, "reason": "too few records of one class"}, None
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=model.random_state)
    oof_transfer = np.zeros(len(y))
    oof_base = np.zeros(len(y))
    X = aligned.X[[c.name for c in columns]]
    for k, (tr, te) in enumerate(folds.split(np.zeros(len(y)), y)):
        seed = None if model.random_state is None else model.random_state + 1 + k
        _, module, make_inputs, _ = fit_aligned(
            model, encoder, aligned.subset(tr), columns, random_state=seed, progress=False
        )
        oof_transfer[te] = module_proba(module, make_inputs(X.iloc[te]))
        base = make_baseline(model.baseline, seed).fit(X.iloc[tr], y[tr])
        oof_base[te] = base.predict_proba(X.iloc[te])[:, 1]
    auc_t, auc_b, se, verdict = compare_aurocs(
        y, oof_transfer, oof_base, random_state=model.random_state
    )
    passed = None if verdict == "inconclusive" else verdict == "passed"
    action = "none"
    fallback = None
    if verdict == "failed":
        action = "fallback" if model.on_negative_transfer == "fallback" else "warned"
        warnings.warn(
            f"negative transfer: cross-fitted AUROC of the transferred model {auc_t:.3f} is "
            f"below the target-only {model.baseline} baseline {auc_b:.3f} by more than "
            f"{CHECK_MARGIN_SE:g} standard errors ({CHECK_MARGIN_SE * se:.3f})"
            + (
                "; predictions now come from the baseline"
                if action == "fallback"
                else "; consider the baseline or another strategy"
            ),
            NegativeTransferWarning,
            stacklevel=_STACKLEVEL,
        )
        if action == "fallback":
            fallback = make_baseline(model.baseline, model.random_state).fit(X, y)
    check = {
        "ran": True,
        "method": f"{n_splits}-fold cross-fitting on the target training data",
        "transfer_auc": auc_t,
        "baseline": model.baseline,
        "baseline_auc": auc_b,
        "standard_error": se,
        "verdict": verdict,
        "passed": passed,
        "action": action,
    }
    return check, fallback


def compare_aurocs(
    y: np.ndarray,
    transfer: np.ndarray,
    baseline: np.ndarray,
    *,
    random_state: int | None = None,
) -> tuple[float, float, float, str]:
    """The AUROCs of two sets of predictions of the same records and the verdict of the check.

    Parameters
    ----------
    y : array of 0/1
    transfer, baseline : array
        Predictions of the transferred model and of the target-only baseline.
    random_state : int, optional
        Seeds the bootstrap.

    Returns
    -------
    auc_transfer, auc_baseline, standard_error, verdict
        ``standard_error`` of the difference, over 200 paired bootstrap resamples stratified by
        outcome; ``verdict`` is ``"passed"`` (the transfer is at least as good), ``"failed"``
        (the baseline is ahead by more than :data:`CHECK_MARGIN_SE` standard errors) or
        ``"inconclusive"`` (ahead by less).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 0, 1, 1, 1] * 20)
    >>> good = y + np.random.default_rng(0).normal(0, 0.5, len(y))
    >>> compare_aurocs(y, good, -good, random_state=0)[3]
    'passed'
    >>> compare_aurocs(y, -good, good, random_state=0)[3]
    'failed'
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    auc_t = float(roc_auc_score(y, transfer))
    auc_b = float(roc_auc_score(y, baseline))
    from graphxfer.evaluate.metrics import stratified_resamples

    draws = stratified_resamples(
        y, {"all": np.arange(len(y))}, n_boot=_N_BOOTSTRAP, random_state=random_state
    )
    differences = [
        roc_auc_score(y[d["all"]], transfer[d["all"]])
        - roc_auc_score(y[d["all"]], baseline[d["all"]])
        for d in draws
    ]
    se = float(np.std(differences, ddof=1))
    if auc_t >= auc_b:
        verdict = "passed"
    elif auc_b - auc_t > CHECK_MARGIN_SE * se:
        verdict = "failed"
    else:
        verdict = "inconclusive"
    return auc_t, auc_b, se, verdict


def make_baseline(kind: str, seed: int | None) -> Any:
    """The target-only baseline of the check: ``"logistic"`` or ``"xgboost"``."""
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    if kind == "logistic":
        return LogisticBaseline()
    return XGBoostBaseline(n_estimators=100, max_depth=3, random_state=seed)
