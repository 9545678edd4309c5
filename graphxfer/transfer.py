"""The transfer estimator: a pretrained encoder fine-tuned on a small target, optionally with DP."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from graphxfer.cohort import AlignmentReport, Cohort
from graphxfer.encoder import Encoder, load_encoder
from graphxfer.exceptions import (
    GraphxferError,
    GraphxferWarning,
    ModelFileError,
    NegativeTransferWarning,
    NotFittedError,
)
from graphxfer.modelfile import package_versions, read_model_file, write_model_file
from graphxfer.release import (
    evaluation_record,
    fit_privacy,
    released_state,
    withheld_data_warnings,
    write_evaluation,
)
from graphxfer.schema import Column, Schema

__all__ = ["TransferCheckSkippedWarning", "TransferClassifier", "load_model"]

STRATEGIES = ("anchored", "linear-probe", "full", "partial", "lp-ft")
_MODEL_SPACE = "graphxfer.model_space"


class TransferCheckSkippedWarning(GraphxferWarning):
    """The negative-transfer check was not run (e.g. under differential privacy)."""


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
        What is fine-tuned. ``anchored`` (see :mod:`graphxfer.anchoring`): the source model's
        logit plus a zero-initialised correction of its head, pulled toward zero by the
        source prior (the Fisher information of the source head, stored at pretraining), so
        that the model degrades toward the source model, never into noise. The others: the
        head only; everything; the last ``partial_blocks`` blocks and the head; or a linear
        probe followed by a full fine-tune (one privacy budget for both).
    privacy : privacy.PrivacyConfig or None, default=None
        Fine-tune with differential privacy (record- or person-level (epsilon, delta)). The
        whole fit, the private transfer guard included, stays within ``privacy.epsilon``.
    dp_hyperparameters : {"auto", "config"}, default="auto"
        Under privacy, where the fine-tuning hyper-parameters come from. ``"auto"``: from the
        encoder's presets, chosen by simulating the target on held-out source sites at the
        same size and epsilon (:func:`graphxfer.tuning.tune_private`; stored by
        ``pretrain(source, "auto")``), else from defaults that work for small targets; the
        values, and why, are in ``hyperparameters_`` and the model card. They replace the
        config's ``epochs``, ``batch_size``, ``learning_rate``, ``max_grad_norm`` and
        ``optimizer``. ``"config"``: exactly the config's values.
    alpha : float or None, default=None
        Strength of the source prior of the ``anchored`` strategy (1 approximates a fit on
        source and target records together; smaller trusts the target more). ``None``: from
        the encoder's presets, else 1.0.
    check_transfer : bool or None, default=None
        Guard against negative transfer. Under privacy: a differentially private choice
        between the zero-shot source model, the DP fine-tuned model and, where the
        encoder's presets show it can win, a DP target-only head (exponential mechanism on
        the training records' Brier score, with the presets' simulated results as a public
        prior), paid from the same budget (``guard_fraction``) and recorded in the ledger.
        Without privacy: the
        transferred model is compared with a target-only ``baseline`` by cross-fitting.
        ``None`` turns the guard on under privacy with the ``anchored`` strategy (which it
        needs) and off otherwise.
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
        Passed to :meth:`Cohort.align` to express target data in the source schema.
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

    def __init__(
        self,
        encoder: Encoder | str | os.PathLike[str] | None = None,
        *,
        strategy: str = "anchored",
        privacy: Any = None,
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

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> Encoder:
        if self.encoder is None:
            raise GraphxferError(
                "TransferClassifier needs a pretrained encoder: "
                "TransferClassifier(graphxfer.pretrain(source_cohort))"
            )
        if isinstance(self.encoder, (str, os.PathLike)):
            encoder = load_encoder(self.encoder)
        elif isinstance(self.encoder, Encoder):
            encoder = self.encoder
        else:
            raise GraphxferError(
                f"encoder must be a graphxfer.Encoder or a path, got {type(self.encoder).__name__}"
            )
        if self.strategy not in STRATEGIES:
            raise GraphxferError(f"strategy={self.strategy!r} is not one of {STRATEGIES}")
        if self.on_negative_transfer not in ("warn", "fallback"):
            raise GraphxferError(
                f"on_negative_transfer={self.on_negative_transfer!r} must be 'warn' or 'fallback'"
            )
        if self.baseline not in ("xgboost", "logistic"):
            raise GraphxferError(f"baseline={self.baseline!r} must be 'xgboost' or 'logistic'")
        if self.privacy is not None:
            from privacy import PrivacyConfig

            if not isinstance(self.privacy, PrivacyConfig):
                raise GraphxferError(
                    f"privacy must be a privacy.PrivacyConfig or None, got "
                    f"{type(self.privacy).__name__}"
                )
        for name in ("epochs", "batch_size", "partial_blocks"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise GraphxferError(f"{name}={value!r} must be a positive integer")
        if not self.learning_rate > 0:
            raise GraphxferError(f"learning_rate={self.learning_rate!r} must be > 0")
        if self.dp_hyperparameters not in ("auto", "config"):
            raise GraphxferError(
                f"dp_hyperparameters={self.dp_hyperparameters!r} must be 'auto' or 'config'"
            )
        if self.alpha is not None and not (
            isinstance(self.alpha, (int, float)) and np.isfinite(self.alpha) and self.alpha >= 0
        ):
            raise GraphxferError(f"alpha={self.alpha!r} must be a number >= 0 or None")
        if self.check_transfer not in (None, True, False):
            raise GraphxferError(
                f"check_transfer={self.check_transfer!r} must be True, False or None"
            )
        if not (isinstance(self.guard_fraction, (int, float)) and 0 < self.guard_fraction < 1):
            raise GraphxferError(
                f"guard_fraction={self.guard_fraction!r} must be a number in (0, 1)"
            )
        return encoder

    # ------------------------------------------------------------------ data
    def _to_cohort(
        self, X: Any, y: Any, encoder: Encoder, *, need_target: bool, training: bool = True
    ) -> Cohort:
        """Turn ``X`` (Cohort, DataFrame or array) into a cohort in the encoder's terms.

        With ``need_target`` and ``training``, ``X`` holds the training records of a fit: under
        privacy, nothing about a column may then be inferred from them.
        """
        private_training = need_target and training and self.privacy is not None
        if isinstance(X, Cohort):
            if y is not None:
                raise GraphxferError("pass y only with a DataFrame or array, not with a Cohort")
            if need_target and not X.has_target:
                raise GraphxferError("the cohort has no target column (role='target')")
            if not need_target and X.schema.target is not None:
                # predictions need no outcome: drop it (a single-class subset is fine here)
                name = X.schema.target.name
                return Cohort._from_valid(X.data.drop(columns=[name]), X.schema.drop(name), X)
            return X
        source = encoder.schema
        target_name = source.target.name if source.target is not None else "__target__"
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
        else:
            from scipy import sparse

            if sparse.issparse(X):  # np.asarray would make a 0-d object array of it
                raise GraphxferError(
                    "sparse input is not supported: pass a dense array or a DataFrame "
                    "(e.g. X.toarray())"
                )
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise GraphxferError(f"X must be 2-D, got an array of shape {arr.shape}")
            names = source.feature_names
            if arr.shape[1] != len(names):
                raise GraphxferError(
                    f"X has {arr.shape[1]} columns but the encoder's source has {len(names)} "
                    f"features ({names}); pass a DataFrame with named columns"
                )
            frame = pd.DataFrame(arr, columns=names)
        columns: list[Column] = []
        for name in frame.columns:
            name = str(name)
            if name in source and source[name].role == "feature":
                columns.append(Column.from_dict(source[name].to_dict()))
            elif name == target_name and y is None:
                continue
            elif private_training:
                raise GraphxferError(
                    f"column {name!r} is not a feature of the encoder's source schema. Under "
                    "differential privacy its kind, bounds and categories cannot be inferred "
                    "from the target records: pass a Cohort whose schema declares the column "
                    "(public knowledge), or drop it"
                )
            else:
                inferred = Schema.infer(frame[[name]]).columns[0]
                columns.append(inferred)
        if y is not None:
            y_arr = np.asarray(y).ravel()
            if len(y_arr) != len(frame):
                raise GraphxferError(f"X has {len(frame)} rows but y has {len(y_arr)}")
            frame[target_name] = y_arr
            columns.append(Column(target_name, "binary", "target"))
        elif target_name in frame.columns and need_target:
            columns.append(Column.from_dict(source[target_name].to_dict()))
        elif need_target:
            raise GraphxferError("fit needs the outcome: pass y, or a Cohort with a target")
        unknown: Literal["error", "map"] = "error" if need_target else "map"
        with withheld_data_warnings(private_training):
            return Cohort(frame, Schema(columns), unknown=unknown, all_missing="keep")

    def _align(self, cohort: Cohort, encoder: Encoder) -> tuple[Cohort, AlignmentReport]:
        with withheld_data_warnings(self.privacy is not None):
            return cohort.align(
                encoder.schema, self.mapping, recode=self.recode, convert=self.convert
            )

    def _feature_columns(
        self, aligned: Cohort, report: AlignmentReport, encoder: Encoder
    ) -> tuple[list[Column], list[str]]:
        """The columns the fine-tuned model reads, and extra columns it cannot use."""
        cols: list[Column] = []
        ignored: list[str] = []
        for col in aligned.schema.features:
            if col.name not in report.extra:
                cols.append(col)
                continue
            if encoder.kind == "graph" or encoder.name == "tabnet":
                ignored.append(col.name)
                continue
            if col.kind == "numeric" and (col.lower is None or col.upper is None):
                if self.privacy is not None:
                    raise GraphxferError(
                        f"target-only column {col.name!r} has no declared bounds. Under "
                        "differential privacy its scaling cannot come from target data: declare "
                        "lower/upper in the schema (public knowledge), or drop the column"
                    )
                values = aligned.data[col.name].astype(float)
                lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
                col = Column.from_dict({**col.to_dict(), "lower": lo, "upper": max(hi, lo + 1)})
            if col.kind == "categorical" and col.categories is None:
                if self.privacy is not None:
                    raise GraphxferError(
                        f"target-only column {col.name!r} has no declared categories. Under "
                        "differential privacy its vocabulary cannot come from target data: list "
                        "the categories in the schema, or drop the column"
                    )
                cats = sorted(str(v) for v in aligned.data[col.name].dropna().unique())
                col = Column.from_dict({**col.to_dict(), "categories": cats})
            cols.append(col)
        return cols, ignored

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
        encoder = self._check_params()
        self._active_ledger: tuple[Any, str, int] | None = None  # see _fit_ledger
        cohort = self._to_cohort(X, y, encoder, need_target=True)
        aligned, report = self._align(cohort, encoder)
        columns, ignored = self._feature_columns(aligned, report, encoder)
        plan = self._plan_fit(encoder, aligned)
        if self.privacy is not None and self.privacy.total_budget is not None:
            # the whole fit (guard included) must fit the budget: refuse before any step
            ledger, data_id = self._fit_ledger(aligned)
            ledger.check_budget(
                float(self.privacy.epsilon),
                total_budget=self.privacy.total_budget,
                data_id=data_id,
            )
        fitted = self._fit_aligned(
            encoder, aligned, columns, self.random_state, self.progress, plan=plan
        )
        self.encoder_, self.module_, self._make_inputs, result = fitted
        self.hyperparameters_ = plan["public"]
        self.alignment_report_ = report
        self.ignored_columns_ = ignored
        self.feature_schema_ = Schema([Column.from_dict(c.to_dict()) for c in columns])
        self.feature_names_in_ = np.asarray([c.name for c in columns], dtype=object)
        self.n_features_in_ = len(columns)
        self.classes_ = np.array([0, 1])
        self.ledger_ = result.ledger
        self.fine_tune_ = result.to_dict()
        self.background_ = self.encoder_.background(100, random_state=0)[
            [c.name for c in columns if c.name in self.encoder_.schema]
        ]
        for c in columns:  # extra target-only columns have no source marginal
            if c.name not in self.background_.columns:
                self.background_[c.name] = np.nan
        self.background_ = self.background_[[c.name for c in columns]]
        self.training_summary_: dict[str, Any] = {
            "n_rows": len(aligned),
            "n_persons": aligned.n_persons,
            "name": cohort.name,
            # outcome statistics of private training data are only shown without DP
            "positive_rate": None if self.privacy is not None else float(aligned.y.mean()),
            "private": self.privacy is not None,
        }
        self.fallback_: Any = None
        self.transfer_check_: dict[str, Any] | None = None
        if self.check_transfer is None:  # on by default where it applies: DP + anchored
            guard = self.privacy is not None and self.strategy == "anchored"
        else:
            guard = bool(self.check_transfer)
        if guard and self.privacy is not None:
            self._private_guard(aligned, columns, plan)
        elif guard:
            self._run_transfer_check(encoder, aligned, columns)
        self._settle_ledger()
        return self

    def _fit_ledger(self, aligned: Cohort) -> tuple[Any, str]:
        """The ledger charged by this fit's DP releases and the data set's label.

        The same pair for every call within one fit: ``ledger`` itself, the ledger read from
        the ``ledger`` file (a new one when the file does not exist yet), or a new ledger.
        :meth:`_settle_ledger` keeps it and writes the file back at the end of the fit.
        """
        import privacy as dp

        active = getattr(self, "_active_ledger", None)
        if active is not None:
            return active[0], active[1]
        data_id = self.data_id
        if data_id is None:
            data_id = f"target:{aligned.name or 'cohort'}"
        elif not isinstance(data_id, str) or not data_id.strip():
            raise GraphxferError(
                f"data_id={data_id!r} must be a non-empty label such as 'hospital-B' (or None)"
            )
        source = self.ledger
        if isinstance(source, dp.PrivacyLedger):
            ledger = source
        elif isinstance(source, (str, os.PathLike)):
            if Path(source).is_dir():
                raise GraphxferError(
                    f"ledger={str(source)!r} is a folder; give the path of a ledger JSON file"
                )
            if Path(source).exists():
                ledger = dp.PrivacyLedger.load(source)
            else:
                ledger = dp.PrivacyLedger(accountant=self._ledger_accountant())
        elif source is None:
            ledger = dp.PrivacyLedger(accountant=self._ledger_accountant())
        else:
            raise GraphxferError(
                f"ledger must be a privacy.PrivacyLedger, the path of a ledger file or None, "
                f"got {type(source).__name__}"
            )
        self._active_ledger = (ledger, data_id, len(ledger))
        return ledger, data_id

    def _ledger_accountant(self) -> str:
        return "rdp" if self.privacy is not None and self.privacy.accountant == "rdp" else "prv"

    def _settle_ledger(self) -> None:
        """End of a fit: write a ledger file back and keep the ledger of the data set.

        Sets ``ledger_`` (the data set's entries after this fit), ``fit_ledger_`` (this fit's
        entries) and ``data_id_``; all ``None`` when the fit made no DP release.
        """
        import privacy as dp

        active, self._active_ledger = getattr(self, "_active_ledger", None), None
        self.ledger_ = None
        self.fit_ledger_: Any = None
        self.data_id_: str | None = None
        if active is None:
            return
        ledger, data_id, start = active
        if isinstance(self.ledger, (str, os.PathLike)):
            ledger.save(self.ledger)
        own = [e for e in ledger.entries[start:] if e.data_id == data_id]
        on_data = [e for e in ledger.entries if e.data_id == data_id]
        self.ledger_ = dp.PrivacyLedger(on_data, accountant=ledger.accountant, delta=ledger.delta)
        self.fit_ledger_ = dp.PrivacyLedger(own, accountant=ledger.accountant, delta=ledger.delta)
        self.data_id_ = data_id

    def _plan_fit(self, encoder: Encoder, aligned: Cohort) -> dict[str, Any]:
        """Hyper-parameters and budget split of a fit on ``aligned`` (public facts only:
        the encoder's presets, the number of records and the requested epsilon)."""
        from graphxfer.tuning import default_hyperparameters, lookup_presets

        n = int(aligned.n_persons)
        presets = getattr(encoder, "metadata", {}).get("dp_presets")
        eps = None if self.privacy is None else float(self.privacy.epsilon)
        found = lookup_presets(presets, n, eps)
        public: dict[str, Any] = {"n": n, "strategy": self.strategy}
        if self.privacy is None:
            alpha = self.alpha
            if alpha is None:
                alpha = found["hyperparameters"]["alpha"] if found else 1.0
                public["alpha_source"] = "presets" if found else "default"
            public["alpha"] = float(alpha)
            return {"config": None, "alpha": float(alpha), "public": public}
        cfg = self.privacy
        eps = float(cfg.epsilon)
        guard = self.check_transfer is None or bool(self.check_transfer)
        guard = guard and self.strategy == "anchored"
        prior = None if found is None else found.get("prior")
        g = float(self.guard_fraction) if guard else 0.0
        # the target-only candidate costs budget: it is trained only where the public
        # simulation shows it can win at this size and epsilon
        with_target_only = guard and prior is not None and (prior.get("target-only") or 0.0) >= 0.02
        eps_sel = eps * g / 2 if with_target_only else eps * g
        eps_to = eps * g / 2 if with_target_only else 0.0
        eps_ft = eps - eps_sel - eps_to
        changes: dict[str, Any] = {"epsilon": eps_ft}
        why = "the privacy config as given"
        alpha = self.alpha
        if self.dp_hyperparameters == "auto":
            if self.strategy == "anchored":
                hp = dict(found["hyperparameters"]) if found else default_hyperparameters(n)
                why = (
                    f"presets simulated on held-out source sites at n={found['n']}, "
                    f"epsilon={found['epsilon']}"
                    if found
                    else "defaults for small targets (no presets stored with the encoder)"
                )
                if alpha is None:
                    alpha = hp["alpha"]
                for key in ("epochs", "learning_rate", "max_grad_norm", "optimizer"):
                    changes[key] = hp[key]
                # the simulation's batch is 60% of the records: the same share of this n
                changes["batch_size"] = default_hyperparameters(n)["batch_size"]
            elif cfg.batch_size > n:
                changes["batch_size"] = max(1, n // 2)
                why = f"the privacy config, with batch_size lowered to {n // 2} (n={n})"
        if alpha is None:
            alpha = 1.0
        config = dataclasses.replace(cfg, **changes)
        public.update({
            "source": why,
            "alpha": float(alpha),
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "max_grad_norm": config.max_grad_norm,
            "optimizer": config.optimizer,
            "epsilon_fine_tune": eps_ft,
            "epsilon_guard_target_only": eps_to,
            "epsilon_guard_selection": eps_sel,
        })  # fmt: skip
        return {
            "config": config,
            "alpha": float(alpha),
            "public": public,
            "guard": guard,
            "prior": prior,
            "epsilon_target_only": eps_to,
            "epsilon_selection": eps_sel,
        }

    def _fit_aligned(
        self,
        encoder: Encoder,
        aligned: Cohort,
        columns: list[Column],
        random_state: int | None,
        progress: bool,
        plan: dict[str, Any] | None = None,
    ) -> tuple[Encoder, Any, Any, Any]:
        import torch

        import privacy as dp
        from graphxfer.anchoring import (
            anchor_for,
            anchor_module,
            fit_anchored_map,
            stored_precision,
        )

        # new target-only column parameters and dropout draw from torch's global generators:
        # fork them, seeded from random_state, so that a fit is reproducible (and global state
        # is left as it was)
        with _torch_seeded(random_state):
            module, make_inputs, inner = encoder.fine_tunable(columns, random_state=random_state)
        adapted = Encoder(
            inner,
            schema=encoder.schema,
            source_summary=encoder.source_summary,
            kind=encoder.kind,
            metadata=getattr(encoder, "metadata", None),
        )
        plan = self._plan_fit(encoder, aligned) if plan is None else plan
        X = aligned.X[[c.name for c in columns]]
        inputs = make_inputs(X)
        y = torch.as_tensor(aligned.y, dtype=torch.float32)
        strategy: Any = self.strategy
        anchor = None
        if self.strategy == "anchored":
            anchor_module(module)
            if encoder.source_head is None:
                # self-supervised pretraining left no source prediction to anchor to (the
                # module's head is freshly initialised): the correction starts from 0 logit
                with torch.no_grad():
                    module.head.source_weight.zero_()
                    module.head.source_bias.zero_()
            anchor = anchor_for(
                module,
                stored_precision(encoder),
                n_target=aligned.n_persons,
                alpha=plan["alpha"],
            )
            strategy = "linear-probe"  # the correction is the head's only parameter
        elif self.strategy == "partial":
            strategy = dp.get_strategy("partial", n_blocks=self.partial_blocks)
        common: dict[str, Any] = {
            "strategy": strategy,
            "random_state": random_state,
            "device": self.device,
            "progress": progress,
        }
        with _torch_seeded(random_state):
            if self.privacy is not None:
                person_index = _person_index(aligned)
                ledger, data_id = self._fit_ledger(aligned)
                result = dp.fine_tune(
                    module,
                    inputs,
                    y,
                    config=plan["config"],
                    person_index=person_index,
                    person_level=True,
                    ledger=ledger,
                    data_id=data_id,
                    anchor=anchor,
                    **common,
                )
            elif anchor is not None:
                fit_anchored_map(module, inputs, y, anchor)
                result = dp.FineTuneResult(
                    strategy="anchored",
                    private=False,
                    phases=(),
                    epsilon=None,
                    delta=None,
                    composition="not private",
                    ledger=None,
                )
            else:
                config = dp.TrainConfig(
                    epochs=int(self.epochs),
                    batch_size=int(self.batch_size),
                    learning_rate=float(self.learning_rate),
                )
                result = dp.fine_tune(module, inputs, y, train_config=config, **common)
        module.eval()
        return adapted, module, make_inputs, result

    def _private_guard(self, aligned: Cohort, columns: list[Column], plan: dict[str, Any]) -> None:
        """Differentially private choice of the model to ship (the private transfer guard).

        Candidates: the zero-shot source model (the anchored model with a zero correction),
        the DP fine-tuned model and, unless the presets show it cannot win, a head trained on
        the target alone with DP-SGD. The exponential mechanism picks one with utility minus
        the summed Brier score over the training persons (each person's mean over their rows,
        in [0, 1], so one person changes a utility by at most 1, and all utilities move the
        same way: monotone), with the presets' simulated prior as a public base measure.
        """
        import privacy as dp
        from graphxfer.anchoring import train_target_only
        from privacy.selection import exponential_mechanism

        if not plan.get("guard"):
            reason = (
                "under differential privacy the negative-transfer guard needs "
                f"strategy='anchored' (got {self.strategy!r})"
            )
            warnings.warn(
                f"the negative-transfer check was skipped: {reason}; compare on held-out data "
                "with graphxfer.evaluate.transfer_curve instead",
                TransferCheckSkippedWarning,
                stacklevel=3,
            )
            self.transfer_check_ = {"ran": False, "reason": reason}
            return
        ledger, data_id = self._fit_ledger(aligned)
        module = self.module_
        X = aligned.X[[c.name for c in columns]]
        inputs = self._make_inputs(X)
        y = aligned.y.astype(float)
        states: dict[str, dict[str, Any]] = {"fine-tuned": copy.deepcopy(module.state_dict())}
        zero = copy.deepcopy(states["fine-tuned"])
        zero["head.correction.weight"].zero_()
        zero["head.correction.bias"].zero_()
        if self.encoder_.source_head is not None:  # else there is no source model to ship
            states["zero-shot"] = zero
        person_index = _person_index(aligned)
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
                    person_index=person_index,
                    person_level=True,
                    ledger=ledger,
                    data_id=data_id,
                    device=self.device,
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
                brier = (_proba(scratch, inputs) - y) ** 2
                per_person = pd.Series(brier).groupby(np.asarray(person_index)).mean()
                utilities.append(-float(per_person.sum()))
            choice = names[
                exponential_mechanism(
                    utilities, epsilon=eps_sel, sensitivity=1.0, monotone=True, prior=prior
                )
            ]
            ledger.append(
                dp.LedgerEntry(
                    mechanism="exponential-mechanism",
                    epsilon=eps_sel,
                    delta=0.0,
                    data_id=data_id,
                    purpose="transfer-guard:selection",
                    n_records=int(aligned.n_persons),
                    unit="person",
                )
            )
        module.load_state_dict(states[choice])
        module.eval()
        self.ledger_ = ledger
        self.transfer_check_ = {
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

    def _run_transfer_check(self, encoder: Encoder, aligned: Cohort, columns: list[Column]) -> None:
        if self.privacy is not None:
            warnings.warn(
                "the negative-transfer check was skipped: under differential privacy, "
                "cross-fitting on the target would spend privacy budget that is not accounted. "
                "Compare on held-out data with graphxfer.evaluate.transfer_curve instead",
                TransferCheckSkippedWarning,
                stacklevel=3,
            )
            self.transfer_check_ = {"ran": False, "reason": "skipped under differential privacy"}
            return
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        y = aligned.y
        n_splits = int(min(3, np.bincount(y).min()))
        if n_splits < 2:
            self.transfer_check_ = {"ran": False, "reason": "too few records of one class"}
            return
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        oof_transfer = np.zeros(len(y))
        oof_base = np.zeros(len(y))
        names = [c.name for c in columns]
        X = aligned.X[names]
        for k, (tr, te) in enumerate(folds.split(np.zeros(len(y)), y)):
            seed = None if self.random_state is None else self.random_state + 1 + k
            _, module, make_inputs, _ = self._fit_aligned(
                encoder, aligned.subset(tr), columns, seed, False
            )
            oof_transfer[te] = _proba(module, make_inputs(X.iloc[te]))
            base = self._make_baseline(seed).fit(X.iloc[tr], y[tr])
            oof_base[te] = base.predict_proba(X.iloc[te])[:, 1]
        auc_t = float(roc_auc_score(y, oof_transfer))
        auc_b = float(roc_auc_score(y, oof_base))
        passed = auc_t >= auc_b
        action = "none"
        if not passed:
            action = "fallback" if self.on_negative_transfer == "fallback" else "warned"
            warnings.warn(
                f"negative transfer: cross-fitted AUROC of the transferred model {auc_t:.3f} is "
                f"below the target-only {self.baseline} baseline {auc_b:.3f}"
                + (
                    "; predictions now come from the baseline"
                    if action == "fallback"
                    else "; consider the baseline or another strategy"
                ),
                NegativeTransferWarning,
                stacklevel=3,
            )
            if action == "fallback":
                self.fallback_ = self._make_baseline(self.random_state).fit(X, y)
        self.transfer_check_ = {
            "ran": True,
            "method": f"{n_splits}-fold cross-fitting on the target training data",
            "transfer_auc": auc_t,
            "baseline": self.baseline,
            "baseline_auc": auc_b,
            "passed": passed,
            "action": action,
        }

    def _make_baseline(self, seed: int | None) -> Any:
        from tabular.baselines import LogisticBaseline, XGBoostBaseline

        if self.baseline == "logistic":
            return LogisticBaseline()
        return XGBoostBaseline(n_estimators=100, max_depth=3, random_state=seed)

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
        cohort = Cohort(frame, self.feature_schema_, unknown="map", all_missing="keep")
        return cohort.X

    def _features(self, X: Any) -> pd.DataFrame:
        names = list(self.feature_names_in_)
        if isinstance(X, pd.DataFrame) and list(X.columns) == names:
            no_translation = not (self.mapping or self.recode or self.convert)
            if no_translation or X.attrs.get(_MODEL_SPACE):
                return self._model_space(X)  # already in the model's columns
        cohort = self._to_cohort(X, None, self.encoder_, need_target=False)
        aligned, _ = cohort.align(
            self.encoder_.schema, self.mapping, recode=self.recode, convert=self.convert,
            unknown="map",
        )  # fmt: skip
        data = aligned.data
        for name in names:
            if name not in data.columns:
                data[name] = np.nan
        return data[names]

    def transform_features(self, X: Any) -> pd.DataFrame:
        """``X`` in the model's own feature columns (``feature_names_in_``).

        The fit's mapping, recoding and unit conversions are applied, so the result holds
        source column names and units, plus the target-only columns the model uses.
        Explanations are computed over these columns.
        """
        self._check_fitted()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphxferWarning)
            out = self._features(X)
        out.attrs[_MODEL_SPACE] = True  # translating it again is a no-op
        return out

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
            p = _proba(self.module_, self._make_inputs(features))
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
        net = self.module_.network
        if (
            self.fallback_ is not None
            or self.encoder_.kind != "tabular"
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
            ``{name, value, ci_low, ci_high, on, n, private}`` per metric.
        """
        from graphxfer.evaluate.metrics import METRICS, bootstrap_ci

        self._check_fitted()
        cohort = self._to_cohort(X, y, self.encoder_, need_target=True, training=False)
        p = self.predict_proba(cohort)[:, 1]
        out = []
        for name in METRICS:
            value, lo, hi = bootstrap_ci(
                cohort.y, p, name, n_boot=n_boot, random_state=random_state
            )
            out.append({
                "name": name, "value": value, "ci_low": lo, "ci_high": hi,
                "on": on, "n": len(cohort), "private": False,
            })  # fmt: skip
        self.metrics_ = [*getattr(self, "metrics_", []), *out]
        return out

    def audit(self, members: Any, nonmembers: Any, *, confidence: float = 0.95) -> dict[str, Any]:
        """Empirical membership-inference audit of this model, kept in ``audit_``.

        A loss-threshold attack tries to tell the training records (``members``) from
        records of the same population never trained on (``nonmembers``). It reports the
        attack's AUROC and an epsilon lower bound (Clopper-Pearson, ``confidence``); a DP
        model passes when the bound does not exceed its epsilon (this fit's, from
        ``fit_ledger_``). The audit reads the private training records, so its result is not
        covered by the DP guarantee: like :meth:`add_metrics` it is kept out of the model file
        and goes to the evaluation file (:meth:`save_evaluation`).

        Returns
        -------
        dict
            :class:`privacy.AuditResult` fields.
        """
        from privacy import membership_inference_audit

        self._check_fitted()
        mem = self._to_cohort(members, None, self.encoder_, need_target=True, training=False)
        non = self._to_cohort(nonmembers, None, self.encoder_, need_target=True, training=False)
        claimed = None
        delta = 0.0
        guarantee = fit_privacy(self)
        if guarantee is not None:
            claimed, delta = guarantee["epsilon"], guarantee["delta"]
        result = membership_inference_audit(
            self.predict_proba(mem)[:, 1],
            mem.y,
            self.predict_proba(non)[:, 1],
            non.y,
            claimed_epsilon=claimed,
            delta=delta,
            confidence=confidence,
        )
        self.audit_ = result.to_dict()
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
        state = released_state(self)
        priv = state["privacy"]
        if priv is not None:
            priv = {k: v for k, v in priv.items() if k != "fit_entries"}
        src = dict(self.encoder_.source_summary)
        src.pop("marginals", None)
        card = {
            "title": f"{self.encoder_.name} transferred to {self.training_summary_.get('name')}",
            "source": src,
            "encoder": {
                "name": self.encoder_.name,
                "kind": self.encoder_.kind,
                "pretraining_epochs": len(self.encoder_.history),
            },
            "strategy": self.strategy,
            "hyperparameters": state["hyperparameters"],
            "target_size": state["training_summary"]["n_persons"],
            "privacy": priv,
            "transfer_check": state["transfer_check"],
            "alignment": state["alignment"],
            "withheld": state["withheld"],
            "package_versions": package_versions(),
        }
        return card

    # ------------------------------------------------------------------ files
    def save(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the fitted model: ``weights.safetensors`` + ``meta.json`` (folder or .zip).

        The released view of the fit travels with the weights
        (:func:`graphxfer.release.released_state`: parameters, feature schema, alignment,
        privacy ledger and guarantee, fine-tuning and training summaries, transfer check);
        under privacy nothing computed from the training records outside the ledger.
        Metrics and audits never do (see :meth:`save_evaluation`). A fallback XGBoost
        baseline is stored as UBJSON.
        """
        self._check_fitted()
        enc_tensors, enc_meta = self.encoder_.to_state()
        tensors = {f"encoder.{k}": v for k, v in enc_tensors.items()}
        tensors.update({f"module.{k}": v for k, v in self.module_.state_dict().items()})
        extra: dict[str, bytes] = {}
        fallback = None
        if self.fallback_ is not None:
            fallback = type(self.fallback_).__name__
            if fallback != "XGBoostBaseline":
                raise ModelFileError(
                    "only an XGBoost fallback can be saved (as UBJSON); refit with "
                    "baseline='xgboost'"
                )
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "fallback.ubj"
                self.fallback_.save_model(file)
                extra["fallback.ubj"] = file.read_bytes()
        state = released_state(self)
        meta = {
            "estimator": "TransferClassifier",
            "params": state["params"],
            "encoder_meta": enc_meta,
            "feature_schema": state["feature_schema"],
            "alignment": state["alignment"],
            "ignored_columns": state["ignored_columns"],
            "ledger": state["ledger"],
            "privacy": state["privacy"],
            "fine_tune": state["fine_tune"],
            "transfer_check": state["transfer_check"],
            "hyperparameters": state["hyperparameters"],
            "training_summary": state["training_summary"],
            "withheld": state["withheld"],
            "fallback": fallback,
        }
        return write_model_file(
            path, tensors, meta, kind="model", extra_files=extra, key=key, overwrite=overwrite
        )


@contextlib.contextmanager
def _torch_seeded(random_state: int | None) -> Iterator[None]:
    """Run the block with torch's global generators forked and seeded from ``random_state``.

    Nothing is seeded when ``random_state`` is None; the caller's generators are restored
    afterwards either way.
    """
    if random_state is None:
        yield
        return
    import torch

    seed = int(np.random.default_rng(random_state).integers(0, 2**63 - 1))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _person_index(aligned: Cohort) -> np.ndarray:
    """The person of every row: by the id column when the schema declares one, else each row.

    Private fits always take the person-level path (Poisson sampling of persons, division by
    the fixed batch size), decided from the schema (public), never from whether ids repeat
    in the data: the mechanism and the ledger's ``unit`` would otherwise reveal whether
    anyone has several rows, and Opacus' record-level path divides by a batch size computed
    from n.
    """
    if aligned.schema.id is not None:
        return aligned.person_index
    return np.arange(len(aligned))


def _proba(module: Any, inputs: tuple[Any, ...], batch_size: int = 4096) -> np.ndarray:
    import torch

    device = next(module.parameters()).device
    out = []
    module.eval()
    with torch.no_grad():
        n = int(inputs[0].shape[0])
        for start in range(0, n, batch_size):
            part = [t[start : start + batch_size].to(device) for t in inputs]
            out.append(torch.sigmoid(module(*part).reshape(-1)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def load_model(
    path: str | os.PathLike[str], *, key: bytes | str | None = None
) -> TransferClassifier:
    """Read a fitted model saved with :meth:`TransferClassifier.save`; never unpickles.

    Parameters
    ----------
    path : str or path-like
        The model folder (``weights.safetensors`` and ``meta.json``).
    key : bytes or str, optional
        Require an HMAC signature made with this key; ``$GRAPHXFER_MODEL_KEY`` when None (if
        set). Without a key the integrity record still detects accidental damage.

    Returns
    -------
    TransferClassifier
        The fitted model, ready for ``predict_proba``, ``explain`` and ``report``.

    Raises
    ------
    ModelFileError
        Missing, tampered or unknown-format files, or weights that do not match the model.
    """
    import privacy as dp

    tensors, meta = read_model_file(path, kind="model", key=key)
    try:
        if meta.get("estimator") != "TransferClassifier":
            raise ModelFileError(f"unknown estimator {meta.get('estimator')!r} in {path!s}")
        enc_tensors = {
            k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")
        }
        mod_tensors = {
            k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")
        }
        encoder = Encoder.from_state(enc_tensors, meta["encoder_meta"])
        params = dict(meta["params"])
        if params.get("privacy") is not None:
            params["privacy"] = dp.PrivacyConfig.from_dict(params["privacy"])
        clf = TransferClassifier(**params)
        schema = Schema.from_dict(meta["feature_schema"])
        module, make_inputs, _ = encoder.fine_tunable(schema.features, random_state=0)
        if params.get("strategy") == "anchored":
            from graphxfer.anchoring import anchor_module

            anchor_module(module)
        missing, unexpected = module.load_state_dict(mod_tensors, strict=False)
        if missing or unexpected:
            raise ModelFileError(
                f"{path!s}: the weights do not match the model (missing {list(missing)[:5]}, "
                f"unexpected {list(unexpected)[:5]})"
            )
        module.eval()
        clf.encoder_ = encoder
        clf.module_ = module
        clf._make_inputs = make_inputs
        clf.feature_schema_ = schema
        clf.feature_names_in_ = np.asarray(schema.feature_names, dtype=object)
        clf.n_features_in_ = len(schema.feature_names)
        clf.classes_ = np.array([0, 1])
        alignment = dict(meta["alignment"])
        if alignment.get("unknown_categories") is None:  # withheld: a private fit
            alignment["unknown_categories"] = {}
        report = AlignmentReport(**{  # type: ignore[arg-type]
            k: (
                {kk: tuple(vv) for kk, vv in v.items()} if k == "converted" else copy.deepcopy(v)
            )
            for k, v in alignment.items()
        })  # fmt: skip
        clf.alignment_report_ = report
        clf.ignored_columns_ = list(meta["ignored_columns"])
        ledger = None if meta["ledger"] is None else dp.PrivacyLedger.from_dict(meta["ledger"])
        clf.ledger_ = clf.fit_ledger_ = ledger
        clf.data_id_ = None
        guarantee = meta.get("privacy")
        if ledger is not None and isinstance(guarantee, dict):
            own = [ledger.entries[i] for i in guarantee["fit_entries"]]
            clf.fit_ledger_ = dp.PrivacyLedger(
                own, accountant=ledger.accountant, delta=ledger.delta
            )
            clf.data_id_ = guarantee["data_id"]
        clf.fine_tune_ = meta["fine_tune"]
        clf.transfer_check_ = meta["transfer_check"]
        clf.hyperparameters_ = meta.get("hyperparameters")
        clf.training_summary_ = meta["training_summary"]
        # metrics and audits live in evaluation files (read_evaluation), never in the model
        clf.background_ = encoder.background(100, random_state=0).reindex(
            columns=list(clf.feature_names_in_)
        )
        clf.fallback_ = None
        if meta.get("fallback") is not None:
            from tabular.baselines import XGBoostBaseline

            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "fallback.ubj"
                file.write_bytes(meta["extra_file_bytes"]["fallback.ubj"])
                clf.fallback_ = XGBoostBaseline.load_model(file)
    except (KeyError, TypeError, IndexError) as exc:
        raise ModelFileError(f"{path!s}: model metadata is incomplete ({exc})") from exc
    return clf
