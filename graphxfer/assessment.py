"""Measurements of a fitted transfer model on private records: metrics and a privacy audit.

Functions that take a fitted model and return their results without changing it. They read
private records without differential privacy, so their results are not covered by epsilon:
:meth:`TransferClassifier.add_metrics <graphxfer.TransferClassifier.add_metrics>` and
:meth:`~graphxfer.TransferClassifier.audit` keep them for the evaluation file
(:func:`graphxfer.release.evaluation_record`), never for the model file.
"""

from __future__ import annotations

from typing import Any

from graphxfer.release import fit_privacy

__all__ = ["audit_model", "measure"]


def _labelled(model: Any, X: Any, y: Any = None) -> Any:
    """``X`` (with ``y``) as a cohort with outcomes in the encoder's terms."""
    model._check_fitted()
    return model.adapter_.to_cohort(X, y, need_target=True, training=False)


def measure(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    on: str = "held-out",
    n_boot: int = 500,
    random_state: int | None = 0,
) -> list[dict[str, Any]]:
    """AUROC, AUPRC, Brier score and ECE of ``model`` on ``X``, with 95% bootstrap CIs.

    Parameters
    ----------
    model : TransferClassifier
        A fitted model; it is not modified.
    X : Cohort, DataFrame or array
        Records with outcomes.
    y : array-like, optional
        Outcomes when ``X`` is not a Cohort.
    on : str, default="held-out"
        What the records are (``"held-out"``, ``"training"``, ``"external"``...).
    n_boot : int, default=500
    random_state : int or None, default=0

    Returns
    -------
    list of dict
        ``{name, value, ci_low, ci_high, on, n, private}`` per metric; ``private`` is False:
        the records were read without differential privacy.
    """
    from graphxfer.evaluate.metrics import METRICS, bootstrap_ci

    cohort = _labelled(model, X, y)
    p = model.predict_proba(cohort)[:, 1]
    out = []
    for name in METRICS:
        value, lo, hi = bootstrap_ci(cohort.y, p, name, n_boot=n_boot, random_state=random_state)
        out.append({
            "name": name, "value": value, "ci_low": lo, "ci_high": hi,
            "on": on, "n": len(cohort), "private": False,
        })  # fmt: skip
    return out


def audit_model(
    model: Any, members: Any, nonmembers: Any, *, confidence: float = 0.95
) -> dict[str, Any]:
    """Empirical membership-inference audit of ``model``.

    A loss-threshold attack tries to tell the training records (``members``) from records of
    the same population never trained on (``nonmembers``). It reports the attack's AUROC and
    an epsilon lower bound (Clopper-Pearson, ``confidence``); a DP model passes when the bound
    does not exceed its epsilon (this fit's, from ``fit_ledger_``).

    Parameters
    ----------
    model : TransferClassifier
        A fitted model; it is not modified.
    members, nonmembers : Cohort, DataFrame or array
        Training records and records never trained on, with outcomes.
    confidence : float, default=0.95

    Returns
    -------
    dict
        :class:`privacy.AuditResult` fields.
    """
    from privacy import membership_inference_audit

    mem = _labelled(model, members)
    non = _labelled(model, nonmembers)
    claimed = None
    delta = 0.0
    guarantee = fit_privacy(model)
    if guarantee is not None:
        claimed, delta = guarantee["epsilon"], guarantee["delta"]
    result = membership_inference_audit(
        model.predict_proba(mem)[:, 1],
        mem.y,
        model.predict_proba(non)[:, 1],
        non.y,
        claimed_epsilon=claimed,
        delta=delta,
        confidence=confidence,
    )
    return result.to_dict()
