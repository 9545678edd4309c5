"""The :class:`Encoder` users meet: a pretrained tabular or graph encoder with the source schema
and a record-free source summary; saved with :meth:`Encoder.save`, read with :func:`load_encoder`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.encoder._summary import background_from_summary
from graphxfer.exceptions import GraphxferError, ModelFileError
from graphxfer.modelfile import read_model_file, write_model_file
from graphxfer.registry import graph_encoder_names, tabular_encoder_names
from graphxfer.schema import Schema

__all__ = ["Encoder", "copy_encoder", "load_encoder"]


class Encoder:
    """A pretrained encoder plus the source schema and a record-free source summary.

    Made by :func:`pretrain`, saved with :meth:`save`, read with :func:`load_encoder`.

    Attributes
    ----------
    name : str
        Registry name (``ft-transformer``, ``mlp``, ``tabnet``, ``graphsage``, ``gat``, ``gin``).
    kind : {"tabular", "graph"}
    schema : Schema
        The source schema (feature columns, their bounds and vocabularies, the target).
    source_summary : dict
        See :func:`source_summary`.
    inner : TabularEncoder or GraphEncoder
        The underlying encoder.
    metadata : dict
        Free, JSON-ready notes saved with the encoder (e.g. ``"selection"``: the leaderboard of
        :func:`graphxfer.selection.select_encoder` when the encoder was chosen with
        ``pretrain(source, "auto")``). Empty by default.
    """

    def __init__(
        self,
        inner: Any,
        *,
        schema: Schema,
        source_summary: dict[str, Any],
        kind: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if kind not in ("tabular", "graph"):
            raise GraphxferError(f"kind must be 'tabular' or 'graph', got {kind!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise GraphxferError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.inner = inner
        self.schema = schema
        self.source_summary = source_summary
        self.kind = kind
        self.metadata: dict[str, Any] = dict(metadata or {})

    @property
    def name(self) -> str:
        """Registry name of the encoder network."""
        name = getattr(self.inner, "encoder_name", None)
        if name is None:  # a graph encoder names its network
            name = self.inner.network.name
        return str(name)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch pretraining record."""
        return list(getattr(self.inner, "history_", []))

    def __repr__(self) -> str:
        return (
            f"Encoder({self.name!r}, kind={self.kind!r}, source_rows="
            f"{self.source_summary.get('n_rows')}, features={len(self.schema.features)})"
        )

    def embed(self, data: Cohort | pd.DataFrame) -> np.ndarray:
        """Embeddings of the records of ``data`` (aligned to the source schema), ``(n, d)``."""
        X = data.X if isinstance(data, Cohort) else data
        if self.kind == "graph":
            return np.asarray(self.inner.embed(X))
        return np.asarray(self.inner.embed(X))

    def background(self, n: int = 100, random_state: int | None = 0) -> pd.DataFrame:
        """A SHAP background of ``n`` records drawn from the source marginals."""
        return background_from_summary(self.source_summary, self.schema, n, random_state)

    @property
    def objective(self) -> str | None:
        """The pretraining objective (``None`` when the encoder does not record it)."""
        if self.kind == "graph":
            found = getattr(self.inner, "objective", None)
        else:
            found = getattr(self.inner, "source_summary_", {}).get("objective")
        return None if found is None else str(found)

    @property
    def source_head(self) -> Any:
        """The outcome head of supervised pretraining (``None`` after self-supervised)."""
        if self.kind == "graph":
            return getattr(self.inner, "head", None)
        return getattr(self.inner, "source_head_", None)

    def predict_proba(self, data: Cohort | pd.DataFrame, *, batch_size: int = 4096) -> np.ndarray:
        """The source model's probability of the positive class, without fine-tuning.

        The encoder and the outcome head of supervised pretraining, applied as they are
        (zero-shot): the same output as the fine-tunable module of :meth:`fine_tunable` before
        any training. Graph encoders attach each record to its nearest source records first.

        Parameters
        ----------
        data : Cohort or DataFrame
            Records in the source schema (source column names); absent columns count as
            missing.
        batch_size : int, default=4096
            Records per forward pass.

        Returns
        -------
        ndarray of shape (n,)
            Probabilities in [0, 1], float64.

        Raises
        ------
        GraphxferError
            The encoder was pretrained with a self-supervised objective and has no source
            outcome head.
        """
        import torch

        X = data.X if isinstance(data, Cohort) else data
        if not isinstance(X, pd.DataFrame):
            raise GraphxferError(
                f"predict_proba needs a Cohort or a DataFrame, got {type(data).__name__}"
            )
        if self.source_head is None:
            raise GraphxferError(
                f"this {self.name} encoder was pretrained with the self-supervised objective "
                f"{self.objective!r} and has no source outcome head, so it makes no "
                "predictions of its own; pretrain with objective='supervised' (or "
                "'supervised+masked' for tabular encoders), or fine-tune it with "
                "TransferClassifier"
            )
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        if self.kind == "graph":
            module = self.inner.classifier()
            inputs: tuple[Any, ...] = (self.inner.attach_tensor(X),)
        else:
            module = self.inner.classifier()
            inputs = _tabular_inputs(self.inner)(X)
        device = next(module.parameters()).device
        module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                part = [t[start : start + batch_size].to(device) for t in inputs]
                out.append(torch.sigmoid(module(*part).reshape(-1)).double().cpu().numpy())
        return np.concatenate(out)

    # ---------------------------------------------------------------- fine-tuning hooks
    def fine_tunable(
        self, feature_columns: list[Any], random_state: int | None = None
    ) -> tuple[Any, Callable[[pd.DataFrame], tuple[Any, ...]], Any]:
        """A fine-tunable module for data with ``feature_columns`` and its input builder.

        Returns
        -------
        module : torch.nn.Module
            With ``head`` and ``blocks`` (the ``privacy.FineTunable`` protocol); one logit per
            record, each depending only on that record's own row (and public source data).
        make_inputs : callable
            ``DataFrame -> tuple of tensors`` (one row per record).
        adapted : object
            The adapted inner encoder (saved with the fitted model).
        """
        if self.kind == "tabular":
            inner = self.inner.with_columns(feature_columns)
            module = inner.classifier(random_state=random_state)
            return module, _tabular_inputs(inner), inner
        inner = self.inner
        # the graph classifier is initialised from the pretrained GNN alone (no random draws)
        module = inner.classifier()
        return module, _graph_inputs(inner), inner

    # ---------------------------------------------------------------- files
    def to_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(tensors, meta)`` of the whole encoder."""
        tensors, inner_meta = self.inner.to_state()
        try:
            json.dumps(self.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise GraphxferError(
                f"Encoder.metadata must be JSON-ready (plain dicts, lists, strings, finite "
                f"numbers, None): {exc}"
            ) from exc
        notes = copy.deepcopy(self.metadata)
        stored = notes.get("head_precision")
        if isinstance(stored, dict) and "values" in stored:
            # up to 513 x 513 numbers: weights, not metadata (meta.json stays readable)
            import torch

            values = stored.pop("values")
            tensors = {**tensors, PRECISION_TENSOR: torch.tensor(values, dtype=torch.float64)}
            stored["values_tensor"] = PRECISION_TENSOR
        meta = {
            "encoder": {"name": self.name, "kind": self.kind, "state": inner_meta},
            "schema": self.schema.to_dict(),
            "source_summary": self.source_summary,
            "metadata": notes,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, Any], meta: dict[str, Any]) -> Encoder:
        """Inverse of :meth:`to_state`."""
        try:
            enc = meta["encoder"]
            name, kind = enc["name"], enc["kind"]
            schema = Schema.from_dict(meta["schema"])
            summary = meta["source_summary"]
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"encoder metadata is incomplete: missing {exc}") from exc
        notes = meta.get("metadata", {})  # files written before the key existed have none
        if not isinstance(notes, dict):
            raise ModelFileError(
                f"the encoder's 'metadata' entry must be a JSON object, got {type(notes).__name__}"
            )
        notes, tensors = _with_stored_values(copy.deepcopy(notes), dict(tensors))
        inner_cls = _inner_class(name, kind)
        try:
            inner = inner_cls.from_state(tensors, enc["state"])
        except ValueError as exc:
            raise ModelFileError(
                f"the encoder weights do not match their description: {exc}"
            ) from exc
        return cls(inner, schema=schema, source_summary=summary, kind=kind, metadata=notes)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write a model file (folder, or ``.zip``): ``weights.safetensors`` + ``meta.json``.

        Parameters
        ----------
        path : path-like
            Destination folder, or a file ending in ``.zip``. An existing graphxfer model file
            there is replaced atomically.
        key : bytes or str, optional
            Sign the file (HMAC-SHA256) with this key; ``$GRAPHXFER_MODEL_KEY`` when None.
        overwrite : bool, default=False
            Replace ``path`` even when it holds something other than a model file.
        """
        tensors, meta = self.to_state()
        return write_model_file(path, tensors, meta, kind="encoder", key=key, overwrite=overwrite)


PRECISION_TENSOR = "metadata.head_precision"
"""Name, in an encoder's weights, of the source head precision's values (files written
before it existed hold them in ``meta.json`` as ``metadata["head_precision"]["values"]``)."""


def _with_stored_values(
    notes: dict[str, Any], tensors: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put the head precision's values from the weights back into the metadata."""
    stored = notes.get("head_precision")
    if not isinstance(stored, dict) or "values_tensor" not in stored:
        if PRECISION_TENSOR in tensors:
            raise ModelFileError(
                f"the encoder's weights hold {PRECISION_TENSOR!r} but its metadata declares no "
                "head precision; the file is inconsistent"
            )
        return notes, tensors
    name = stored.pop("values_tensor")
    if name != PRECISION_TENSOR or name not in tensors:
        raise ModelFileError(
            f"the encoder's head precision names the weights {name!r}, which the file does "
            f"not hold (expected {PRECISION_TENSOR!r})"
        )
    import torch

    values = torch.as_tensor(tensors.pop(name)).to(torch.float64).reshape(-1)
    stored["values"] = values.tolist()
    return notes, tensors


def _inner_class(name: str, kind: str) -> Any:
    if kind == "tabular":
        known = tabular_encoder_names()
        if name not in known:
            raise ModelFileError(
                f"the file names an unknown tabular encoder {name!r}; known: {known}"
            )
        from tabular import TabularEncoder

        return TabularEncoder
    if kind == "graph":
        known = graph_encoder_names()
        if name not in known:
            raise ModelFileError(
                f"the file names an unknown graph encoder {name!r}; known: {known}"
            )
        from graphxfer.graphs import GraphEncoder

        return GraphEncoder
    raise ModelFileError(f"the file names an unknown encoder kind {kind!r}")


def _tabular_inputs(inner: Any) -> Callable[[pd.DataFrame], tuple[Any, ...]]:
    import torch

    def make(X: pd.DataFrame) -> tuple[Any, ...]:
        batch = inner.featurize(X)
        return tuple(torch.as_tensor(a) for a in (batch.numeric, batch.missing, batch.categorical))

    return make


def _graph_inputs(inner: Any) -> Callable[[pd.DataFrame], tuple[Any, ...]]:
    import torch

    def make(X: pd.DataFrame) -> tuple[Any, ...]:
        rows = inner.attach(X)
        if isinstance(rows, tuple):
            return tuple(torch.as_tensor(r) for r in rows)
        return (torch.as_tensor(np.asarray(rows, dtype=np.float32)),)

    return make


def load_encoder(path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Encoder:
    """Read an encoder saved with :meth:`Encoder.save`; never unpickles.

    Parameters
    ----------
    path : path-like
        The model folder or ``.zip``.
    key : bytes or str, optional
        Require a signature made with this key; ``$GRAPHXFER_MODEL_KEY`` when None (if set).

    Returns
    -------
    Encoder
        The encoder with its source schema, source summary and metadata.

    Raises
    ------
    ModelFileError
        Missing, tampered (:class:`~graphxfer.exceptions.ModelFileTamperedError`),
        wrongly signed, unknown-format or unknown-encoder files.
    """
    tensors, meta = read_model_file(path, kind="encoder", key=key)
    return Encoder.from_state(tensors, meta)


def copy_encoder(encoder: Encoder) -> Encoder:
    """A deep copy (the transfer estimator never modifies the encoder it is given)."""
    return copy.deepcopy(encoder)
