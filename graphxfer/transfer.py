"""The transfer estimator: a pretrained encoder fine-tuned on a small target, optionally with DP."""

from __future__ import annotations

import contextlib
import copy
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
from graphxfer.schema import Column, Schema

__all__ = ["TransferCheckSkippedWarning", "TransferClassifier", "load_model"]

STRATEGIES = ("linear-probe", "full", "partial", "lp-ft")
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
    strategy : {"linear-probe", "full", "partial", "lp-ft"}, default="lp-ft"
        What is fine-tuned: the head only; everything; the last ``partial_blocks`` blocks and
        the head; or a linear probe followed by a full fine-tune (one privacy budget for both).
    privacy : privacy.PrivacyConfig or None, default=None
        Fine-tune with differential privacy (person-level (epsilon, delta)); then ``epochs``,
        ``batch_size`` and ``learning_rate`` come from this config.
    check_transfer : bool, default=False
        Compare, by cross-fitting on the target training data, the transferred model with a
        target-only baseline (``baseline``). Without privacy only: under DP the check would
        spend budget that is not accounted, so it is skipped with a warning.
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
        Seed of head initialisation, batching and noise.
    device : str, default="auto"
        ``"auto"`` uses CUDA when present.
    progress : bool, default=False
        Show progress bars.

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
        Every DP release of this fit.
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
        strategy: str = "lp-ft",
        privacy: Any = None,
        check_transfer: bool = False,
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
    ) -> None:
        self.encoder = encoder
        self.strategy = strategy
        self.privacy = privacy
        self.check_transfer = check_transfer
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
        return encoder

    # ------------------------------------------------------------------ data
    def _to_cohort(self, X: Any, y: Any, encoder: Encoder, *, need_target: bool) -> Cohort:
        """Turn ``X`` (Cohort, DataFrame or array) into a cohort in the encoder's terms."""
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
        return Cohort(frame, Schema(columns), unknown=unknown, all_missing="keep")

    def _align(self, cohort: Cohort, encoder: Encoder) -> tuple[Cohort, AlignmentReport]:
        return cohort.align(encoder.schema, self.mapping, recode=self.recode, convert=self.convert)

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
        cohort = self._to_cohort(X, y, encoder, need_target=True)
        aligned, report = self._align(cohort, encoder)
        columns, ignored = self._feature_columns(aligned, report, encoder)
        fitted = self._fit_aligned(encoder, aligned, columns, self.random_state, self.progress)
        self.encoder_, self.module_, self._make_inputs, result = fitted
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
        if self.check_transfer:
            self._run_transfer_check(encoder, aligned, columns)
        return self

    def _fit_aligned(
        self,
        encoder: Encoder,
        aligned: Cohort,
        columns: list[Column],
        random_state: int | None,
        progress: bool,
    ) -> tuple[Encoder, Any, Any, Any]:
        import torch

        import privacy as dp

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
        )
        X = aligned.X[[c.name for c in columns]]
        inputs = make_inputs(X)
        y = torch.as_tensor(aligned.y, dtype=torch.float32)
        strategy: Any = self.strategy
        if self.strategy == "partial":
            strategy = dp.get_strategy("partial", n_blocks=self.partial_blocks)
        common: dict[str, Any] = {
            "strategy": strategy,
            "random_state": random_state,
            "device": self.device,
            "progress": progress,
        }
        with _torch_seeded(random_state):
            if self.privacy is not None:
                person_index = aligned.person_index if aligned.n_persons < len(aligned) else None
                result = dp.fine_tune(
                    module,
                    inputs,
                    y,
                    config=self.privacy,
                    person_index=person_index,
                    ledger=dp.PrivacyLedger(
                        accountant="rdp" if self.privacy.accountant == "rdp" else "prv"
                    ),
                    data_id=f"target:{aligned.name or 'cohort'}",
                    **common,
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
        """The differentiable path used by the ``deep`` and ``gradient`` explainers.

        Internal inputs are the per-column tokens of the tabular encoder (one ``d``-vector
        per column and record, after the value, missing flag or category is embedded); the
        rest of the network maps them to the log-odds. Attributions of a column's token are
        summed into that column. Available for the ``mlp`` and ``ft-transformer`` encoders.
        """
        import torch
        from torch import nn

        self._check_fitted()
        net = self.module_.network
        if (
            self.fallback_ is not None
            or self.encoder_.kind != "tabular"
            or net.name not in ("mlp", "ft-transformer")
            or getattr(net, "missing", "token") == "drop"
        ):
            raise GraphxferError(
                "gradient-based explanations need a fine-tuned mlp or ft-transformer encoder "
                "(missing='token'); use method='permutation' or 'exact' for this model"
            )
        present = [net.numeric_columns[j] for j, _ in net._numeric_present] + [
            net.categorical_columns[j] for j, _ in net._categorical_present
        ]
        is_ft = net.name == "ft-transformer"
        tokenizer = net.tokenizer.columns if is_ft else net.tokenizer
        d = int(tokenizer.d)
        k = len(present)
        head = self.module_.head
        make_inputs = self._make_inputs

        class _Body(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net
                self.head = head

            def forward(self, flat: torch.Tensor) -> torch.Tensor:
                tokens = flat.reshape(flat.shape[0], k, d)
                if is_ft:
                    zeros = torch.zeros(flat.shape[0], 1, dtype=torch.long, device=flat.device)
                    x = torch.cat((self.net.tokenizer.cls(zeros).to(flat.dtype), tokens), dim=1)
                    for layer in self.net.layers:
                        x = layer(x, None)
                    x = x[:, 0]
                else:
                    x = tokens.sum(dim=1)
                    for layer in self.net.layers:
                        x = layer(x)
                return self.head(x).reshape(-1)

        def encode(frame: pd.DataFrame) -> torch.Tensor:
            numeric, missing, categorical = make_inputs(self._model_space(frame))
            device = next(net.parameters()).device
            with torch.no_grad():
                tokens = tokenizer(
                    numeric.to(device),
                    missing.to(device),
                    categorical.to(device),
                    net._numeric_present,
                    net._categorical_present,
                )
            return tokens.reshape(tokens.shape[0], -1).cpu()

        groups: dict[str, list[int]] = {str(name): [] for name in self.feature_names_in_}
        for j, name in enumerate(present):
            groups[str(name)] = list(range(j * d, (j + 1) * d))
        return {"module": _Body().eval(), "encode": encode, "groups": groups}

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

        The results are appended to ``metrics_`` and appear in :meth:`model_card` and
        reports. Metrics on held-out target records are not covered by the DP guarantee of
        fine-tuning (which protects the training records); they are marked ``private=False``.

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
        cohort = self._to_cohort(X, y, self.encoder_, need_target=True)
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
        model passes when the bound does not exceed its epsilon. The audit reads the private
        training records, so its result is not covered by the DP guarantee.

        Returns
        -------
        dict
            :class:`privacy.AuditResult` fields.
        """
        from privacy import membership_inference_audit

        self._check_fitted()
        mem = self._to_cohort(members, None, self.encoder_, need_target=True)
        non = self._to_cohort(nonmembers, None, self.encoder_, need_target=True)
        claimed = None
        delta = 0.0
        if self.privacy is not None and self.ledger_ is not None:
            total = self.ledger_.total_spent()
            claimed, delta = float(total.epsilon), float(total.delta)
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
    def model_card(self) -> dict[str, Any]:
        """The facts a report shows about this model (see :func:`graphxfer.report`)."""
        self._check_fitted()
        priv = None
        if self.ledger_ is not None and self.privacy is not None:
            total = self.ledger_.total_spent()
            priv = {
                "epsilon": float(total.epsilon),
                "delta": float(total.delta),
                "accountant": self.privacy.accountant,
                "max_grad_norm": self.privacy.max_grad_norm,
                "composition": getattr(total, "method", ""),
                "ledger": [e.to_dict() for e in self.ledger_.entries],
            }
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
            "target_size": self.training_summary_["n_persons"],
            "metrics": list(getattr(self, "metrics_", [])),
            "privacy": priv,
            "audit": getattr(self, "audit_", None),
            "transfer_check": self.transfer_check_,
            "alignment": self.alignment_report_.to_dict(),
            "package_versions": package_versions(),
        }
        return card

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model: ``weights.safetensors`` + ``meta.json`` (folder or .zip).

        The privacy ledger, alignment report, transfer check and training summary travel
        with the weights. A fallback XGBoost baseline is stored as UBJSON.
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
        params = self.get_params()
        params["encoder"] = None
        if params["privacy"] is not None:
            params["privacy"] = self.privacy.to_dict()
        meta = {
            "estimator": "TransferClassifier",
            "params": params,
            "encoder_meta": enc_meta,
            "feature_schema": self.feature_schema_.to_dict(),
            "alignment": self.alignment_report_.to_dict(),
            "ignored_columns": list(self.ignored_columns_),
            "ledger": None if self.ledger_ is None else self.ledger_.to_dict(),
            "fine_tune": self.fine_tune_,
            "transfer_check": self.transfer_check_,
            "training_summary": self.training_summary_,
            "metrics": list(getattr(self, "metrics_", [])),
            "audit": getattr(self, "audit_", None),
            "fallback": fallback,
        }
        return write_model_file(path, tensors, meta, kind="model", extra_files=extra)


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


def load_model(path: str | os.PathLike[str]) -> TransferClassifier:
    """Read a fitted model saved with :meth:`TransferClassifier.save`; never unpickles.

    Raises
    ------
    ModelFileError
        Missing, tampered or unknown-format files, or weights that do not match the model.
    """
    import privacy as dp

    tensors, meta = read_model_file(path, kind="model")
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
        report = AlignmentReport(**{  # type: ignore[arg-type]
            k: (
                {kk: tuple(vv) for kk, vv in v.items()} if k == "converted" else copy.deepcopy(v)
            )
            for k, v in meta["alignment"].items()
        })  # fmt: skip
        clf.alignment_report_ = report
        clf.ignored_columns_ = list(meta["ignored_columns"])
        clf.ledger_ = None if meta["ledger"] is None else dp.PrivacyLedger.from_dict(meta["ledger"])
        clf.fine_tune_ = meta["fine_tune"]
        clf.transfer_check_ = meta["transfer_check"]
        clf.training_summary_ = meta["training_summary"]
        clf.metrics_ = list(meta.get("metrics") or [])
        if meta.get("audit") is not None:
            clf.audit_ = meta["audit"]
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
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path!s}: model metadata is incomplete ({exc})") from exc
    return clf
