"""Empirical privacy audits: measure what a released model leaks about its training records.

An epsilon computed by an accountant is a promise; an audit checks it from the outside
(DESIGN §4.6). Two audits are provided:

* :func:`membership_inference_audit` - the loss-threshold membership-inference attack on a
  released model: it scores each record by the model's log-probability of the record's true
  label; training records (members) tend to score higher than held-out records (non-members).
* :func:`canary_audit` - inserts canaries (records with flipped labels) into the training data,
  each with probability one half, trains through a caller-given ``train_fn`` and attacks the
  canaries, the worst-case records an attacker could plant.

Both report the attack's ROC AUC and an empirical lower bound on epsilon: any
(epsilon, delta)-DP training satisfies ``TPR <= exp(epsilon) * FPR + delta`` for every attack
(Kairouz et al., 2015), so for each threshold ``log((TPR_lo - delta) / FPR_hi)`` (and the same
with the roles of the two error types swapped) is a lower bound on epsilon, where ``TPR_lo``
and ``FPR_hi`` are one-sided Clopper-Pearson bounds. A Bonferroni correction over all the
thresholds tried makes the overall bound hold with the stated confidence. A sound DP model
never has a lower bound above its epsilon (up to the 1 - confidence error rate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from privacy._utils import RandomState, check_random_state
from privacy.exceptions import InputDataError, PrivacyConfigError

__all__ = [
    "AuditResult",
    "canary_audit",
    "empirical_epsilon_lower_bound",
    "membership_inference_audit",
]


@dataclass(frozen=True)
class AuditResult:
    """Outcome of an empirical privacy audit.

    Attributes
    ----------
    attack_auc : float
        ROC AUC of the membership attack (0.5 = no better than guessing).
    eps_lower_bound : float
        Epsilon that the training must at least have, with probability ``confidence``.
    n_members, n_nonmembers : int
    claimed_epsilon : float or None
        Epsilon stated by the accountant (``None`` for a non-private model).
    delta : float
    confidence : float
    threshold : float or None
        Attack threshold (on the log-probability score) that gave the bound.
    tpr, fpr : float
        Point estimates of the attack's true and false positive rates at that threshold.
    method : str
        ``"loss-threshold"`` or ``"canary"``.
    passed : bool or None
        ``eps_lower_bound <= claimed_epsilon``; ``None`` when nothing was claimed.
    """

    attack_auc: float
    eps_lower_bound: float
    n_members: int
    n_nonmembers: int
    claimed_epsilon: float | None
    delta: float
    confidence: float
    threshold: float | None
    tpr: float
    fpr: float
    method: str
    passed: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of all fields."""
        return asdict(self)


def _auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([members, nonmembers]))
    m, k = len(members), len(nonmembers)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * k))


def _cp_lower(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    from scipy.stats import beta

    lo = beta.ppf(alpha, successes, trials - successes + 1)
    return np.where(successes == 0, 0.0, lo)


def _cp_upper(successes: np.ndarray, trials: int, alpha: float) -> np.ndarray:
    from scipy.stats import beta

    hi = beta.ppf(1 - alpha, successes + 1, trials - successes)
    return np.where(successes == trials, 1.0, hi)


def _check_scores(name: str, scores: Any) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(arr) == 0:
        raise InputDataError(f"{name} is empty; an audit needs records on both sides.")
    if np.isnan(arr).any():
        raise InputDataError(f"{name} holds NaN scores; check the model's predictions.")
    return arr


def empirical_epsilon_lower_bound(
    member_scores: Any,
    nonmember_scores: Any,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    max_thresholds: int = 64,
) -> tuple[float, float | None, float, float]:
    """Lower bound on epsilon from a membership attack's scores (higher = "member").

    Parameters
    ----------
    member_scores, nonmember_scores : array-like
    delta : float, default=0.0
    confidence : float, default=0.95
        Probability that the bound holds, jointly over all thresholds tried.
    max_thresholds : int, default=64
        Thresholds tried (quantiles of the pooled scores); more thresholds, wider intervals.

    Returns
    -------
    (eps_lower_bound, threshold, tpr, fpr)
        ``threshold`` is ``None`` when no threshold gives a positive bound.

    Examples
    --------
    >>> eps, *_ = empirical_epsilon_lower_bound([1.0] * 200, [0.0] * 200)
    >>> 2.0 < eps < 5.0
    True
    >>> empirical_epsilon_lower_bound([0.0, 1.0] * 100, [0.0, 1.0] * 100)[0]
    0.0
    """
    if not 0 < confidence < 1:
        raise PrivacyConfigError(f"confidence must be in (0, 1), got {confidence!r}.")
    if not 0 <= delta < 1:
        raise PrivacyConfigError(f"delta must be in [0, 1), got {delta!r}.")
    members = _check_scores("member_scores", member_scores)
    nonmembers = _check_scores("nonmember_scores", nonmember_scores)
    m, k = len(members), len(nonmembers)
    pooled = np.concatenate([members, nonmembers])
    levels = np.linspace(0, 1, max_thresholds + 2)[1:-1]
    thresholds = np.unique(np.quantile(pooled, levels, method="higher"))
    # Two one-sided intervals per bound, two bounds per threshold.
    alpha = (1 - confidence) / (4 * len(thresholds))
    tp = (members[None, :] >= thresholds[:, None]).sum(axis=1)
    fp = (nonmembers[None, :] >= thresholds[:, None]).sum(axis=1)
    tpr_lo, fpr_hi = _cp_lower(tp, m, alpha), _cp_upper(fp, k, alpha)
    tnr_lo, fnr_hi = _cp_lower(k - fp, k, alpha), _cp_upper(m - tp, m, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound_a = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
        bound_b = np.log(np.maximum(tnr_lo - delta, 0.0) / fnr_hi)
    bounds = np.maximum(bound_a, bound_b)
    bounds = np.where(np.isfinite(bounds), bounds, -np.inf)
    best = int(np.argmax(bounds))
    eps = float(bounds[best])
    if not eps > 0:
        return 0.0, None, float(tp[best] / m), float(fp[best] / k)
    return eps, float(thresholds[best]), float(tp[best] / m), float(fp[best] / k)


def _true_label_log_proba(name: str, proba: Any, labels: Any) -> np.ndarray:
    p = _as_numpy(proba).astype(np.float64)
    y = _as_numpy(labels).reshape(-1)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim == 1:
        if len(p) != len(y):
            raise InputDataError(f"{name}: {len(p)} probabilities for {len(y)} labels.")
        picked = np.where(y.astype(np.int64) == 1, p, 1.0 - p)
    elif p.ndim == 2:
        if p.shape[0] != len(y):
            raise InputDataError(f"{name}: {p.shape[0]} probability rows for {len(y)} labels.")
        idx = y.astype(np.int64)
        if idx.min() < 0 or idx.max() >= p.shape[1]:
            raise InputDataError(
                f"{name}: labels must be class numbers 0..{p.shape[1] - 1}, got "
                f"{idx.min()}..{idx.max()}."
            )
        picked = p[np.arange(len(idx)), idx]
    else:
        raise InputDataError(
            f"{name}: probabilities must have shape (n,) (positive class) or (n, n_classes), "
            f"got {p.shape}."
        )
    return np.log(np.clip(picked, 1e-12, 1.0))


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _result(
    members: np.ndarray,
    nonmembers: np.ndarray,
    *,
    claimed_epsilon: float | None,
    delta: float,
    confidence: float,
    method: str,
) -> AuditResult:
    if claimed_epsilon is not None and not claimed_epsilon > 0:
        raise PrivacyConfigError(f"claimed_epsilon must be > 0 or None, got {claimed_epsilon!r}.")
    eps, threshold, tpr, fpr = empirical_epsilon_lower_bound(
        members, nonmembers, delta=delta, confidence=confidence
    )
    return AuditResult(
        attack_auc=_auc(members, nonmembers),
        eps_lower_bound=eps,
        n_members=len(members),
        n_nonmembers=len(nonmembers),
        claimed_epsilon=None if claimed_epsilon is None else float(claimed_epsilon),
        delta=float(delta),
        confidence=float(confidence),
        threshold=threshold,
        tpr=tpr,
        fpr=fpr,
        method=method,
        passed=None if claimed_epsilon is None else bool(eps <= claimed_epsilon),
    )


def membership_inference_audit(
    member_proba: Any,
    member_labels: Any,
    nonmember_proba: Any,
    nonmember_labels: Any,
    *,
    claimed_epsilon: float | None = None,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> AuditResult:
    """Loss-threshold membership inference on a released model.

    Parameters
    ----------
    member_proba : array-like of shape (n_members,) or (n_members, n_classes)
        The model's predicted probabilities on its training records (positive-class
        probability for binary models).
    member_labels : array-like of shape (n_members,)
        Their true labels (class numbers).
    nonmember_proba, nonmember_labels :
        The same for held-out records from the same population, never trained on.
    claimed_epsilon : float, optional
        The epsilon the accountant reported; sets ``passed``.
    delta : float, default=0.0
        The delta of the claim.
    confidence : float, default=0.95

    Returns
    -------
    AuditResult
    """
    members = _true_label_log_proba("member_proba", member_proba, member_labels)
    nonmembers = _true_label_log_proba("nonmember_proba", nonmember_proba, nonmember_labels)
    return _result(
        members,
        nonmembers,
        claimed_epsilon=claimed_epsilon,
        delta=delta,
        confidence=confidence,
        method="loss-threshold",
    )


def _take(x: Any, idx: np.ndarray) -> Any:
    if hasattr(x, "detach"):
        import torch

        return x[torch.as_tensor(idx, dtype=torch.long)]
    return np.asarray(x)[idx]


def _concat(a: Any, b: Any) -> Any:
    if hasattr(a, "detach"):
        import torch

        return torch.cat([a, b])
    return np.concatenate([a, b])


def canary_audit(
    train_fn: Callable[[Any, Any], Callable[[Any], Any]],
    X: Any,
    y: Any,
    *,
    n_canaries: int = 50,
    claimed_epsilon: float | None = None,
    delta: float = 0.0,
    confidence: float = 0.95,
    random_state: RandomState = None,
) -> AuditResult:
    """Audit a training procedure with label-flipped canaries.

    ``2 * n_canaries`` records are drawn from ``(X, y)`` and their labels flipped; a random half
    of them is kept in the training data (members), the other half is removed (non-members).
    ``train_fn`` trains on the result and returns a ``predict_proba`` function; the attack
    scores each canary by the log-probability of its *flipped* label. Run it once with a
    private and once with a non-private ``train_fn`` to compare them.

    Parameters
    ----------
    train_fn : callable ``(X_train, y_train) -> predict_proba``
        ``predict_proba(X)`` returns positive-class probabilities ``(n,)`` or class
        probabilities ``(n, n_classes)``. ``X_train`` and ``y_train`` have the types of ``X``
        and ``y`` (numpy arrays or torch tensors).
    X : array-like or Tensor of shape (n, ...)
    y : array-like or Tensor of shape (n,)
        Class numbers (0/1 for binary).
    n_canaries : int, default=50
        Canaries per side; needs ``2 * n_canaries < n``.
    claimed_epsilon, delta, confidence :
        As for :func:`membership_inference_audit`.
    random_state : int, numpy Generator or None

    Returns
    -------
    AuditResult
    """
    labels = _as_numpy(y).reshape(-1)
    n = len(labels)
    if isinstance(n_canaries, bool) or not isinstance(n_canaries, int) or n_canaries < 1:
        raise PrivacyConfigError(f"n_canaries must be a positive integer, got {n_canaries!r}.")
    if 2 * n_canaries >= n:
        raise PrivacyConfigError(
            f"n_canaries={n_canaries} needs more than {2 * n_canaries} records, the data has "
            f"{n}; lower n_canaries."
        )
    if not np.all(np.equal(np.mod(labels, 1), 0)) or labels.min() < 0:
        raise InputDataError("canary_audit needs class labels 0..K-1 in y.")
    n_classes = max(2, int(labels.max()) + 1)
    rng = check_random_state(random_state)
    picked = rng.choice(n, size=2 * n_canaries, replace=False)
    members = picked[:n_canaries]
    shift = rng.integers(1, n_classes, size=2 * n_canaries)
    flipped = ((labels[picked].astype(np.int64) + shift) % n_classes).astype(labels.dtype)
    keep = np.setdiff1d(np.arange(n), picked)
    y_flipped_members: Any = flipped[:n_canaries]
    if hasattr(y, "detach"):
        import torch

        y_flipped_members = torch.as_tensor(y_flipped_members, dtype=y.dtype, device=y.device)
    X_train = _concat(_take(X, keep), _take(X, members))
    y_train = _concat(_take(y, keep), y_flipped_members)
    predict = train_fn(X_train, y_train)
    proba = predict(_take(X, picked))
    scores = _true_label_log_proba("predict_proba(canaries)", proba, flipped)
    return _result(
        scores[:n_canaries],
        scores[n_canaries:],
        claimed_epsilon=claimed_epsilon,
        delta=delta,
        confidence=confidence,
        method="canary",
    )
