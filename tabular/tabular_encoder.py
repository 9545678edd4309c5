"""The user-facing pretrained tabular encoder: featurizer + network + what pretraining saw."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tabular._data import as_frame, column_dict
from tabular._torch import seed_from, seeded, state_to_cpu
from tabular.classifier import EncoderClassifier
from tabular.encoders import EncoderNetwork, TabNetNetwork, network_from_config
from tabular.exceptions import EncoderError
from tabular.featurizer import FeatureBatch, Featurizer
from tabular.loop import resolve_device

__all__ = ["TabularEncoder"]

_FORMAT = 1
_KIND = "tabular-encoder"


def _device_of(module: nn.Module) -> torch.device:
    """Where ``module`` lives: its first parameter or buffer (a network may have no parameters,
    e.g. the linear encoder's feature map); the CPU when it holds neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _grown_head(head: nn.Linear | None, out_dim: int) -> nn.Linear | None:
    """A copy of the source head for an embedding of ``out_dim`` features.

    Networks whose embedding grows with added columns (the linear encoder) append the new
    features at the end; the source head gets zero coefficients for them, so the source
    model's predictions are unchanged until the new columns are trained.
    """
    if head is None:
        return None
    if out_dim == head.in_features:
        return copy.deepcopy(head)
    if out_dim < head.in_features:
        raise EncoderError(
            f"the adapted network's embedding ({out_dim}) is smaller than the source head's "
            f"input ({head.in_features})"
        )
    grown = nn.Linear(out_dim, 1).to(device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        grown.weight.zero_()
        grown.weight[:, : head.in_features] = head.weight
        grown.bias.copy_(head.bias)
    return grown


class TabularEncoder:
    """A pretrained tabular encoder: featurizer (source statistics) + encoder network.

    Made by :func:`tabular.pretrain`; rebuilt from files with :meth:`from_state`; adapted to a
    target schema with :meth:`with_columns`.

    Parameters
    ----------
    featurizer : Featurizer
        Fitted on the source cohort.
    network : EncoderNetwork
        Its input layout must be the featurizer's output.
    columns : list of dict, optional
        The feature columns the encoder reads (``name``, ``kind``, bounds, vocabulary).
    history : list of dict, optional
        Per-epoch pretraining record.
    source_summary : dict, optional
        What pretraining saw (rows, objective, encoder...).
    source_head : nn.Linear, optional
        The outcome head of supervised pretraining (``Linear(out_dim, 1)``).

    Attributes
    ----------
    featurizer_ : Featurizer
    network_ : EncoderNetwork
    columns_ : list of dict
    history_ : list of dict
        One dict per epoch: ``epoch``, ``train_loss``, ``val_loss`` (``None`` without a
        validation split), ``seconds``.
    source_summary_ : dict
    source_head_ : nn.Linear or None
        The source classifier's head when pretraining was supervised; fine-tuning starts from
        it by default (:meth:`classifier`).
    """

    def __init__(
        self,
        featurizer: Featurizer,
        network: EncoderNetwork,
        *,
        columns: list[dict[str, Any]] | None = None,
        history: list[dict[str, Any]] | None = None,
        source_summary: dict[str, Any] | None = None,
        source_head: nn.Linear | None = None,
    ) -> None:
        if not isinstance(network, EncoderNetwork):
            raise EncoderError(f"network must be an EncoderNetwork, got {type(network).__name__}")
        if (
            network.numeric_columns != featurizer.numeric_columns_
            or network.categorical_columns != featurizer.categorical_columns_
        ):
            raise EncoderError(
                "the network's input layout does not match the featurizer: network columns "
                f"{network.column_names}, featurizer columns {featurizer.feature_names_in_}"
            )
        self.featurizer_ = featurizer
        self.network_ = network
        if columns is None:
            columns = [
                {"name": c, "kind": featurizer.kinds_[c]} for c in featurizer.feature_names_in_
            ]
        self.columns_ = [dict(c) for c in columns]
        self.history_ = list(history or [])
        self.source_summary_ = dict(source_summary or {})
        if source_head is not None and (
            not isinstance(source_head, nn.Linear)
            or source_head.in_features != network.out_dim
            or source_head.out_features != 1
        ):
            raise EncoderError(f"source_head must be nn.Linear({network.out_dim}, 1)")
        self.source_head_ = source_head

    # ------------------------------------------------------------------ properties
    @property
    def encoder_name(self) -> str:
        """Registry name of the network (``"ft-transformer"``, ``"mlp"``, ``"tabnet"``)."""
        return self.network_.name

    @property
    def out_dim(self) -> int:
        """Embedding size."""
        return int(self.network_.out_dim)

    @property
    def absent_columns_(self) -> list[str]:
        """Source columns that the current columns lack (they carry no information)."""
        return list(self.network_.absent)

    def __repr__(self) -> str:
        return (
            f"TabularEncoder(encoder={self.encoder_name!r}, columns={len(self.columns_)}, "
            f"absent={len(self.network_.absent)}, out_dim={self.out_dim})"
        )

    # ------------------------------------------------------------------ use
    def featurize(self, data: Any) -> FeatureBatch:
        """Featurizer output for ``data`` (a DataFrame or cohort-like object)."""
        return self.featurizer_.transform(as_frame(data))

    def embed(
        self, data: Any, *, batch_size: int = 1024, device: str | torch.device | None = None
    ) -> np.ndarray:
        """Embeddings of the records of ``data``, shape ``(n, out_dim)``, float32.

        Parameters
        ----------
        data : DataFrame or cohort-like
            Records with (a subset of) the encoder's columns; absent columns count as missing.
        batch_size : int, default=1024
        device : str or torch.device, optional
            Where to compute (``"auto"`` = CUDA when present); default: where the network is.
            The network stays there afterwards.
        """
        batch = self.featurize(data)
        net = self.network_
        if device is not None:
            net.to(resolve_device(device))
        dev = _device_of(net)
        out = []
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(batch), batch_size):
                    part = batch.take(np.arange(start, min(start + batch_size, len(batch))))
                    out.append(net(*part.to_tensors(dev)).float().cpu().numpy())
        finally:
            net.train(was_training)
        if not out:
            return np.zeros((0, self.out_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def classifier(
        self,
        head_hidden: int | None = None,
        *,
        source_head: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> EncoderClassifier:
        """A fine-tunable :class:`EncoderClassifier` over a copy of the network.

        Parameters
        ----------
        head_hidden : int, optional
            Hidden size of a two-layer head (default: a linear head).
        source_head : bool, default=True
            Start a linear head from the source classifier's head when pretraining was
            supervised (:attr:`source_head_`); otherwise the head is freshly initialised.
        random_state : int or numpy Generator, optional
            Seeds a fresh head's initialisation.
        """
        network = copy.deepcopy(self.network_)
        device = _device_of(network)
        with seeded(seed_from(random_state), device):
            clf = EncoderClassifier(network, head_hidden)
        if source_head and head_hidden is None and self.source_head_ is not None:
            clf.head.load_state_dict(self.source_head_.state_dict())
        return clf.to(device)

    def feature_attention(
        self, data: Any, *, normalize: bool = True, batch_size: int = 1024
    ) -> pd.DataFrame:
        """TabNet's per-column attention for each record (TabNet encoders only).

        Parameters
        ----------
        data : DataFrame or cohort-like
        normalize : bool, default=True
            Divide each row by its sum (rows then sum to 1, as in pytorch-tabnet's ``explain``).
        batch_size : int, default=1024
            Records per forward pass.

        Returns
        -------
        DataFrame of shape (n, n_columns)
            One column per input column; the index is ``data``'s index.
        """
        net = self.network_
        if not isinstance(net, TabNetNetwork):
            raise EncoderError(
                f"feature attention needs a TabNet encoder; this one is {self.encoder_name!r}"
            )
        X = as_frame(data)
        batch = self.featurizer_.transform(X)
        dev = _device_of(net)
        parts = []
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(batch), batch_size):
                    part = batch.take(np.arange(start, min(start + batch_size, len(batch))))
                    importance, _ = net.masks(*part.to_tensors(dev))
                    parts.append(importance.cpu().numpy())
        finally:
            net.train(was_training)
        values = np.concatenate(parts) if parts else np.zeros((0, len(net.input_order)))
        if normalize:
            total = values.sum(axis=1, keepdims=True)
            values = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
        return pd.DataFrame(values, columns=list(net.input_order), index=X.index)

    # ------------------------------------------------------------------ other schemas
    def with_columns(self, columns: Iterable[Any]) -> TabularEncoder:
        """A copy for data with other feature columns (e.g. a target cohort's schema).

        Parameters
        ----------
        columns : iterable of column-like objects or dicts
            The columns the new data holds (e.g. ``target_schema.features``), already aligned
            to the source names. Known columns keep their pretrained parameters; *new* columns
            are added to the featurizer from their declared information only
            (:meth:`Featurizer.extend`: bounds for numeric, categories for categorical) and get
            new, untrained network parameters; source columns *not listed* are declared
            absent and carry no information.

        Returns
        -------
        TabularEncoder
            The original is unchanged.

        Raises
        ------
        EncoderError
            A known column listed with another kind, or a repeated column.
        FeaturizerError
            A new column without declared bounds or categories.
        """
        cols = [column_dict(c) for c in columns]
        names = [c["name"] for c in cols]
        if len(set(names)) != len(names):
            raise EncoderError(f"columns repeat: {names}")
        if not cols:
            raise EncoderError("with_columns needs at least one column")
        fz = self.featurizer_
        mismatched = [
            f"{c['name']!r} ({fz.kinds_[c['name']]} in the source, {c['kind']} here)"
            for c in cols
            if c["name"] in fz.kinds_ and fz.kinds_[c["name"]] != c["kind"]
        ]
        if mismatched:
            raise EncoderError(
                "columns have another kind than in the source: "
                + ", ".join(mismatched)
                + "; align the target schema to the source (or rename the column)"
            )
        new = [c for c in cols if c["name"] not in fz.kinds_]
        featurizer = fz.extend(new) if new else Featurizer.from_state(fz.state_dict())
        network = copy.deepcopy(self.network_)
        network.add_columns(featurizer)
        listed = set(names)
        network.set_absent([c for c in featurizer.feature_names_in_ if c not in listed])
        return TabularEncoder(
            featurizer,
            network,
            columns=cols,
            history=copy.deepcopy(self.history_),
            source_summary=copy.deepcopy(self.source_summary_),
            source_head=_grown_head(self.source_head_, network.out_dim),
        )

    # ------------------------------------------------------------------ state
    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: the weights and a JSON-ready description.

        ``tensors`` are contiguous CPU tensors (ready for ``safetensors.torch.save_file``),
        named like an :class:`EncoderClassifier`'s state: ``network.*`` for the encoder and,
        when there is a source head, ``head.*``. ``meta`` holds the format version, the network
        config, the featurizer state, the columns, the history and the source summary.
        Nothing is pickled.
        """
        meta = {
            "format": _FORMAT,
            "kind": _KIND,
            "encoder": self.encoder_name,
            "network": self.network_.config(),
            "featurizer": self.featurizer_.state_dict(),
            "columns": copy.deepcopy(self.columns_),
            "history": copy.deepcopy(self.history_),
            "source_summary": copy.deepcopy(self.source_summary_),
            "source_head": self.source_head_ is not None,
        }
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as exc:  # a non-JSON value slipped into history/summary
            raise EncoderError(f"the encoder description is not JSON-ready: {exc}") from exc
        tensors = {f"network.{k}": v for k, v in state_to_cpu(self.network_).items()}
        if self.source_head_ is not None:
            tensors.update({f"head.{k}": v for k, v in state_to_cpu(self.source_head_).items()})
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> TabularEncoder:
        """Rebuild an encoder from :meth:`to_state` output.

        Raises
        ------
        EncoderError
            An unknown format, a malformed description, or weights that do not match it
            (missing, unexpected or wrongly shaped tensors).
        """
        if not isinstance(meta, dict) or meta.get("kind") != _KIND:
            raise EncoderError("this is not a tabular encoder description (meta['kind'])")
        if meta.get("format") != _FORMAT:
            raise EncoderError(
                f"unknown tabular encoder format {meta.get('format')!r}; this version reads "
                f"{_FORMAT}"
            )
        try:
            featurizer = Featurizer.from_state(meta["featurizer"])
            network = network_from_config(meta["network"])
            columns, history = meta["columns"], meta["history"]
            summary, has_head = meta["source_summary"], bool(meta["source_head"])
        except KeyError as exc:
            raise EncoderError(f"malformed tabular encoder description: missing {exc}") from exc
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise EncoderError(f"weights {bad[:5]} are not tensors")
        other = [k for k in tensors if not k.startswith(("network.", "head."))]
        if other:
            raise EncoderError(f"unexpected weights {other[:5]} (expected network.* and head.*)")
        head = nn.Linear(network.out_dim, 1) if has_head else None
        parts: list[tuple[str, nn.Module]] = [("network.", network)]
        if head is not None:
            parts.append(("head.", head))
        elif any(k.startswith("head.") for k in tensors):
            raise EncoderError("the weights hold a head that the description does not declare")
        for prefix, module in parts:
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise EncoderError(
                    f"the weights do not match the encoder description: {exc}"
                ) from exc
        network.eval()
        return cls(
            featurizer,
            network,
            columns=columns,
            history=history,
            source_summary=summary,
            source_head=head,
        )
