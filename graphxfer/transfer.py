"""The transfer estimator: a pretrained encoder fine-tuned on a small target, optionally with DP.

A thin scikit-learn estimator over the steps of a fit, each in its own module: the target
adapter (:mod:`graphxfer.adapt`) translates records into the model's columns, once per call;
:mod:`graphxfer.finetune` plans and runs the fine-tuning and keeps the privacy ledger;
:mod:`graphxfer.guard` checks for negative transfer; :mod:`graphxfer.assessment` measures a
fitted model; :mod:`graphxfer.model_io` saves and loads it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from graphxfer import finetune
from graphxfer.adapt import TargetAdapter
from graphxfer.assessment import audit_model, measure
from graphxfer.encoder import Encoder
from graphxfer.exceptions import (
    AbsentColumnWarning,
    GraphxferError,
    GraphxferWarning,
    NotFittedError,
)
from graphxfer.guard import TransferCheckSkippedWarning, run_guard
from graphxfer.model_io import load_model, restore, save_model
from graphxfer.release import evaluation_record, model_card, write_evaluation

if TYPE_CHECKING:
    from privacy import PrivacyConfig

__all__ = ["TransferCheckSkippedWarning", "TransferClassifier", "load_model"]


class _NotFittedError(NotFittedError, SklearnNotFittedError):
    """graphxfer's NotFittedError that sklearn's tools (``check_is_fitted`` users) recognise."""


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A pretrained encoder fine-tuned on a target cohort: an sklearn binary classifier.

    Parameters
    ----------
    encoder : Encoder or path
        A pretrained encoder (:func:`graphxfer.pretrain`) or the path of a saved one. It is
        never modified; ``fit`` works on a copy.
    strategy : {"anchored", "linear-probe", "full", "partial", "lp-ft"}, default="anchored"
        What is fine-tuned. ``anchored`` (:mod:`graphxfer.anchoring`): a zero-initialised
        correction of the source model's head, pulled toward zero by the source prior, so
        that the model degrades toward the source model, never into noise. The others: the
        head only; everything; the last ``partial_blocks`` blocks and the head; or a linear
        probe followed by a full fine-tune (one privacy budget for both).
    privacy : privacy.PrivacyConfig or None, default=None
        Fine-tune with differential privacy (record- or person-level (epsilon, delta)). The
        whole fit, the private transfer guard included, stays within ``privacy.epsilon``.
    dp_hyperparameters : {"auto", "config"}, default="auto"
        Under privacy, where the fine-tuning hyper-parameters come from (see
        :func:`graphxfer.finetune.plan_fit`). ``"auto"``: the encoder's presets, simulated on
        held-out source sites at the same size and epsilon
        (:func:`graphxfer.tuning.tune_private`), else defaults for small targets; they replace
        the config's ``epochs``, ``batch_size``, ``learning_rate``, ``max_grad_norm`` and
        ``optimizer`` and are shown, with the reason, in ``hyperparameters_``. ``"config"``:
        exactly the config's values.
    alpha : float or None, default=None
        Strength of the source prior of the ``anchored`` strategy (1 approximates a fit on
        source and target records together; smaller trusts the target more). ``None``: from
        the encoder's presets, else 1.0.
    check_transfer : bool or None, default=None
        Guard against negative transfer (:mod:`graphxfer.guard`). Under privacy: a DP choice
        between the zero-shot source model, the DP fine-tuned model and, where the presets
        show it can win, a DP target-only head, paid from the same budget
        (``guard_fraction``) and recorded in the ledger. Without privacy: a comparison with a
        target-only ``baseline`` by cross-fitting. ``None``: on under privacy with the
        ``anchored`` strategy (which it needs), off otherwise.
    guard_fraction : float, default=0.2
        Share of ``privacy.epsilon`` spent by the private guard (half on the target-only
        candidate, half on the selection; all of it on the selection when the target-only
        candidate is not trained: no presets, or presets showing it cannot win).
    on_negative_transfer : {"warn", "fallback"}, default="warn"
        When transfer does not beat the baseline: warn, or warn and predict with the
        target-only baseline instead.
    baseline : {"xgboost", "logistic"}, default="xgboost"
        Target-only baseline of the transfer check.
    epochs, batch_size, learning_rate : int, int, float
        Non-private fine-tuning options.
    partial_blocks : int, default=1
        Blocks fine-tuned by the ``partial`` strategy.
    mapping, recode, convert : dict, optional
        Passed to :meth:`Cohort.align` to express target data in the source schema, at fit
        and at prediction (through ``adapter_``).
    random_state : int or None
        Seed of the non-private randomness: head initialisation, dropout, non-private
        batching. Under privacy, Poisson sampling and noise never derive from it (see
        ``privacy.PrivacyConfig.secure_mode``): a private fit is not reproducible from it.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present.
    progress : bool, default=False
        Show progress bars.
    ledger : privacy.PrivacyLedger, path or None, default=None
        The privacy ledger charged by a private fit, so that budgets compose across fits:
        a ledger object (appended to), or the path of a ledger file (read, or started when it
        does not exist yet; this fit's entries are appended and the file is written back,
        atomically, at the end of the fit). ``None`` starts a new ledger for every fit.
        ``privacy.total_budget`` caps the total on ``data_id`` over all recorded releases.
        With sklearn's tools pass a path: ``clone`` deep-copies a ledger object, so the
        clones' releases would not reach it. Fits running at the same time must not share
        a ledger file.
    data_id : str or None, default=None
        Label of the target data set in the ledger: fits charged to the same label compose.
        ``None`` uses ``"target:<cohort name>"``. A label, never computed from the records.

    Attributes
    ----------
    encoder_ : Encoder
        The encoder adapted to the target columns.
    adapter_ : graphxfer.adapt.TargetAdapter
        The translation of target records into the model's columns (saved with the model).
    module_ : torch.nn.Module
        The fine-tuned network (one logit per record).
    classes_ : ndarray of shape (2,)
    feature_schema_ : Schema
        The input feature columns after alignment (source names).
    feature_names_in_ : ndarray of str
    n_features_in_ : int
    alignment_report_ : AlignmentReport
    ledger_ : privacy.PrivacyLedger or None
        The ledger of the target data set (``data_id_``) after this fit: the releases of
        earlier fits charged to the same ledger and data set, then this fit's.
    fit_ledger_ : privacy.PrivacyLedger or None
        This fit's DP releases only; their composition is the model's guarantee.
    data_id_ : str or None
        The label this fit's releases were charged to.
    fine_tune_ : dict
        Summary of the fine-tuning run (strategy, phases, epsilon, delta).
    transfer_check_ : dict or None
        Result of the negative-transfer check.
    fallback_ : estimator or None
        The target-only baseline used for predictions after a failed check with
        ``on_negative_transfer="fallback"``.
    background_ : DataFrame
        SHAP background drawn from the source marginals.
    training_summary_ : dict
    metrics_ : list of dict
        Measurements of :meth:`add_metrics` (on private records, outside epsilon).
    audit_ : dict
        Result of :meth:`audit` (reads the private training records, outside epsilon).

    Metrics and audits are never saved with the model: :meth:`save_evaluation` writes them
    to a separate file. Under privacy, what the model file, :meth:`model_card`, reports and
    the command line show is the released view of :func:`graphxfer.release.released_state`.

    Examples
    --------
    >>> from graphxfer import TransferClassifier, datasets, pretrain
    >>> heart = datasets.load_heart_disease()
    >>> enc = pretrain(heart.select_groups(["cleveland", "hungarian"]), "mlp",
    ...                epochs=3, progress=False, random_state=0)
    >>> clf = TransferClassifier(enc, strategy="linear-probe", epochs=5, random_state=0)
    >>> clf = clf.fit(heart.select_groups("va"))
    >>> clf.predict_proba(heart.select_groups("va")).shape
    (200, 2)
    """

    # learned state, set by fit and load_model (graphxfer.model_io.restore)
    encoder_: Encoder
    module_: Any
    adapter_: TargetAdapter
    fallback_: Any
    feature_names_in_: np.ndarray
    training_summary_: dict[str, Any]
    _make_inputs: Any

    def __init__(
        self,
        encoder: Encoder | str | os.PathLike[str] | None = None,
        *,
        strategy: str = "anchored",
        privacy: PrivacyConfig | None = None,
        dp_hyperparameters: str = "auto",
        alpha: float | None = None,
        check_transfer: bool | None = None,
        guard_fraction: float = 0.2,
        on_negative_transfer: str = "warn",
        baseline: str = "xgboost",
        epochs: int = 30,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        partial_blocks: int = 1,
        mapping: dict[str, str] | None = None,
        recode: dict[str, dict[Any, Any]] | None = None,
        convert: dict[str, Any] | None = None,
        random_state: int | None = None,
        device: str = "auto",
        progress: bool = False,
        ledger: Any = None,
        data_id: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.strategy = strategy
        self.privacy = privacy
        self.dp_hyperparameters = dp_hyperparameters
        self.alpha = alpha
        self.check_transfer = check_transfer
        self.guard_fraction = guard_fraction
        self.on_negative_transfer = on_negative_transfer
        self.baseline = baseline
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.partial_blocks = partial_blocks
        self.mapping = mapping
        self.recode = recode
        self.convert = convert
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.ledger = ledger
        self.data_id = data_id

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> TransferClassifier:
        """Align the target data to the encoder's source schema and fine-tune.

        Parameters
        ----------
        X : Cohort, DataFrame or array of shape (n, n_source_features)
            Target training records.
        y : array-like of shape (n,), optional
            Outcome (0/1) when ``X`` is not a Cohort.

        Returns
        -------
        self
        """
        encoder = finetune.check_params(self)
        adapter = TargetAdapter(
            encoder.schema,
            mapping=self.mapping,
            recode=self.recode,
            convert=self.convert,
            private=self.privacy is not None,
        )
        cohort = adapter.to_cohort(X, y, need_target=True, training=True)
        keep_extra = encoder.kind != "graph" and encoder.name != "tabnet"
        aligned, report = adapter.fit(cohort, keep_extra=keep_extra)
        plan = finetune.plan_fit(self, encoder, aligned.n_persons)
        # under privacy the whole fit (guard included) must fit the budget: checked here
        # (a ledger file stays locked from here until it is written back)
        ledger = None if self.privacy is None else finetune.FitLedger.open(self, aligned.name)
        try:
            adapted, module, make_inputs, result = finetune.fit_aligned(
                self, encoder, aligned, adapter.columns, random_state=self.random_state,
                progress=self.progress, plan=plan, ledger=ledger,
            )  # fmt: skip
            check, fallback = run_guard(
                self, encoder, (adapted, module, make_inputs), aligned, adapter.columns, plan,
                ledger,
            )  # fmt: skip
            ledger_, fit_ledger_, data_id_ = finetune.settle(ledger, self.ledger)
        finally:
            if ledger is not None:
                ledger.close()
        summary = finetune.training_summary(aligned, cohort.name, private=self.privacy is not None)
        restore(self, {
            "encoder_": adapted, "module_": module, "make_inputs": make_inputs,
            "adapter_": adapter, "alignment_report_": report, "ledger_": ledger_,
            "fit_ledger_": fit_ledger_, "data_id_": data_id_, "fine_tune_": result.to_dict(),
            "transfer_check_": check, "hyperparameters_": plan["public"],
            "training_summary_": summary, "fallback_": fallback,
        })  # fmt: skip
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # one outcome, 0/1
        tags.input_tags.allow_nan = True  # missing values are encoded, not imputed
        return tags

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise _NotFittedError(
                "this TransferClassifier is not fitted yet; call fit(target_cohort) first"
            )

    def _model_space(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.adapter_.model_frame(frame)

    def transform_features(self, X: Any) -> pd.DataFrame:
        """``X`` in the model's own feature columns (``feature_names_in_``).

        The fit's mapping, recoding and unit conversions are applied, so the result holds
        source column names and units, plus the target-only columns the model uses.
        Explanations are computed over these columns. The result is a
        :class:`graphxfer.adapt.ModelFrame`: passed here again, it is not translated twice.
        """
        self._check_fitted()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphxferWarning)
            warnings.simplefilter("default", AbsentColumnWarning)  # checked first
            return self.adapter_.to_model(X)

    def predict_proba_features(self, features: pd.DataFrame) -> np.ndarray:
        """Probabilities for records already in the model's columns (see
        :meth:`transform_features`); no mapping or conversion is applied again."""
        self._check_fitted()
        names = list(self.feature_names_in_)
        if not isinstance(features, pd.DataFrame) or set(features.columns) != set(names):
            raise GraphxferError(
                f"predict_proba_features needs a DataFrame with exactly the columns {names}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphxferWarning)
            frame = self._model_space(features[names])
        return self._proba_of(frame)

    def _proba_of(self, features: pd.DataFrame) -> np.ndarray:
        if self.fallback_ is not None:
            p = self.fallback_.predict_proba(features)[:, 1]
        else:
            p = finetune.module_proba(self.module_, self._make_inputs(features))
        return np.column_stack([1.0 - p, p])

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of the two classes, shape ``(n, 2)``.

        ``X`` may be a Cohort, a DataFrame (target or source column names; the fit's mapping,
        recoding and conversions are applied) or an array in the source feature order.
        """
        return self._proba_of(self.transform_features(X))

    def torch_explain_parts(self) -> dict[str, Any]:
        """The network's per-column path: used by the ``deep`` and ``gradient`` explainers,
        and by ``exact`` and ``permutation`` as their fast inference path.

        ``encode`` translates records in the model's columns into the network's per-column
        inputs once (validation, the featurizer and the network's public ``column_inputs``:
        the linear encoder's features, the mlp's and ft-transformer's column tokens, one
        ``d``-vector per column and record); ``module`` maps such inputs to the log-odds
        (``from_column_inputs`` and the head), with no validation or featurisation per call;
        ``groups`` names the inputs of each column, whose attributions are summed into it.
        """
        import torch
        from torch import nn

        self._check_fitted()
        # a graph encoder's module (a GraphAttachedClassifier) has no per-column network
        net: Any = (
            getattr(self.module_, "network", None) if self.encoder_.kind == "tabular" else None
        )
        if (
            self.fallback_ is not None
            or net is None
            or not callable(getattr(net, "column_inputs", None))
            or getattr(net, "missing", "token") == "drop"
        ):
            raise GraphxferError(
                "gradient-based explanations need a fine-tuned linear, mlp or ft-transformer "
                "encoder (missing='token'); use method='permutation' or 'exact' for this model"
            )
        head = self.module_.head
        make_inputs = self._make_inputs
        device = next(self.module_.parameters()).device  # the head always has parameters

        class _Inputs(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net
                self.head = head

            def forward(self, flat: torch.Tensor) -> torch.Tensor:
                return self.head(self.net.from_column_inputs(flat)).reshape(-1)

        def encode(frame: pd.DataFrame) -> torch.Tensor:
            numeric, missing, categorical = make_inputs(self._model_space(frame))
            with torch.no_grad():
                flat = net.column_inputs(
                    numeric.to(device), missing.to(device), categorical.to(device)
                )
            return flat.cpu()

        groups: dict[str, list[int]] = {str(name): [] for name in self.feature_names_in_}
        groups.update({str(c): list(v) for c, v in net.column_groups().items()})
        return {"module": _Inputs().eval(), "encode": encode, "groups": groups}

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class (threshold 0.5)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the positive class."""
        p = np.clip(self.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    # ------------------------------------------------------------------ measurements
    def add_metrics(
        self,
        X: Any,
        y: Any = None,
        *,
        on: str = "held-out",
        n_boot: int = 500,
        random_state: int | None = 0,
    ) -> list[dict[str, Any]]:
        """Measure AUROC, AUPRC, Brier score and ECE (95% bootstrap CIs) and keep them.

        The results are appended to ``metrics_``. They are computed on private records
        without differential privacy, so they are not covered by epsilon (``private=False``)
        and never enter the model file: :meth:`save_evaluation` writes them to a separate
        evaluation file, and reports show them in a section marked as outside epsilon.

        Parameters
        ----------
        X, y, on, n_boot, random_state :
            As in :func:`graphxfer.assessment.measure`: records with outcomes (``y`` when
            ``X`` is not a Cohort), what they are (``"held-out"``, ``"training"``...), and
            the bootstrap.

        Returns
        -------
        list of dict
            ``{name, value, ci_low, ci_high, on, n, private}`` per metric.
        """
        out = measure(self, X, y, on=on, n_boot=n_boot, random_state=random_state)
        self.metrics_ = [*getattr(self, "metrics_", []), *out]
        return out

    def audit(self, members: Any, nonmembers: Any, *, confidence: float = 0.95) -> dict[str, Any]:
        """Empirical membership-inference audit of this model, kept in ``audit_``.

        A loss-threshold attack tries to tell the training records (``members``) from
        records of the same population never trained on (``nonmembers``)
        (:func:`graphxfer.assessment.audit_model`). It reports the attack's AUROC and an
        epsilon lower bound (Clopper-Pearson, ``confidence``); a DP model passes when the
        bound does not exceed its epsilon (this fit's, from ``fit_ledger_``). The audit reads
        the private training records, so its result is not covered by the DP guarantee: like
        :meth:`add_metrics` it is kept out of the model file and goes to the evaluation file
        (:meth:`save_evaluation`).

        Returns
        -------
        dict
            :class:`privacy.AuditResult` fields.
        """
        self.audit_ = audit_model(self, members, nonmembers, confidence=confidence)
        return self.audit_

    # ------------------------------------------------------------------ model card
    def evaluation(self) -> dict[str, Any] | None:
        """The measurements on private records (:meth:`add_metrics`, :meth:`audit`), marked
        as not covered by epsilon; ``None`` when nothing was measured."""
        self._check_fitted()
        return evaluation_record(self)

    def save_evaluation(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`evaluation` as JSON (atomically), apart from the model file.

        Pass it to :func:`graphxfer.report` (``evaluation=``) or ``graphxfer report
        --evaluation FILE`` to show it in the report's section on private records.

        Raises
        ------
        GraphxferError
            When nothing was measured yet.
        """
        record = self.evaluation()
        if record is None:
            raise GraphxferError(
                "nothing to save: measure the model first with add_metrics(...) or audit(...)"
            )
        return write_evaluation(path, record)

    def model_card(self) -> dict[str, Any]:
        """The facts a report shows about this model (see :func:`graphxfer.report`).

        Only what the fit releases (:func:`graphxfer.release.released_state`): under privacy
        nothing computed from the training records outside the ledger. Metrics and audits
        are not part of it (see :meth:`evaluation`).
        """
        self._check_fitted()
        return model_card(self)

    # ------------------------------------------------------------------ files
    def save(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the fitted model: ``weights.safetensors`` + ``meta.json`` (folder or .zip).

        With the weights goes the released view of the fit
        (:func:`graphxfer.release.released_state`, the target adapter included): under
        privacy nothing computed from the training records outside the ledger. Metrics and
        audits never do (see :meth:`save_evaluation`). A fallback XGBoost baseline is stored
        as UBJSON. :func:`load_model` reads the model back.
        """
        return save_model(self, path, key=key, overwrite=overwrite)
