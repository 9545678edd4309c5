"""The facts of a fitted model that the console and the report both state.

:func:`fit_summary` reads them once from what the fit releases (``model.model_card()``: the
strategy and hyper-parameters, the privacy guarantee and ledger, the negative-transfer check or
private transfer guard) and from the model's reference data (``background_`` and the source
summary its encoder records). :func:`summary_lines` words them; ``graphxfer demo`` prints those
lines and the report shows the same lines, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["GUARD_PURPOSE", "fit_summary", "summary_lines", "transfer_verdict"]

GUARD_PURPOSE = "transfer-guard"
"""Ledger entries whose purpose starts with this are the private transfer guard's releases."""

_HYPERPARAMETER_WORDS = (
    ("learning_rate", "learning rate {}"),
    ("epochs", "{} epochs"),
    ("batch_size", "batch {}"),
    ("max_grad_norm", "clipping {}"),
    ("optimizer", "optimizer {}"),
    ("alpha", "prior strength {}"),
)


def fit_summary(model: Any, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The released facts of a fitted model, as one JSON-ready dict.

    Parameters
    ----------
    model : fitted model
        A :class:`~graphxfer.TransferClassifier` or any model; parts it does not record are
        ``None``.
    card : dict, optional
        ``model.model_card()`` when the caller already has it.

    Returns
    -------
    dict
        ``strategy``, ``hyperparameters`` (the public fine-tuning settings and where they come
        from), ``privacy`` (this fit's epsilon, delta, accountant and ledger entries, or
        ``None``), ``transfer_check`` (:func:`transfer_verdict`) and ``reference`` (the
        explanations' reference data, or ``None``). Under privacy every figure is public or an
        accounted release: the same facts as the model file.
    """
    if card is None:
        own = getattr(model, "model_card", None)
        card = own() if callable(own) else None
    card = dict(card or {})
    privacy = card.get("privacy") if isinstance(card.get("privacy"), Mapping) else None
    hyper = card.get("hyperparameters")
    return {
        "strategy": card.get("strategy"),
        "hyperparameters": dict(hyper) if isinstance(hyper, Mapping) else None,
        "privacy": _privacy(privacy),
        "transfer_check": transfer_verdict(card.get("transfer_check"), privacy),
        "reference": _reference(model),
    }


def transfer_verdict(check: Any, privacy: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The negative-transfer check (or private transfer guard) as a verdict and one line.

    Parameters
    ----------
    check : dict or None
        ``model.transfer_check_`` (the model card's ``transfer_check``).
    privacy : dict, optional
        The model card's ``privacy``: under privacy the guard's epsilon is read from its
        ledger entries (purpose ``transfer-guard:...``).

    Returns
    -------
    dict
        ``status`` (``"passed"``, ``"failed"``, ``"not run"`` or ``"not available"``),
        ``line`` (``"Negative-transfer check: ..."``) and, for the private guard, ``chosen``,
        ``candidates`` and ``epsilon`` (per ledger purpose).
    """
    title = "Negative-transfer check"
    if not isinstance(check, Mapping):
        return {
            "status": "not available",
            "line": f"{title}: not available (the model records no check)",
        }
    if check.get("ran") is False:
        reason = check.get("reason") or "no reason recorded"
        return {"status": "not run", "line": f"{title}: not run ({reason})"}
    passed = check.get("passed")
    if check.get("private"):
        chosen = str(check.get("chosen"))
        candidates = [str(c) for c in check.get("candidates") or []]
        if passed is None:
            passed = chosen == "fine-tuned"
        costs = _guard_costs(privacy)
        spent = "; ".join(f"ε {eps:.3g} for {purpose}" for purpose, eps in costs.items())
        if not costs:
            spent = "no ε spent: there was nothing to choose"
        total = privacy.get("epsilon") if privacy else None
        of_total = "" if total is None else f" of this fit's ε {float(total):.3g}"
        verdict = "passed" if passed else "FAILED"
        what = f"the private guard shipped the {chosen} model"
        if not passed:
            what += " instead of the fine-tuned one"
        line = (
            f"{title}: {verdict}: {what} (candidates {', '.join(candidates) or '-'}; "
            f"{check.get('method') or 'differentially private selection'}; {spent}{of_total}, "
            "from the privacy ledger)"
        )
        return {
            "status": "passed" if passed else "failed",
            "line": line,
            "chosen": chosen,
            "candidates": candidates,
            "epsilon": costs,
        }
    if check.get("verdict") == "inconclusive":
        t_auc = float(check.get("transfer_auc") or 0.0)
        b_auc = float(check.get("baseline_auc") or 0.0)
        se = float(check.get("standard_error") or 0.0)
        baseline = check.get("baseline") or "target-only"
        line = (
            f"{title}: inconclusive (AUROC of the transferred model {t_auc:.3f} "
            f"< target-only {baseline} baseline {b_auc:.3f}, a gap within two "
            f"standard errors ({2 * se:.3f}); the transferred model was kept"
            + (f"; {check['method']}" if check.get("method") else "")
            + ")"
        )
        return {"status": "inconclusive", "line": line}
    if passed is None:
        return {"status": "not available", "line": f"{title}: ran, but records no verdict"}
    verdict = "passed" if passed else "FAILED"
    parts = []
    transfer_auc, baseline_auc = check.get("transfer_auc"), check.get("baseline_auc")
    if transfer_auc is not None and baseline_auc is not None:
        baseline = check.get("baseline")
        against = f"target-only {baseline} baseline" if baseline else "target-only baseline"
        relation = ">=" if passed else "<"
        parts.append(
            f"AUROC of the transferred model {float(transfer_auc):.3f} {relation} "
            f"{against} {float(baseline_auc):.3f}"
        )
    if check.get("method"):
        parts.append(str(check["method"]))
    if check.get("action") not in (None, "none"):
        parts.append(f"action: {check['action']}")
    detail = f" ({'; '.join(parts)})" if parts else ""
    return {"status": "passed" if passed else "failed", "line": f"{title}: {verdict}{detail}"}


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The facts of :func:`fit_summary` in words, one line each (console and report)."""
    lines = [_fine_tuning_line(summary.get("strategy"), summary.get("hyperparameters"))]
    privacy = summary.get("privacy")
    if privacy:
        lines.append(
            f"Differential privacy: ε = {privacy['epsilon']:.3g}, δ = {privacy['delta']:.3g} "
            f"for this fit ({privacy.get('accountant') or 'accountant not recorded'}; "
            f"{privacy['entries']} ledger entries)"
        )
    else:
        lines.append("Differential privacy: none recorded (the fit is not private)")
    lines.append(str(summary["transfer_check"]["line"]))
    reference = summary.get("reference")
    lines.append(
        "Reference data of the explanations: "
        + (reference["text"] if reference else "none recorded with the model")
    )
    return lines


def _fine_tuning_line(strategy: Any, hyper: Mapping[str, Any] | None) -> str:
    head = f"Fine-tuning: strategy {strategy}" if strategy else "Fine-tuning: not recorded"
    if not hyper:
        return head
    settings = [
        words.format(_number(hyper[key])) for key, words in _HYPERPARAMETER_WORDS if key in hyper
    ]
    source = hyper.get("source") or hyper.get("alpha_source")
    text = head
    if settings:
        text += f"; hyper-parameters ({source})" if source else "; hyper-parameters"
        text += ": " + ", ".join(settings)
    split = [
        f"{label} {float(hyper[key]):.3g}"
        for key, label in (
            ("epsilon_fine_tune", "fine-tuning"),
            ("epsilon_guard_target_only", "guard's target-only candidate"),
            ("epsilon_guard_selection", "guard's selection"),
        )
        if hyper.get(key)
    ]
    if split:
        text += "; ε planned for " + ", ".join(split)
    return text


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _privacy(privacy: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if privacy is None or privacy.get("epsilon") is None:
        return None
    ledger = [e for e in privacy.get("ledger") or [] if isinstance(e, Mapping)]
    return {
        "epsilon": float(privacy["epsilon"]),
        "delta": float(privacy.get("delta") or 0.0),
        "accountant": privacy.get("accountant"),
        "entries": len(ledger),
        "guard": _guard_costs(privacy),
    }


def _guard_costs(privacy: Mapping[str, Any] | None) -> dict[str, float]:
    """Epsilon of each of the guard's ledger entries, by purpose (this fit's entries)."""
    costs: dict[str, float] = {}
    if not privacy:
        return costs
    for entry in privacy.get("ledger") or []:
        if not isinstance(entry, Mapping):
            continue
        purpose = str(entry.get("purpose") or "")
        if purpose.startswith(GUARD_PURPOSE):
            costs[purpose] = costs.get(purpose, 0.0) + float(entry.get("epsilon") or 0.0)
    return costs


def _reference(model: Any) -> dict[str, Any] | None:
    """What the model's explanations are measured against by default (``background_``)."""
    from graphxfer.transfer import TransferClassifier

    background = getattr(model, "background_", None)
    if background is None:
        return None
    n = len(background)
    source = getattr(getattr(model, "encoder_", None), "source_summary", None)
    if not isinstance(model, TransferClassifier) or not isinstance(source, Mapping):
        return {"n": n, "source": None, "text": f"the model's background_ ({n:,} records)"}
    # a TransferClassifier draws its background_ from the marginals its encoder records
    name = source.get("name") or "unnamed"
    sites = source.get("sites")
    where = f"{int(source.get('n_rows') or 0):,} records"
    if isinstance(sites, Mapping) and sites:
        where += "; sites " + ", ".join(map(str, sites))
    text = (
        f"{n:,} synthetic records drawn column by column from the distributions of the source "
        f"cohort {name} ({where}) that the encoder records; no source record is shipped"
    )
    return {"n": n, "source": name, "sites": _names(sites), "text": text}


def _names(sites: Any) -> list[str] | None:
    if isinstance(sites, Mapping):
        return [str(s) for s in sites]
    if isinstance(sites, Sequence) and not isinstance(sites, str):
        return [str(s) for s in sites]
    return None
