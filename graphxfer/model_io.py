"""Saving and loading fitted transfer models, through one dict of fitted state.

:func:`fitted_state` gathers a fitted :class:`~graphxfer.TransferClassifier`'s learned state
by name and :func:`restore` sets it on an estimator, deriving the rest (feature names,
classes, background); ``fit`` and :func:`load_model` both end in :func:`restore`.
:func:`save_model` writes the state as ``weights.safetensors`` + ``meta.json`` (folder or
zip; see :mod:`graphxfer.modelfile`): the encoder's and the network's tensors, and the
released view of the fit (:func:`graphxfer.release.released_state`), which carries the
target adapter. Loading never unpickles.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from graphxfer.adapt import TargetAdapter
from graphxfer.align import AlignmentReport
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError, ModelFileError
from graphxfer.modelfile import read_model_file, write_model_file
from graphxfer.release import released_state
from graphxfer.schema import Schema

__all__ = ["FITTED", "fitted_state", "load_model", "restore", "save_model"]

FITTED = (
    "encoder_",
    "module_",
    "adapter_",
    "alignment_report_",
    "ledger_",
    "fit_ledger_",
    "data_id_",
    "fine_tune_",
    "transfer_check_",
    "hyperparameters_",
    "training_summary_",
    "fallback_",
)
"""The learned state of a fit, by attribute name; ``make_inputs`` (the network's input
builder) comes with it."""

_FALLBACK = "fallback.ubj"


def fitted_state(model: Any) -> dict[str, Any]:
    """The learned state of a fitted ``model``: :data:`FITTED` and ``make_inputs``."""
    model._check_fitted()
    state = {name: getattr(model, name) for name in FITTED}
    state["make_inputs"] = model._make_inputs
    return state


def restore(model: Any, state: dict[str, Any]) -> Any:
    """Set ``state`` (as :func:`fitted_state` returns it) on ``model``; returns ``model``.

    Also sets what follows from it: ``feature_schema_``, ``feature_names_in_``,
    ``n_features_in_`` and ``ignored_columns_`` (from the adapter), ``classes_`` and
    ``background_`` (drawn from the encoder's source marginals; target-only columns missing).
    Measurements of an earlier fit (``metrics_``, ``audit_``) are dropped.
    """
    missing = [name for name in (*FITTED, "make_inputs") if name not in state]
    if missing:
        raise KeyError(f"fitted state lacks {missing}")
    for name in FITTED:
        setattr(model, name, state[name])
    model._make_inputs = state["make_inputs"]
    adapter: TargetAdapter = state["adapter_"]
    names = adapter.feature_names
    model.feature_schema_ = adapter.feature_schema
    model.feature_names_in_ = np.asarray(names, dtype=object)
    model.n_features_in_ = len(names)
    model.ignored_columns_ = list(adapter.ignored_columns)
    model.classes_ = np.array([0, 1])
    # in model space, marked so: passed back as explain(..., background=model.background_),
    # it is not translated a second time by the fit's mapping or conversions
    background = state["encoder_"].background(100, random_state=0).reindex(columns=names)
    model.background_ = adapter.marked(background)
    for name in ("metrics_", "audit_"):
        model.__dict__.pop(name, None)
    return model


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    key: bytes | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fitted model (see :meth:`TransferClassifier.save
    <graphxfer.TransferClassifier.save>`); returns the path."""
    state = fitted_state(model)
    enc_tensors, enc_meta = state["encoder_"].to_state()
    tensors = {f"encoder.{k}": v for k, v in enc_tensors.items()}
    tensors.update({f"module.{k}": v for k, v in state["module_"].state_dict().items()})
    extra: dict[str, bytes] = {}
    fallback = None
    if state["fallback_"] is not None:
        fallback = type(state["fallback_"]).__name__
        if fallback != "XGBoostBaseline":
            raise ModelFileError(
                "only an XGBoost fallback can be saved (as UBJSON); refit with baseline='xgboost'"
            )
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / _FALLBACK
            state["fallback_"].save_model(file)
            extra[_FALLBACK] = file.read_bytes()
    released = released_state(model)
    meta = {
        "estimator": "TransferClassifier",
        "params": released["params"],
        "encoder_meta": enc_meta,
        "adapter": released["adapter"],
        "feature_schema": released["feature_schema"],
        "alignment": released["alignment"],
        "ignored_columns": released["ignored_columns"],
        "ledger": released["ledger"],
        "privacy": released["privacy"],
        "fine_tune": released["fine_tune"],
        "transfer_check": released["transfer_check"],
        "hyperparameters": released["hyperparameters"],
        "training_summary": released["training_summary"],
        "withheld": released["withheld"],
        "fallback": fallback,
    }
    return write_model_file(
        path, tensors, meta, kind="model", extra_files=extra, key=key, overwrite=overwrite
    )


def load_model(path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Any:
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
    tensors, meta = read_model_file(path, kind="model", key=key)
    try:
        if meta.get("estimator") != "TransferClassifier":
            raise ModelFileError(f"unknown estimator {meta.get('estimator')!r} in {path!s}")
        return _read(path, tensors, meta)
    except (KeyError, TypeError, IndexError) as exc:
        raise ModelFileError(f"{path!s}: model metadata is incomplete ({exc})") from exc
    except GraphxferError as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path!s}: {exc}") from exc


def _read(path: str | os.PathLike[str], tensors: dict[str, Any], meta: dict[str, Any]) -> Any:
    import privacy as dp
    from graphxfer.transfer import TransferClassifier

    def part(prefix: str) -> dict[str, Any]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    encoder = Encoder.from_state(part("encoder."), meta["encoder_meta"])
    params = dict(meta["params"])
    if params.get("privacy") is not None:
        params["privacy"] = dp.PrivacyConfig.from_dict(params["privacy"])
    clf = TransferClassifier(**params)
    adapter = _adapter(meta, encoder, params)
    module, make_inputs, _ = encoder.fine_tunable(adapter.columns, random_state=0)
    if params.get("strategy") == "anchored":
        from graphxfer.anchoring import anchor_module

        anchor_module(module)
    missing, unexpected = module.load_state_dict(part("module."), strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{path!s}: the weights do not match the model (missing {list(missing)[:5]}, "
            f"unexpected {list(unexpected)[:5]})"
        )
    module.eval()
    ledger = None if meta["ledger"] is None else dp.PrivacyLedger.from_dict(meta["ledger"])
    fit_ledger, data_id = ledger, None
    guarantee = meta.get("privacy")
    if ledger is not None and isinstance(guarantee, dict):
        own = [ledger.entries[i] for i in guarantee["fit_entries"]]
        fit_ledger = dp.PrivacyLedger(own, accountant=ledger.accountant, delta=ledger.delta)
        data_id = guarantee["data_id"]
    state = {
        "encoder_": encoder,
        "module_": module,
        "make_inputs": make_inputs,
        "adapter_": adapter,
        "alignment_report_": _alignment(meta["alignment"]),
        "ledger_": ledger,
        "fit_ledger_": fit_ledger,
        "data_id_": data_id,
        "fine_tune_": meta["fine_tune"],
        "transfer_check_": meta["transfer_check"],
        "hyperparameters_": meta.get("hyperparameters"),
        "training_summary_": meta["training_summary"],
        "fallback_": _fallback(meta),
    }
    # metrics and audits live in evaluation files (read_evaluation), never in the model
    return restore(clf, state)


def _adapter(meta: dict[str, Any], encoder: Encoder, params: dict[str, Any]) -> TargetAdapter:
    """The model's target adapter; for files written before it was stored, rebuilt from the
    parameters, the encoder's schema and the feature schema."""
    if "adapter" in meta:
        adapter = TargetAdapter.from_dict(meta["adapter"])
        if adapter.feature_schema is None:
            raise KeyError("adapter.feature_schema")
        return adapter
    adapter = TargetAdapter(
        encoder.schema,
        mapping=params.get("mapping"),
        recode=params.get("recode"),
        convert=params.get("convert"),
        private=params.get("privacy") is not None,
    )
    adapter.feature_schema = Schema.from_dict(meta["feature_schema"])
    adapter.ignored_columns = list(meta["ignored_columns"])
    return adapter


def _alignment(released: dict[str, Any]) -> AlignmentReport:
    alignment = dict(released)
    if alignment.get("unknown_categories") is None:  # withheld: a private fit
        alignment["unknown_categories"] = {}
    converted = {k: tuple(v) for k, v in alignment.pop("converted", {}).items()}
    return AlignmentReport(**alignment, converted=converted)


def _fallback(meta: dict[str, Any]) -> Any:
    if meta.get("fallback") is None:
        return None
    from tabular.baselines import XGBoostBaseline

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / _FALLBACK
        file.write_bytes(meta["extra_file_bytes"][_FALLBACK])
        return XGBoostBaseline.load_model(file)
