"""The pretrained graph encoder: a GNN plus the source graph it was trained on.

A :class:`GraphEncoder` bundles what is needed to use a pretrained GNN on new records:

* the source featurizer and :class:`~graphxfer.graphs.DenseFeatures` (fitted on the source),
* the GNN network with frozen weights,
* the source records' dense features, outcome and graph, the frozen per-layer source
  representations ``h0 .. hL`` (computed once), and the :class:`~graphxfer.graphs.KNNIndex`
  over the source records.

:meth:`GraphEncoder.attach` turns target records into one row each (see
:mod:`graphxfer.graphs.attach` for the rule and the privacy argument) and
:meth:`GraphEncoder.classifier` builds the fine-tunable :class:`GraphAttachedClassifier`.

.. note::
   The encoder holds featurized *source* records (their features, outcome and representations):
   attaching needs them. Share a graph encoder only where the source cohort itself may be
   shared (DESIGN.md §1: within the consortium). It holds nothing about target records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from graphxfer.exceptions import GraphError
from graphxfer.graphs._utils import as_float_tensor, state_to_cpu
from graphxfer.graphs.attach import AttachLayout, GraphAttachedClassifier
from graphxfer.graphs.encoders import GNNEncoder
from graphxfer.graphs.features import DenseFeatures
from graphxfer.graphs.knn import KNNIndex
from graphxfer.graphs.sampling import NeighborTable
from graphxfer.graphs.validate import check_edge_index

__all__ = ["GraphEncoder"]

_FORMAT = 1
MODEL_KIND = "graph-encoder"


class GraphEncoder:
    """A pretrained GNN with its source graph, ready to attach target records.

    Usually built by :func:`~graphxfer.graphs.pretrain_graph`.

    Parameters
    ----------
    network : GNNEncoder
        The pretrained network (its weights are used as they are, frozen).
    source_x : tensor of shape (n, d)
        Dense features of the source records.
    edge_index : LongTensor of shape (2, E)
        The source graph.
    index : KNNIndex
        Nearest-neighbour index fitted on ``source_x``; ``index.k`` neighbours are attached.
    source_y : array of shape (n,), optional
        Source outcome (enables the label-mean column).
    featurizer : tabular.Featurizer, optional
        Turns data frames into feature batches (needed to attach data frames and cohorts).
    dense : DenseFeatures, optional
        Turns feature batches into dense features.
    head : nn.Linear, optional
        Supervised pretraining head ``hidden -> 1`` (initialises the classifier's head).
    source_layers : list of tensors, optional
        ``[h0, ..., hL]`` over the source graph; computed from the network when omitted.
    objective : str, optional
        The pretraining objective (for the record).
    history : list of dict, optional
        Per-epoch losses of pretraining.

    Attributes
    ----------
    k : int
        Source neighbours per attached record.
    source_layers : list of tensors
        ``[h0, ..., hL]``, each ``(n, hidden)``.
    history_ : list of dict
    """

    def __init__(
        self,
        network: GNNEncoder,
        source_x: Any,
        edge_index: Any,
        *,
        index: KNNIndex,
        source_y: Any = None,
        featurizer: Any = None,
        dense: DenseFeatures | None = None,
        head: torch.nn.Linear | None = None,
        source_layers: list[torch.Tensor] | None = None,
        objective: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        if not isinstance(network, GNNEncoder):
            raise GraphError(f"network must be a GNNEncoder, got {type(network).__name__}")
        self.network = network.cpu().eval()
        for param in self.network.parameters():
            param.requires_grad_(False)
        self.source_x = as_float_tensor(source_x, name="source features").clone()
        n = self.source_x.shape[0]
        if self.source_x.shape[1] != network.in_channels:
            raise GraphError(
                f"source features have {self.source_x.shape[1]} columns, the network expects "
                f"{network.in_channels}"
            )
        self.edge_index = check_edge_index(edge_index, n, name="source edge_index").cpu()
        if not hasattr(index, "points_") or index.n_points_ != n:
            raise GraphError("index must be a KNNIndex fitted on the source features")
        self.index = index
        self.source_y: torch.Tensor | None = None
        if source_y is not None:
            y = torch.as_tensor(np.asarray(source_y), dtype=torch.float32).reshape(-1)
            if len(y) != n or not bool(torch.isfinite(y).all()):
                raise GraphError(f"source_y must hold {n} finite outcomes")
            self.source_y = y
        self.featurizer = featurizer
        self.dense = dense
        self.head = None if head is None else head.cpu().eval()
        if source_layers is None:
            table = NeighborTable.from_edge_index(self.edge_index, n)
            source_layers = self.network.layerwise(self.source_x, table)
        layers = [torch.as_tensor(h, dtype=torch.float32).cpu().contiguous() for h in source_layers]
        if len(layers) != network.num_layers + 1 or any(
            h.shape != (n, network.hidden) for h in layers
        ):
            raise GraphError(
                f"source_layers must be {network.num_layers + 1} tensors of shape "
                f"({n}, {network.hidden})"
            )
        self.source_layers = layers
        self.objective = objective
        self.history_ = list(history or [])

    # ------------------------------------------------------------------ properties
    @property
    def k(self) -> int:
        return int(self.index.k)

    @property
    def n_source(self) -> int:
        return int(self.source_x.shape[0])

    @property
    def source_embeddings(self) -> torch.Tensor:
        """Frozen embeddings ``hL`` of the source records, ``(n, hidden)``."""
        return self.source_layers[-1]

    def layout(self, label_mean: bool | None = None) -> AttachLayout:
        """Column layout of :meth:`attach` rows."""
        return AttachLayout(
            self.network.in_channels,
            self.network.hidden,
            self.network.num_layers,
            self._label_mean(label_mean),
        )

    def _label_mean(self, label_mean: bool | None) -> bool:
        if label_mean is None:
            return self.source_y is not None
        if label_mean and self.source_y is None:
            raise GraphError("label_mean=True needs the source outcome; this encoder has none")
        return bool(label_mean)

    # ------------------------------------------------------------------ featurizing
    def featurize(self, data: Any) -> torch.Tensor:
        """Dense features of records: a Cohort, a DataFrame, a FeatureBatch or a float array.

        Data frames and cohorts go through the source featurizer (columns the data lacks are
        missing for every record; extra columns are ignored).
        """
        if hasattr(data, "schema") and hasattr(data, "X"):  # a Cohort
            data = data.X
        if isinstance(data, pd.DataFrame):
            if self.featurizer is None:
                raise GraphError(
                    "this encoder was pretrained on arrays and has no featurizer; pass dense "
                    "feature arrays, or pretrain from a Cohort"
                )
            data = self.featurizer.transform(data)
        if hasattr(data, "numeric") and hasattr(data, "categorical"):  # a FeatureBatch
            if self.dense is None:
                raise GraphError("this encoder has no dense-feature map; pass dense arrays")
            data = self.dense.transform(data)
        x = as_float_tensor(data, name="records")
        if x.shape[1] != self.network.in_channels:
            raise GraphError(
                f"records have {x.shape[1]} dense features, the encoder expects "
                f"{self.network.in_channels}"
            )
        return x

    # ------------------------------------------------------------------ attaching
    def neighbors(self, data: Any) -> torch.Tensor:
        """The ``k`` nearest source records of each record, ``(m, k)`` (source row indices)."""
        idx, _ = self.index.query(self.featurize(data), self.k)
        return idx

    def attach_tensor(self, data: Any, *, label_mean: bool | None = None) -> torch.Tensor:
        """:meth:`attach` as a float32 tensor."""
        use_label = self._label_mean(label_mean)
        x = self.featurize(data)
        if x.shape[0] == 0:
            raise GraphError("no records to attach")
        idx, _ = self.index.query(x, self.k)
        parts = [x]
        for h in self.source_layers[:-1]:
            parts.append(_neighbor_mean(h, idx))
        if use_label:
            assert self.source_y is not None
            parts.append(_neighbor_mean(self.source_y[:, None], idx))
        return torch.cat(parts, dim=1)

    def attach(self, data: Any, *, label_mean: bool | None = None) -> np.ndarray:
        """One row per record: own features, mean frozen source-neighbour representations.

        Parameters
        ----------
        data : Cohort, DataFrame, FeatureBatch or array
            Target records (aligned to the source schema).
        label_mean : bool, optional
            Append the neighbours' mean source outcome (default: when the source has one).

        Returns
        -------
        ndarray of shape (m, layout.width), float32
            See :mod:`graphxfer.graphs.attach`. Row ``i`` depends only on record ``i`` and
            on source data.
        """
        return self.attach_tensor(data, label_mean=label_mean).numpy()

    def classifier(self, *, label_mean: bool | None = None) -> GraphAttachedClassifier:
        """A fine-tunable classifier over :meth:`attach` rows, initialised from the GNN.

        ``blocks`` replay the pretrained network for an attached record (exactly for GraphSAGE
        and GIN, with uniform attention for GAT); ``head`` starts from the supervised
        pretraining head when there is one (the label-mean weight at 0), otherwise at 0.
        """
        layout = self.layout(label_mean)
        net = self.network
        clf = GraphAttachedClassifier(
            layout.own,
            hidden=layout.hidden,
            layers=layout.layers,
            kind=net.name,
            activation=net.activation,
            label_mean=layout.label_mean,
        )
        clf.blocks[0].load_state_dict(net.input.state_dict())
        for layer in range(net.num_layers):
            clf.blocks[layer + 1].load_state_dict(net.mean_field(layer, self.k).state_dict())
        if self.head is not None:
            with torch.no_grad():
                clf.head.weight[:, : layout.hidden].copy_(self.head.weight)
                clf.head.bias.copy_(self.head.bias)
        return clf

    def embed(self, data: Any = None) -> torch.Tensor:
        """Embeddings: of the source records (``data=None``) or of attached records."""
        if data is None:
            return self.source_embeddings.clone()
        clf = self.classifier(label_mean=False)
        return clf.embed(self.attach_tensor(data, label_mean=False))

    # ------------------------------------------------------------------ state
    def config(self) -> dict[str, Any]:
        """JSON-ready description (no weights, no records)."""
        return {
            "format": _FORMAT,
            "network": self.network.config(),
            "index": self.index.config(),
            "has_head": self.head is not None,
            "has_source_y": self.source_y is not None,
            "objective": self.objective,
        }

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)`` for a model file; meta is JSON-ready."""
        tensors = {f"network.{k}": v for k, v in state_to_cpu(self.network).items()}
        if self.head is not None:
            tensors.update({f"head.{k}": v for k, v in state_to_cpu(self.head).items()})
        tensors["source.x"] = self.source_x.clone()
        tensors["source.edge_index"] = self.edge_index.clone()
        for layer, h in enumerate(self.source_layers):
            tensors[f"source.h{layer}"] = h.clone()
        if self.source_y is not None:
            tensors["source.y"] = self.source_y.clone()
        meta = {
            **self.config(),
            "featurizer": None if self.featurizer is None else self.featurizer.state_dict(),
            "dense": None if self.dense is None else self.dense.state_dict(),
            "history": [dict(h) for h in self.history_],
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, Any], meta: dict[str, Any]) -> GraphEncoder:
        """Rebuild from :meth:`to_state` output (the index is refitted with its stored seed)."""
        try:
            if meta["format"] != _FORMAT:
                raise GraphError(f"unknown graph-encoder format {meta['format']!r}")
            tensors = {k: torch.as_tensor(v) for k, v in tensors.items()}
            net_state = {k[8:]: v for k, v in tensors.items() if k.startswith("network.")}
            network = GNNEncoder.from_state(net_state, {"config": meta["network"]})
            head = None
            if meta["has_head"]:
                head = torch.nn.Linear(network.hidden, 1)
                head.load_state_dict(
                    {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
                )
            source_x = tensors["source.x"]
            index = KNNIndex(**meta["index"]).fit(source_x)
            featurizer = None
            if meta.get("featurizer") is not None:
                from tabular.featurizer import Featurizer

                featurizer = Featurizer.from_state(meta["featurizer"])
            dense = None
            if meta.get("dense") is not None:
                dense = DenseFeatures.from_state(meta["dense"])
            layers = [tensors[f"source.h{i}"] for i in range(network.num_layers + 1)]
            source_y = tensors["source.y"] if meta["has_source_y"] else None
            return cls(
                network,
                source_x,
                tensors["source.edge_index"],
                index=index,
                source_y=source_y,
                featurizer=featurizer,
                dense=dense,
                head=head,
                source_layers=layers,
                objective=meta.get("objective"),
                history=meta.get("history"),
            )
        except (KeyError, TypeError, RuntimeError) as exc:
            raise GraphError(f"malformed graph-encoder state: {exc!r}") from exc

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write a model file (``weights.safetensors`` + ``meta.json``, folder or ``.zip``).

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
        from graphxfer.modelfile import write_model_file

        tensors, meta = self.to_state()
        return write_model_file(path, tensors, meta, kind=MODEL_KIND, key=key, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | str | None = None) -> GraphEncoder:
        """Read a model file written by :meth:`save` (verified; never unpickles).

        Parameters
        ----------
        path : path-like
        key : bytes or str, optional
            Require an HMAC-SHA256 signature made with this key (``$GRAPHXFER_MODEL_KEY`` when
            None; with neither, the signature is not checked, the hashes still are).
        """
        from graphxfer.modelfile import read_model_file

        tensors, meta = read_model_file(path, kind=MODEL_KIND, key=key)
        return cls.from_state(tensors, meta)

    def __repr__(self) -> str:
        return (
            f"<GraphEncoder {self.network.name}: {self.n_source} source records, k={self.k}, "
            f"hidden={self.network.hidden}, layers={self.network.num_layers}>"
        )


def _neighbor_mean(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over each row's neighbours, summed in a fixed order per row."""
    acc = values[idx[:, 0]].clone()
    for j in range(1, idx.shape[1]):
        acc += values[idx[:, j]]
    return acc / idx.shape[1]
