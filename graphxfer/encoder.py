"""Pretrained encoders as users meet them: :func:`pretrain`, :class:`Encoder`, :func:`load_encoder`.

An :class:`Encoder` wraps a tabular encoder (``tabular.TabularEncoder``) or a graph encoder
(``graphxfer.graphs.GraphEncoder``) together with the source schema and a summary of the source
cohort that holds no records: row counts, outcome rate, sites, and per-column marginal
distributions (quantiles and category frequencies), from which SHAP backgrounds are drawn.
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
from graphxfer.exceptions import GraphxferError, ModelFileError
from graphxfer.modelfile import read_model_file, write_model_file
from graphxfer.schema import Schema

__all__ = ["GRAPH_ENCODERS", "TABULAR_ENCODERS", "Encoder", "load_encoder", "pretrain"]

TABULAR_ENCODERS = ("ft-transformer", "linear", "mlp", "tabnet")
GRAPH_ENCODERS = ("graphsage", "gat", "gin")
_N_QUANTILES = 101


def _as_source_cohort(source: Any) -> Cohort:
    if not isinstance(source, Cohort):
        raise GraphxferError(
            f"pretrain needs a graphxfer.Cohort as source, got {type(source).__name__}; "
            "build one with Cohort(df, Schema.infer(df, target=...))"
        )
    return source


def source_summary(cohort: Cohort) -> dict[str, Any]:
    """A description of a cohort that holds no individual record.

    Counts, outcome rate, sites, and per feature column the share missing plus either 101
    quantiles (numeric) or category frequencies (categorical, binary, ordinal).
    """
    X = cohort.X
    marginals: dict[str, Any] = {}
    for col in cohort.schema.features:
        values = X[col.name]
        missing = float(values.isna().mean())
        observed = values.dropna()
        if col.kind == "numeric":
            if len(observed):
                q = np.quantile(observed.to_numpy(dtype=float), np.linspace(0, 1, _N_QUANTILES))
                quantiles = [float(v) for v in q]
            else:
                quantiles = []
            marginals[col.name] = {"kind": "numeric", "missing": missing, "quantiles": quantiles}
        else:
            freq = observed.astype(str).value_counts(normalize=True)
            marginals[col.name] = {
                "kind": col.kind,
                "missing": missing,
                "frequencies": {str(k): float(v) for k, v in freq.items()},
            }
    groups = cohort.groups
    summary: dict[str, Any] = {
        "name": cohort.name,
        "n_rows": len(cohort),
        "n_persons": cohort.n_persons,
        "positive_rate": float(cohort.y.mean()) if cohort.has_target else None,
        "sites": (
            {str(k): int(v) for k, v in groups.value_counts(sort=False).items()}
            if groups is not None
            else None
        ),
        "marginals": marginals,
    }
    return summary


def background_from_summary(
    summary: dict[str, Any], schema: Schema, n: int, random_state: int | None = None
) -> pd.DataFrame:
    """``n`` synthetic records drawn independently per column from the source marginals.

    SHAP's independent masker assumes independent features, so independent draws from the
    source marginals are the background it needs, without shipping any source record.
    """
    rng = np.random.default_rng(random_state)
    out: dict[str, Any] = {}
    marginals = summary.get("marginals", {})
    for col in schema.features:
        m = marginals.get(col.name)
        if m is None:
            out[col.name] = np.full(n, np.nan)
            continue
        miss = rng.random(n) < m["missing"]
        if m["kind"] == "numeric":
            q = np.asarray(m["quantiles"], dtype=float)
            if q.size == 0:
                values = np.full(n, np.nan)
            else:
                values = np.interp(rng.random(n), np.linspace(0, 1, q.size), q)
            values[miss] = np.nan
            out[col.name] = values
        else:
            labels = list(m["frequencies"])
            if not labels:
                out[col.name] = np.full(n, np.nan, dtype=object)
                continue
            p = np.asarray(list(m["frequencies"].values()), dtype=float)
            draws = rng.choice(np.asarray(labels, dtype=object), size=n, p=p / p.sum())
            if m["kind"] == "binary":
                col_values: Any = np.asarray([float(v) for v in draws])
                col_values[miss] = np.nan
            else:
                col_values = draws.astype(object)
                col_values[miss] = np.nan
            out[col.name] = col_values
    return pd.DataFrame(out)


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
        meta = {
            "encoder": {"name": self.name, "kind": self.kind, "state": inner_meta},
            "schema": self.schema.to_dict(),
            "source_summary": self.source_summary,
            "metadata": copy.deepcopy(self.metadata),
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


def _inner_class(name: str, kind: str) -> Any:
    if kind == "tabular":
        if name not in TABULAR_ENCODERS:
            raise ModelFileError(
                f"the file names an unknown tabular encoder {name!r}; known: {TABULAR_ENCODERS}"
            )
        from tabular import TabularEncoder

        return TabularEncoder
    if kind == "graph":
        if name not in GRAPH_ENCODERS:
            raise ModelFileError(
                f"the file names an unknown graph encoder {name!r}; known: {GRAPH_ENCODERS}"
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


def pretrain(
    source: Cohort,
    encoder: str = "ft-transformer",
    objective: str = "supervised",
    **params: Any,
) -> Encoder:
    """Pretrain an encoder on a source cohort.

    Parameters
    ----------
    source : Cohort
        The source cohort (public to the target institutions). Preprocessing is fitted here.
    encoder : str, default="ft-transformer"
        ``ft-transformer``, ``mlp``, ``tabnet`` (tabular) or ``graphsage``, ``gat``, ``gin``
        (graph encoders over a k-nearest-neighbour graph of the source records), or
        ``"auto"``: choose the encoder, objective and regularisation by leave-one-site-out
        validation on the source (:func:`graphxfer.selection.select_encoder`), then pretrain
        the winner on the whole source. With ``"auto"``, ``params`` are those of
        ``select_encoder`` (``candidates``, ``cv``, ``max_folds``, ``max_rows``,
        ``random_state``, ``device``, ``progress``) and the leaderboard is kept in
        ``Encoder.metadata["selection"]``; then the differentially private fine-tuning
        hyper-parameters are chosen by simulating small targets on held-out source sites
        (:func:`graphxfer.tuning.tune_private`) and kept in ``Encoder.metadata["dp_presets"]``
        (``dp_presets=False`` skips this, a dict passes options such as ``sizes`` and
        ``epsilons`` to ``tune_private``). Supervised pretraining of any encoder also stores
        the source head's Fisher information (``metadata["head_precision"]``), the prior of
        the ``anchored`` fine-tuning strategy.
    objective : str, default="supervised"
        Tabular: ``supervised``, ``masked``, ``contrastive``, ``supervised+masked``.
        Graph: ``supervised``, ``graphmae``, ``dgi``.
    **params
        Passed to :func:`tabular.pretrain` or :func:`graphxfer.graphs.pretrain_graph`
        (``epochs``, ``batch_size``, ``random_state``, ``device``, ``progress``...).

    Returns
    -------
    Encoder

    Examples
    --------
    >>> from graphxfer import datasets, pretrain
    >>> heart = datasets.load_heart_disease(sites=["cleveland", "hungarian"])
    >>> enc = pretrain(heart, "mlp", epochs=2, progress=False, random_state=0)
    >>> enc.embed(heart).shape[0]
    597
    """
    source = _as_source_cohort(source)
    if encoder == "auto":
        return _pretrain_auto(source, objective, params)
    summary = source_summary(source)
    schema = source.schema.copy()
    if encoder in TABULAR_ENCODERS:
        import tabular

        y = source.y if source.has_target else None
        import tabular.encoders
        from tabular.registry import ENCODERS as _NETWORKS

        # encoder-specific training defaults (e.g. the linear encoder's), below the user's
        defaults = getattr(_NETWORKS.get(encoder), "pretraining_defaults", None) or {}
        params = {**defaults, **params}
        inner = tabular.pretrain(
            source.X,
            columns=schema.features,
            y=y,
            encoder=encoder,
            objective=objective,
            **params,
        )
        enc = Encoder(inner, schema=schema, source_summary=summary, kind="tabular")
        return _with_source_prior(enc, source)
    if encoder in GRAPH_ENCODERS:
        from graphxfer.graphs import pretrain_graph

        inner = pretrain_graph(source, encoder=encoder, objective=objective, **params)
        enc = Encoder(inner, schema=schema, source_summary=summary, kind="graph")
        return _with_source_prior(enc, source)
    raise GraphxferError(
        f"unknown encoder {encoder!r}; choose one of {TABULAR_ENCODERS + GRAPH_ENCODERS}"
    )


def _with_source_prior(encoder: Encoder, source: Cohort) -> Encoder:
    """Store the source head's Fisher information (the prior of anchored fine-tuning).

    Only for encoders with a source outcome head (supervised pretraining). The matrix is an
    aggregate of the source records, which are public to the target.
    """
    from graphxfer.anchoring import head_precision

    head = encoder.source_head
    if head is None:
        return encoder
    import torch

    module, make_inputs, _ = encoder.fine_tunable(list(encoder.schema.features), random_state=0)
    stored = head_precision(module, make_inputs(source.X))
    k = int(stored["dim"])
    values = np.asarray(stored["values"])
    diag = np.diag(values.reshape(k, k)) if stored["kind"] == "full" else values
    unseen = np.flatnonzero(diag[:-1] == 0)
    if len(unseen) and isinstance(getattr(head, "weight", None), torch.Tensor):
        # an embedding feature that is 0 for every source record (e.g. the missing flag of a
        # column the source always records) never received a gradient: its coefficient is
        # its random initial value, not knowledge; 0 is what the source says about it
        with torch.no_grad():
            head.weight[:, torch.as_tensor(unseen)] = 0.0
    encoder.metadata["head_precision"] = stored
    return encoder


def _pretrain_auto(source: Cohort, objective: str, params: dict[str, Any]) -> Encoder:
    """``pretrain(source, "auto")``: :func:`graphxfer.selection.select_encoder`."""
    import inspect

    from graphxfer.selection import select_encoder

    if objective != "supervised":
        raise GraphxferError(
            f"with encoder='auto' the objective is chosen among the candidates (got "
            f"objective={objective!r}); pass candidates=[{{'encoder': ..., 'objective': ..., "
            "'params': {...}}, ...] to choose which"
        )
    accepted = [p for p in inspect.signature(select_encoder).parameters if p != "source"]
    accepted.append("dp_presets")
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise GraphxferError(
            f"with encoder='auto', {unknown} are not options (each candidate carries its own "
            f"pretraining parameters); accepted: {accepted}"
        )
    tune = params.pop("dp_presets", True)
    progress = bool(params.get("progress", True))
    encoder = select_encoder(source, **params)
    if tune and source.has_target:
        from graphxfer.tuning import tune_private

        seed = params.get("random_state", 0)
        options = dict(tune) if isinstance(tune, dict) else {}
        options.setdefault("random_state", seed if isinstance(seed, int) else 0)
        options.setdefault("progress", progress)
        encoder.metadata["dp_presets"] = tune_private(source, encoder, **options)
    return encoder


def copy_encoder(encoder: Encoder) -> Encoder:
    """A deep copy (the transfer estimator never modifies the encoder it is given)."""
    return copy.deepcopy(encoder)
