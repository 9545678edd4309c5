"""SHAP explanations of a fitted model's predictions, over the user's original columns."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from graphxfer.explain import _announce
from graphxfer.explain._background import SUMMARIES, Summary, Weighted, kmeans_summary
from graphxfer.explain._codec import (
    FeatureCodec,
    as_frame,
    distinct_rows,
    model_columns,
    require_columns,
)
from graphxfer.explain._methods import DEFAULT_PERMUTATIONS, METHODS, ExplainTask
from graphxfer.explain._model import LINKS, positive_proba, to_scale
from graphxfer.explain._xgboost import BoosterView, find_booster
from graphxfer.explain.exceptions import BackgroundFromDataWarning, ExplanationError

if TYPE_CHECKING:
    import shap

__all__ = [
    "AUTO_EXACT_MAX_FEATURES",
    "DEFAULT_N_SUMMARY",
    "ExplanationInfo",
    "explain",
    "explain_details",
]

logger = logging.getLogger(__name__)

AUTO_EXACT_MAX_FEATURES = 10
"""``method="auto"`` uses exact Shapley values up to this many features, permutations above."""

DEFAULT_N_SUMMARY = 10
"""Weighted representatives of the background with ``summary="kmeans"``."""

# A computed explanation whose base value + attributions misses the model's output by more than
# this (on the explained scale) is refused: the model is then not deterministic (dropout left
# on, random graph sampling) or its differentiable path is not the model.
_ADDITIVITY_GUARD = 1e-4


@dataclass(frozen=True)
class ExplanationInfo:
    """How an explanation was computed (for reports and logs).

    Attributes
    ----------
    method : str
        The method used (``tree``, ``exact``, ``permutation``, ``deep`` or ``gradient``).
    description : str
        The method in words.
    link : str
        ``identity`` (probability) or ``logit`` (log-odds).
    background : str
        Where the reference data came from.
    n_background : int
        Background rows used (0 for the path-dependent tree method).
    additive : bool
        Whether base value + attributions equals the model's output.
    summary : str
        How the background rows were spent (split among the permutations, summarised by
        weighted k-means representatives, or all of them for every coalition).
    """

    method: str
    description: str
    link: str
    background: str
    n_background: int
    additive: bool
    summary: str = "all rows for every coalition"


def explain(
    model: Any,
    data: Any,
    method: str = "auto",
    background: Any = None,
    *,
    link: Literal["identity", "logit"] | None = None,
    max_evals: int | None = None,
    n_background: int = 100,
    summary: Summary = "split",
    n_summary: int = DEFAULT_N_SUMMARY,
    random_state: int | np.random.Generator | None = None,
    progress: bool = True,
) -> shap.Explanation:
    """Explain every prediction of a fitted binary classifier with SHAP values.

    Attributions are over the model's original input columns (never internal features), so a
    categorical column gets one attribution however the model encodes it. They are additive:
    ``base_values + values.sum(axis=1)`` equals the model's output on the stated scale.

    Parameters
    ----------
    model : fitted model
        Anything with ``predict_proba(DataFrame) -> [n, 2]`` over the original columns, such as
        a ``graphxfer.TransferClassifier`` or a ``tabular.baselines`` model. Its input columns
        come from ``feature_schema_`` (kinds and vocabularies), else ``feature_names_in_``,
        else the features of ``data``.
    data : Cohort or DataFrame
        The records to explain, with the model's input columns (other columns are ignored).
    method : {"auto", "tree", "exact", "permutation", "deep", "gradient"}, default="auto"
        ``auto`` uses ``tree`` for XGBoost models (on the log-odds scale, without a
        ``background`` passed), ``exact`` for at most 10 features and ``permutation`` above.

        - ``tree``: XGBoost's own exact TreeSHAP (handles categorical splits); path-dependent:
          the reference is the training data recorded in the trees, not a background.
        - ``exact``: exact Shapley values over all coalitions of columns (2**n_features model
          evaluations per record and background row); at most 20 features.
        - ``permutation``: Shapley values from antithetic permutations; additive by
          construction, exact for models without interactions above second order (with
          ``summary="none"``).
        - ``deep`` / ``gradient``: DeepLIFT / expected gradients through a torch model's
          differentiable path (``model.torch_explain_parts()``, see the documentation);
          ``gradient`` is an approximation and not exactly additive.
    background : Cohort or DataFrame, optional
        Reference records that stand in for a "missing" column. By default
        ``model.background_`` (a sample of the source cohort); without it, a sample of ``data``
        with a :class:`~graphxfer.explain.exceptions.BackgroundFromDataWarning`.
    link : {"identity", "logit"}, optional
        Scale of the explained output: the probability of the positive class (``identity``) or
        its log-odds (``logit``). By default log-odds for ``tree`` and probability otherwise.
        The scale is stated in the explanation's ``output_names``.
    max_evals : int, optional
        Coalitions evaluated per record: the ``permutation`` budget (default
        ``10 * (2 * n_features + 1)``: ten forward-and-backward permutations), a cap checked by
        ``exact``, the number of samples of ``gradient`` (default 100).
    n_background : int, default=100
        At most this many background rows are used (sampled without replacement).
    summary : {"split", "kmeans", "none"}, default="split"
        How the background rows are spent by the methods that average over them for every
        coalition (their cost grows with the rows):

        - ``split``: the permutation method deals the rows out among its permutations, so
          that each masks with its own share (10 of 100 rows with the default budget) and
          every row is used: the cost of one permutation over all rows. The shares are
          uniform draws, so the estimate is unbiased for the all-rows one, and the base
          value is the all-rows mean. Stated tolerance (measured on the fine-tuned
          FT-transformer of the benchmarks, 13 heart-disease columns, and tested on a small
          model with third-order interactions): the split moves the attributions less than
          drawing other permutations does, i.e. their mean absolute difference from the
          all-rows estimate with the same permutations is at most that between two all-rows
          estimates with different permutations; on the FT-transformer at most 5% of the
          mean absolute attribution (measured 2.8-3.4%, against 3.9-4.6% for other
          permutations), with the ranking of global importance kept. The other methods use
          all rows.
        - ``kmeans``: every method uses ``n_summary`` weighted k-means representatives of
          the rows (the row nearest each cluster's centre, weighted by the cluster's share).
          Deterministic, but biased: 15-33% from the all-rows attributions with 5-20
          representatives on the same model.
        - ``none``: every coalition averages over all rows.
    n_summary : int, default=10
        Representatives of ``summary="kmeans"``.
    random_state : int, Generator or None
        Seeds the background sample and the permutations. The global NumPy state is left as
        it was.
    progress : bool, default=True
        Announce a run expected to take more than 10 seconds with its estimate (timed on two
        records, on standard error) and show a progress bar on a terminal.

    Returns
    -------
    shap.Explanation
        ``values`` ``[n, n_features]``, ``base_values`` ``[n]``, ``data`` the numeric view
        (numbers, category codes), ``display_data`` the original values (category labels),
        ``feature_names`` the original column names and ``output_names`` the scale
        (``"probability of the positive class"`` or ``"log-odds of the positive class"``).

    Raises
    ------
    ExplanationError
        When the model, the data or the method do not fit together; the message says why.

    Notes
    -----
    Identical records are explained once and get identical explanations. The ``exact`` and
    ``permutation`` methods evaluate many masked records per model call and never the same
    masked record twice. A model that exposes its per-column inputs
    (``torch_explain_parts()``: a ``TransferClassifier`` over a linear, mlp or
    ft-transformer encoder) is evaluated on them: the records and background rows are
    translated into the network's inputs once, and masked records are assembled from those
    inputs and run through the network in large batches, with no validation or
    featurisation per batch (used when it reproduces ``predict_proba`` on the records within
    1e-6; otherwise ``predict_proba`` is called on the masked records).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"age": np.linspace(20, 80, 40), "bmi": np.tile([20.0, 30.0], 20)})
    >>> clf = LogisticRegression().fit(X, (X.age > 50).astype(int))
    >>> clf.background_ = X.sample(20, random_state=0)
    >>> exp = explain(clf, X.head(3), random_state=0, progress=False)
    >>> exp.values.shape, exp.output_names
    ((3, 2), 'probability of the positive class')
    >>> bool(np.allclose(exp.base_values + exp.values.sum(1), clf.predict_proba(X.head(3))[:, 1]))
    True
    """
    explanation, _ = explain_details(
        model,
        data,
        method,
        background,
        link=link,
        max_evals=max_evals,
        n_background=n_background,
        summary=summary,
        n_summary=n_summary,
        random_state=random_state,
        progress=progress,
        stacklevel=3,
    )
    return explanation


def explain_details(
    model: Any,
    data: Any,
    method: str = "auto",
    background: Any = None,
    *,
    link: Literal["identity", "logit"] | None = None,
    max_evals: int | None = None,
    n_background: int = 100,
    summary: Summary = "split",
    n_summary: int = DEFAULT_N_SUMMARY,
    random_state: int | np.random.Generator | None = None,
    progress: bool = True,
    stacklevel: int = 2,
    announce: bool = True,
) -> tuple[shap.Explanation, ExplanationInfo]:
    """:func:`explain`, also returning how the explanation was computed.

    With ``progress`` (and ``announce``), a run expected to take longer than 10 seconds is
    announced on standard error with its estimate before it starts; the progress bar shows
    only on a terminal.
    """
    _check_options(model, method, link, max_evals, n_background, summary, n_summary)
    translate = getattr(model, "transform_features", None)
    if translate is not None:  # e.g. a TransferClassifier with renamed or converted columns
        data = translate(data)
        if background is not None:
            background = translate(background)
    frame = as_frame(data)
    if len(frame) == 0:
        raise ExplanationError("there is nothing to explain: the data has no rows")
    columns = model_columns(model, data)
    require_columns(frame, [c.name for c in columns])
    frame = frame[[c.name for c in columns]]
    rng = np.random.default_rng(random_state)
    seed = None if random_state is None else int(rng.integers(2**31 - 1))

    given = background is not None
    reference = as_frame(background, "background") if given else _model_background(model)
    codec = FeatureCodec.build(columns, [frame] + ([reference] if reference is not None else []))
    name, booster = _choose(model, codec, frame, method, link, given)
    chosen = METHODS[name]
    link = link if link is not None else ("logit" if name == "tree" else "identity")

    source = (
        "the background passed by the caller"
        if given
        else "the model's background_ (a sample of its source cohort)"
    )
    if not chosen.uses_background:
        reference, source = frame.iloc[:0], "the training data recorded in the trees"
    elif reference is None:
        warnings.warn(
            "the model has no background_ (a sample of its source cohort), so a sample of the "
            "explained data serves as background; pass background= to choose it",
            BackgroundFromDataWarning,
            stacklevel=stacklevel,
        )
        reference, source = frame, "a sample of the explained records"
    reference = _sample(reference, n_background, rng)
    if chosen.uses_background and len(reference) == 0:
        raise ExplanationError("the background has no rows")
    background_matrix = codec.encode(reference)
    weighted, spent = _spend(name, summary, codec, background_matrix, n_summary, max_evals, seed)
    logger.info(
        "explaining %d records with method %r on the %s scale; background: %s (%d rows; %s)",
        len(frame),
        name,
        link,
        source,
        len(reference),
        spent,
    )

    # identical records get identical explanations, computed once
    matrix = codec.encode(frame)
    keep, inverse = distinct_rows(matrix)
    task = ExplainTask(
        model=model,
        codec=codec,
        frame=frame.iloc[keep],
        matrix=matrix[keep],
        background=reference,
        background_matrix=background_matrix,
        link=link,
        max_evals=max_evals,
        seed=seed,
        progress=progress,
        booster=booster,
        reference=weighted,
        summary=summary,
    )
    if progress and announce and len(keep) > _announce.ANNOUNCE_MIN_RECORDS:
        _announce.announce(chosen, task, name)
    start = time.perf_counter()
    values, base_values = chosen.compute(task)
    elapsed = time.perf_counter() - start
    values = np.asarray(values, dtype=np.float64).reshape(len(keep), codec.n_features)
    base_values = np.broadcast_to(np.asarray(base_values, np.float64), (len(keep),)).copy()
    if chosen.additive:
        _guard_additivity(task, values, base_values, name)

    import shap

    explanation = shap.Explanation(
        values=values[inverse],
        base_values=base_values[inverse],
        data=matrix,
        display_data=codec.display(frame),
        feature_names=list(codec.names),
        output_names=LINKS[link],
        compute_time=elapsed,
    )
    info = ExplanationInfo(
        method=name,
        description=chosen.description,
        link=link,
        background=source,
        n_background=len(reference),
        additive=chosen.additive,
        summary=spent,
    )
    return explanation, info


def _check_options(
    model: Any,
    method: str,
    link: str | None,
    max_evals: int | None,
    n_background: int,
    summary: str,
    n_summary: int,
) -> None:
    if not callable(getattr(model, "predict_proba", None)):
        raise ExplanationError(
            f"{type(model).__name__} has no predict_proba; explain a fitted binary classifier"
        )
    if method != "auto" and method not in METHODS:
        raise ExplanationError(f"unknown method {method!r}; use 'auto' or one of {sorted(METHODS)}")
    if link is not None and link not in LINKS:
        raise ExplanationError(f"link={link!r} must be 'identity' (probability) or 'logit'")
    if summary not in SUMMARIES:
        raise ExplanationError(f"summary={summary!r} must be one of {list(SUMMARIES)}")
    for name, value in (
        ("max_evals", max_evals),
        ("n_background", n_background),
        ("n_summary", n_summary),
    ):
        if value is None and name == "max_evals":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ExplanationError(f"{name}={value!r} must be a positive integer")


def _model_background(model: Any) -> pd.DataFrame | None:
    reference = getattr(model, "background_", None)
    if reference is None:
        return None
    return as_frame(reference, "model.background_")


def _choose(
    model: Any,
    codec: FeatureCodec,
    frame: pd.DataFrame,
    method: str,
    link: str | None,
    background_given: bool,
) -> tuple[str, BoosterView | None]:
    if method == "tree":
        if link == "identity":
            raise ExplanationError(
                "TreeSHAP explains XGBoost's margin, the log-odds: use link='logit' (or None), "
                "or method='exact' / 'permutation' for attributions of the probability"
            )
        if background_given:
            raise ExplanationError(
                "the tree method is path-dependent and uses no background; use method='exact' "
                "or 'permutation' to explain against the background you passed"
            )
        booster = find_booster(model, codec, frame)
        if booster is None:
            raise ExplanationError(
                f"{type(model).__name__} holds no XGBoost booster that reproduces its "
                "predictions over the original columns; use method='auto', 'exact' or "
                "'permutation'"
            )
        return "tree", booster
    if method != "auto":
        return method, None
    if link != "identity" and not background_given:
        booster = find_booster(model, codec, frame)
        if booster is not None:
            return "tree", booster
    return ("exact" if codec.n_features <= AUTO_EXACT_MAX_FEATURES else "permutation"), None


def _spend(
    method: str,
    summary: str,
    codec: FeatureCodec,
    background: np.ndarray,
    n_summary: int,
    max_evals: int | None,
    seed: int | None,
) -> tuple[Weighted | None, str]:
    """The weighted background rows of a k-means summary (``None``: all rows), and how the
    rows are spent, in words."""
    n = len(background)
    if not METHODS[method].uses_background:
        return None, "no background"
    if summary == "kmeans":
        weighted = kmeans_summary(codec, background, n_summary, seed)
        return weighted, f"{len(weighted.rows)} weighted k-means representatives of {n} rows"
    if summary == "split" and method == "permutation":
        m = codec.n_features
        evals = max_evals if max_evals is not None else DEFAULT_PERMUTATIONS * (2 * m + 1)
        permutations = max(1, evals // (2 * m + 1))
        share = -(-n // permutations)
        return None, f"split: each of {permutations} permutations masks with {share} of {n} rows"
    return None, f"all {n} rows for every coalition"


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    rows = np.sort(rng.choice(len(frame), size=n, replace=False))
    return frame.iloc[rows]


def _guard_additivity(
    task: ExplainTask, values: np.ndarray, base_values: np.ndarray, name: str
) -> None:
    if task.booster is not None and name == "tree":
        output = task.booster.margin(task.frame)
    else:
        output = to_scale(positive_proba(task.model, task.frame), task.link)
    gap = float(np.max(np.abs(base_values + values.sum(axis=1) - output)))
    if not gap <= _ADDITIVITY_GUARD:
        raise ExplanationError(
            f"the {name} attributions miss the model's output by up to {gap:.3g}: the model is "
            "not deterministic (dropout or sampling left on?) or its differentiable path does "
            "not compute predict_proba, or (deep) it holds operations DeepLIFT cannot "
            "propagate exactly (LayerNorm, GELU, attention); use 'gradient' (approximate), "
            "'permutation' or 'exact'"
        )
