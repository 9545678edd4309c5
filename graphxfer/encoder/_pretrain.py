"""``pretrain``: an :class:`~graphxfer.Encoder` from a source cohort, by encoder name or chosen
by validation across source sites (``"auto"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphxfer.cohort import Cohort
from graphxfer.encoder._encoder import Encoder
from graphxfer.encoder._summary import source_summary
from graphxfer.exceptions import GraphxferError
from graphxfer.registry import encoder_kind, encoder_names

__all__ = ["pretrain"]


def _as_source_cohort(source: Any) -> Cohort:
    if not isinstance(source, Cohort):
        raise GraphxferError(
            f"pretrain needs a graphxfer.Cohort as source, got {type(source).__name__}; "
            "build one with Cohort(df, Schema.infer(df, target=...))"
        )
    return source


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
        ``ft-transformer``, ``linear``, ``mlp``, ``tabnet`` (tabular) or ``graphsage``,
        ``gat``, ``gin`` (graph encoders over a k-nearest-neighbour graph of the source
        records), any other name registered in :data:`tabular.registry.ENCODERS` or
        :data:`graphxfer.registry.GRAPH_NETWORKS`, or
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
        (``epochs``, ``batch_size``, ``random_state``, ``device``, ``progress``...), and
        ``site_intercepts=True`` (linear encoder, supervised objective): fit one intercept
        per source site, so that the coefficients describe differences within a site
        (``tabular.pretrain(groups=source.groups)``); needs a source with a group column.

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
    kind = encoder_kind(encoder) if isinstance(encoder, str) else None
    if kind is None:
        raise GraphxferError(f"unknown encoder {encoder!r}; choose one of {encoder_names()}")
    summary = source_summary(source)
    schema = source.schema.copy()
    if params.pop("site_intercepts", False):
        if kind != "tabular":
            raise GraphxferError(
                f"site_intercepts is an option of the linear encoder, not of {encoder!r}"
            )
        if source.groups is None:
            raise GraphxferError(
                "site_intercepts needs a source cohort with a group (site) column; declare "
                "one with role 'group' in the schema"
            )
        params["groups"] = source.groups.to_numpy()
    if kind == "tabular":
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
    from graphxfer.graphs import pretrain_graph

    inner = pretrain_graph(source, encoder=encoder, objective=objective, **params)
    enc = Encoder(inner, schema=schema, source_summary=summary, kind="graph")
    return _with_source_prior(enc, source)


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
