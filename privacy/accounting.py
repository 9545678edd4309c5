"""Noise calibration and epsilon computation with Opacus accountants."""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from privacy.exceptions import UnreachableEpsilonError

__all__ = [
    "calibrate_noise",
    "compute_epsilon",
    "forget_calibrations",
    "person_sampling",
    "record_sampling",
]

# Constants of ``opacus.accountants.utils.get_noise_multiplier``: its largest noise multiplier,
# its default epsilon tolerance and the message of its ValueError when the target is unreachable.
_MAX_SIGMA = 1e6
_EPSILON_TOLERANCE = 0.01
_TOO_LOW = "The privacy budget is too low."
# A comparison of epsilon(sigma) with a level is inferred from another evaluation only when
# that evaluation is at least this far from the level; closer cases are evaluated.
_MARGIN = 1e-6
# Bounds on the planning: comparisons in one planned search (Opacus makes about 20 to 60),
# and accountant evaluations before falling back to evaluating every comparison.
_MAX_COMPARISONS = 400
_MAX_PLANS = 40


def record_sampling(n_rows: int, batch_size: int, epochs: int) -> tuple[float, int]:
    """Sample rate and steps of Opacus' record-level Poisson sampling.

    Opacus derives the sample rate from the data loader: ``q = 1 / ceil(n / batch_size)``,
    and runs ``ceil(n / batch_size)`` steps per epoch.

    Returns
    -------
    (sample_rate, steps)
    """
    per_epoch = math.ceil(n_rows / batch_size)
    return 1.0 / per_epoch, per_epoch * epochs


def person_sampling(n_persons: int, batch_size: int, epochs: int) -> tuple[float, int]:
    """Sample rate ``q = batch_size / n_persons`` and steps ``int(epochs / q)`` (at least 1)."""
    q = batch_size / n_persons
    return q, max(1, int(epochs / q))


@functools.lru_cache(maxsize=256)
def _epsilon_of_one(
    accountant: str, sigma: float, sample_rate: float, steps: int, delta: float
) -> float:
    """Epsilon of one run of ``steps`` subsampled Gaussian steps, memoised: a DP fine-tuning
    call evaluates the calibrated noise multiplier, and then its ledger the same run again."""
    from opacus.accountants import create_accountant

    with np.errstate(divide="ignore", invalid="ignore"), _quiet_orders():
        acc = create_accountant(mechanism=accountant)
        acc.history = [(sigma, sample_rate, steps)]
        return float(acc.get_epsilon(delta=delta))


@contextlib.contextmanager
def _quiet_orders() -> Iterator[None]:
    """Silence Opacus' note that the best RDP order is its largest one.

    It appears at large noise multipliers (and inside the PRV accountant's domain search);
    the bound it returns is still valid, only possibly loose (a larger order could tighten
    it), which errs on the side of privacy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def forget_calibrations() -> None:
    """Empty the memos of :func:`calibrate_noise` and of epsilon evaluations (for timing)."""
    _calibrate.cache_clear()
    _epsilon_of_one.cache_clear()
    _epsilon_of_many.cache_clear()


class _EpsilonCurve:
    """Memoised ``epsilon(sigma)`` of ``steps`` Poisson-sampled Gaussian steps at ``delta``.

    Each value is computed the way :func:`compute_epsilon` computes it: a new Opacus
    accountant whose history is ``[(sigma, sample_rate, steps)]``.
    """

    def __init__(
        self,
        accountant: str,
        *,
        delta: float,
        sample_rate: float,
        steps: int,
        prior: tuple[float, float, float],
    ) -> None:
        self.accountant = accountant
        self.delta = float(delta)
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        # (sigma, epsilon, d log epsilon / d log sigma): an approximate point of the curve and
        # its slope, for the model until evaluations replace them.
        self.prior = prior
        self.values: dict[float, float] = {}

    def __call__(self, sigma: float) -> float:
        if sigma not in self.values:
            self.values[sigma] = _epsilon_of_one(
                self.accountant, float(sigma), self.sample_rate, self.steps, self.delta
            )
        return self.values[sigma]

    def implied(self, sigma: float, level: float) -> bool | None:
        """Whether ``epsilon(sigma) >= level`` follows from the evaluations made so far.

        Epsilon decreases as sigma grows, so an evaluation at or above ``sigma`` that is at
        least ``_MARGIN`` above ``level`` implies True, and one at or below ``sigma`` that is at
        least ``_MARGIN`` below ``level`` implies False. None when neither exists.
        """
        for s, e in self.values.items():
            if s >= sigma and e >= level + _MARGIN:
                return True
            if s <= sigma and e <= level - _MARGIN:
                return False
        return None

    def root(self, level: float) -> float:
        """Estimate of the sigma at which epsilon falls through ``level``.

        Inverse interpolation of ``log sigma`` against ``log epsilon`` through the (up to three)
        evaluations nearest to the crossing, kept inside the bracket that the evaluations give.
        With fewer than two evaluations, a line of the prior slope through the evaluation or
        the prior point. Without a bracket, the estimate moves down by at most a factor of two
        from the evaluations (and up to ``2 * _MAX_SIGMA`` at most).
        """
        if not level > 0:
            return math.inf
        v = math.log(level)
        over = [s for s, e in self.values.items() if e >= level]
        under = [s for s, e in self.values.items() if e < level]
        lo = math.log(max(over)) if over else -math.inf
        hi = math.log(min(under)) if under else math.inf
        points = sorted(
            (math.log(s), math.log(e)) for s, e in self.values.items() if 0 < e < math.inf
        )
        nodes = [p for p in points if p[1] >= v][-2:] + [p for p in points if p[1] < v][:2]
        nodes.sort(key=lambda p: abs(p[1] - v))
        est = math.nan
        for k in (3, 2):
            if len(nodes) >= k:
                est = _inverse_interpolation(nodes[:k], v)
                if lo < est < hi:
                    break
        if not math.isfinite(est):
            sigma0, eps0, slope = self.prior
            u0, f0 = nodes[0] if nodes else (math.log(sigma0), math.log(eps0))
            est = u0 + (v - f0) / slope
        if lo > -math.inf and hi < math.inf:
            if not lo < est < hi:
                est = (lo + hi) / 2
        elif hi < math.inf:  # every evaluation is below the level: the crossing is lower
            if not est < hi:
                est = hi - math.log(2)
            est = max(est, hi - math.log(2))
        elif lo > -math.inf:  # every evaluation is at or above the level: the crossing is higher
            if not est > lo:
                est = lo + math.log(2)
        elif not est >= math.log(self.prior[0] / 2):
            est = math.log(self.prior[0] / 2)
        return math.exp(min(est, math.log(2 * _MAX_SIGMA)))


def _inverse_interpolation(nodes: Sequence[tuple[float, float]], v: float) -> float:
    """Value at ``v`` of the polynomial through ``(f, u)`` for the nodes ``(u, f)`` (Lagrange)."""
    est = 0.0
    for i, (u_i, f_i) in enumerate(nodes):
        weight = 1.0
        for j, (_, f_j) in enumerate(nodes):
            if j != i:
                if f_j == f_i:
                    return math.nan
                weight *= (v - f_j) / (f_i - f_j)
        est += weight * u_i
    return est


_Comparison = Callable[[float, float, Callable[[float], bool]], bool]


def _replay(target: float, at_least: _Comparison) -> float | None:
    """The search of Opacus' ``get_noise_multiplier``, its comparisons answered by ``at_least``.

    Doubling from 20 until epsilon is at most the target, then bisection from 0 until the
    upper end is within the tolerance of the target, exactly as Opacus runs it (same
    midpoints, same float arithmetic). ``at_least(sigma, level, exact)`` tells whether
    ``epsilon(sigma) >= level``, where ``exact`` is Opacus' comparison of an evaluated epsilon.
    None when Opacus gives up: epsilon is still above the target at its largest sigma.
    """
    tol = _EPSILON_TOLERANCE
    sigma_high = 10.0
    while True:
        sigma_high *= 2
        if sigma_high > _MAX_SIGMA:
            return None
        if not at_least(sigma_high, target, lambda e: e > target):
            break
    sigma_low = 0.0
    while not at_least(sigma_high, target - tol, lambda e: not target - e > tol):
        sigma = (sigma_low + sigma_high) / 2
        if at_least(sigma, target, lambda e: not e < target):
            sigma_low = sigma
        else:
            sigma_high = sigma
    return sigma_high


class _Stalled(Exception):
    """A planned search that does not end."""


def _plan(curve: _EpsilonCurve, target: float) -> tuple[float | None, list[float]] | None:
    """The replayed search with comparisons settled by evaluations, monotonicity or the model.

    Returns the outcome and the sigmas whose comparisons only the model settled, in the
    order the search met them; None where the planned search does not end.
    """
    unsettled: list[float] = []
    # The model's crossings of the target and of the target less the tolerance; the second
    # is kept above the first so that the planned bisection ends.
    root = curve.root(target)
    tol_level = target - _EPSILON_TOLERANCE
    roots = {target: root, tol_level: max(curve.root(tol_level), root * 1.000001)}
    comparisons = 0

    def at_least(sigma: float, level: float, exact: Callable[[float], bool]) -> bool:
        nonlocal comparisons
        comparisons += 1
        if comparisons > _MAX_COMPARISONS:
            raise _Stalled
        if sigma in curve.values:
            return exact(curve.values[sigma])
        implied = curve.implied(sigma, level)
        if implied is not None:
            return implied
        unsettled.append(sigma)
        return sigma <= roots[level]

    try:
        return _replay(target, at_least), unsettled
    except _Stalled:
        return None


def _search(curve: _EpsilonCurve, target: float) -> float | None:
    """Outcome of Opacus' search on ``curve``, evaluating few of the sigmas it would evaluate.

    A comparison that neither an evaluation nor monotonicity settles is settled by the model
    (:meth:`_EpsilonCurve.root`) to plan the rest of the search; then the last such sigma is
    evaluated, and the search is planned again, until every comparison is settled by
    evaluations. Falls back to evaluating every comparison (as Opacus does) if an
    evaluation fails or would be below half the smallest sigma evaluated so far.
    """
    for _ in range(_MAX_PLANS):
        planned = _plan(curve, target)
        if planned is None:
            break
        result, unsettled = planned
        if not unsettled:
            return result
        sigma = unsettled[-1]
        if curve.values and sigma < min(curve.values) / 2:
            break
        try:
            curve(sigma)
        except ValueError:
            break
    return _replay(target, lambda sigma, level, exact: exact(curve(sigma)))


def _local_slope(curve: _EpsilonCurve, level: float) -> float | None:
    """Slope of ``log epsilon`` against ``log sigma`` near the crossing of ``level``.

    Taken between the two evaluations whose epsilon is nearest to ``level``; None when there
    are fewer or when it is not negative and finite.
    """
    points = sorted(
        (abs(math.log(e / level)), math.log(s), math.log(e))
        for s, e in curve.values.items()
        if 0 < e < math.inf
    )
    if len(points) < 2:
        return None
    (_, u0, f0), (_, u1, f1) = points[:2]
    slope = (f1 - f0) / (u1 - u0)
    return slope if -math.inf < slope < 0 else None


def _gaussian_prior(
    epsilon: float, delta: float, sample_rate: float, steps: int
) -> tuple[float, float, float]:
    """Approximate sigma at ``epsilon`` and slope of epsilon(sigma) there.

    The composition of the subsampled Gaussian mechanism is close to ``mu``-Gaussian DP with
    ``mu = q sqrt(steps (exp(1 / sigma^2) - 1))``, and ``mu``-GDP is about
    ``(mu^2 / 2 + mu sqrt(2 log(1 / delta)), delta)``-DP.
    """

    def sigma_at(eps: float) -> float:
        log_inv_delta = math.log(1 / delta)
        mu = math.sqrt(2 * log_inv_delta + 2 * eps) - math.sqrt(2 * log_inv_delta)
        return 1 / math.sqrt(math.log1p(mu**2 / (sample_rate**2 * steps)))

    sigma = sigma_at(epsilon)
    slope = math.log(1.01) / math.log(sigma_at(1.01 * epsilon) / sigma)
    return sigma, epsilon, slope if -math.inf < slope < 0 else -1.0


@functools.lru_cache(maxsize=64)
def _calibrate(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """Noise multiplier of :func:`calibrate_noise`; ValueError where Opacus' search fails."""
    try:
        prior = _gaussian_prior(epsilon, delta, sample_rate, steps)
    except (ArithmeticError, ValueError):
        prior = (1.0, epsilon, -1.0)
    if accountant == "prv" and 0 < epsilon < math.inf:
        # RDP is cheaper to evaluate and close to (and above) PRV, with a similar slope. Two
        # evaluations: at the prior's sigma, then where that predicts the crossing. Kept
        # unless RDP cannot come near the target (its epsilon has a floor).
        rdp = _EpsilonCurve("rdp", delta=delta, sample_rate=sample_rate, steps=steps, prior=prior)
        try:
            rdp(rdp.root(epsilon))
            sigma = rdp.root(epsilon)
            eps, slope = rdp(sigma), _local_slope(rdp, epsilon)
        except (ArithmeticError, ValueError):  # only a starting point: keep the Gaussian one
            slope = None
        if slope is not None and slope < -0.5 and epsilon / 2 < eps < 2 * epsilon:
            prior = (sigma, eps, slope)
    curve = _EpsilonCurve(
        accountant, delta=delta, sample_rate=sample_rate, steps=steps, prior=prior
    )
    result = _search(curve, epsilon)
    if result is None:
        raise ValueError(_TOO_LOW)
    eps = curve(result)
    if not (eps <= epsilon and not epsilon - eps > _EPSILON_TOLERANCE):
        # Only possible if epsilon were not monotone in sigma: replay Opacus comparison by
        # comparison.
        result = _replay(epsilon, lambda s, level, exact: exact(curve(s)))
        if result is None:
            raise ValueError(_TOO_LOW)
        eps = curve(result)
        if not eps <= epsilon:
            raise RuntimeError(
                f"the {accountant!r} accountant gives epsilon={eps} at the calibrated noise "
                f"multiplier {result:g}, above the target {epsilon:g}"
            )
    return result


def calibrate_noise(
    *,
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    epochs: int | None = None,
) -> float:
    """Smallest noise multiplier (to Opacus' tolerance) meeting ``(epsilon, delta)``.

    Returns the noise multiplier that ``opacus.accountants.utils.get_noise_multiplier`` returns
    for the given sample rate, number of steps and accountant, with its default
    ``epsilon_tolerance`` of 0.01: the upper end of its bisection, whose epsilon lies in
    ``[epsilon - 0.01, epsilon]``. It is found with far fewer accountant evaluations (about 4
    instead of 10 to 20; each takes up to a few tenths of a second with ``"prv"``):

    * Opacus' search (doubling from 20, then bisection from 0) is replayed with the same
      midpoints and float arithmetic, but a comparison of epsilon with the target is only
      evaluated where no earlier evaluation implies it (epsilon decreases as the noise
      multiplier grows; an implication needs a margin of 1e-6 in epsilon).
    * A model of ``log epsilon`` against ``log sigma`` (inverse interpolation through the
      evaluations nearest to the target, started from a Gaussian approximation and, for
      ``"prv"``, from two cheaper RDP evaluations) settles the other comparisons provisionally,
      which predicts the path of the search; the last comparison settled only by the model is
      evaluated, and the search is replayed again, until no comparison rests on the model.
      Only the few comparisons near the end of the search are evaluated.
    * The epsilon of the result is evaluated the way :func:`compute_epsilon` evaluates it and
      checked to lie in ``[epsilon - 0.01, epsilon]``; otherwise (or if an evaluation fails)
      every comparison is evaluated, as Opacus does.

    The last 64 results are memoised.

    Parameters
    ----------
    epsilon, delta : float
        Target privacy budget.
    sample_rate : float
        Poisson sampling rate of each step.
    steps : int
        Number of steps.
    accountant : str
        Opacus accountant: ``"rdp"``, ``"prv"`` or ``"gdp"``.
    epochs : int or None, default=None
        Number of epochs, only quoted in the error message.

    Returns
    -------
    float
        The noise multiplier.

    Raises
    ------
    UnreachableEpsilonError
        When Opacus finds no noise multiplier (below 1e6) that meets the target: epsilon is
        still above the target at 655360, the last noise multiplier of the doubling below 1e6.
    """
    try:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return _calibrate(
                float(epsilon), float(delta), float(sample_rate), int(steps), accountant
            )
    except ValueError as exc:
        what = f"{steps} steps" + (f" ({epochs} epochs)" if epochs is not None else "")
        raise UnreachableEpsilonError(
            f"epsilon={epsilon:g} cannot be reached at delta={delta:.3g} with sample rate "
            f"{sample_rate:.4g} over {what} using the {accountant!r} accountant: even a noise "
            f"multiplier of 1e6 spends more (Opacus: {exc}). Use fewer epochs, a larger "
            "epsilon, or a larger batch_size (fewer steps per epoch)."
        ) from exc


def compute_epsilon(
    history: Sequence[tuple[float, float, int]], *, delta: float, accountant: str
) -> float:
    """Epsilon at ``delta`` of a history of ``(noise_multiplier, sample_rate, steps)``."""

    # Runs with the same noise multiplier and sample rate are one longer run: merge them so
    # that the result does not depend on how the steps were split into phases.
    merged: dict[tuple[float, float], int] = {}
    for sigma, q, steps in history:
        key = (float(sigma), float(q))
        merged[key] = merged.get(key, 0) + int(steps)
    runs = [(s, q, t) for (s, q), t in merged.items() if t > 0]
    if not runs:
        return 0.0
    if len(runs) == 1:
        return _epsilon_of_one(accountant, *runs[0], float(delta))
    return _epsilon_of_many(accountant, tuple(runs), float(delta))


@functools.lru_cache(maxsize=256)
def _epsilon_of_many(
    accountant: str, runs: tuple[tuple[float, float, int], ...], delta: float
) -> float:
    """Epsilon of a composed history, memoised (a ledger composes the same entries each
    time its total is shown)."""
    from opacus.accountants import create_accountant

    with np.errstate(divide="ignore", invalid="ignore"), _quiet_orders():
        acc = create_accountant(mechanism=accountant)
        acc.history = list(runs)
        return float(acc.get_epsilon(delta=delta))
