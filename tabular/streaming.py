"""Pretraining from Parquet or CSV files larger than memory.

:class:`~tabular.sources.TableSource` reads files in chunks of rows (Parquet row groups through
``pyarrow.parquet.ParquetFile.iter_batches``, CSV through ``pandas.read_csv(chunksize=...)``).
:func:`pretrain_stream` makes one streaming pass to fit the featurizer
(:meth:`Featurizer.partial_fit`), then trains for a number of epochs, each one more pass over
the files: chunks are featurised, mixed in a shuffle buffer and cut into mini-batches. Memory
is bounded by the chunk size, the shuffle buffer and the validation sample — never by the
number of rows in the files.

Validation rows are chosen by a hash of each row's position in the source (the same rows in
every epoch and every process), so no list of rows is kept. Under ``torchrun`` every process
trains on its own shard of the files (:mod:`tabular.sharding`, :mod:`tabular.distributed`).
Each epoch is run by :class:`~tabular.stream_training.StreamEpoch` inside the epoch loop that
all pretraining shares (:func:`tabular.loop.run_epochs`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tabular._data import column_dict, infer_column
from tabular._torch import seed_from, seeded
from tabular.exceptions import PretrainingError
from tabular.featurizer import Featurizer
from tabular.loop import best_val_loss, check_options, progress_bar, resolve_device, run_epochs
from tabular.sharding import ShardPlan, row_hash
from tabular.sources import TableSource, Transform, apply_transform, chunk_outcome
from tabular.stream_training import StreamEpoch

__all__ = ["TableSource", "fit_featurizer_stream", "pretrain_stream", "row_hash"]


def _columns(source: TableSource, columns: Iterable[Any] | None) -> list[dict[str, Any]]:
    if columns is None:
        raise PretrainingError(
            "pretrain_stream needs the feature columns (names, dicts or schema columns): "
            "the files are not read before training starts"
        )
    if isinstance(columns, str):
        raise PretrainingError("columns must be a list of columns or names, not a single string")
    cols = list(columns)
    if not cols:
        raise PretrainingError("columns is empty: give at least one feature column")
    if any(isinstance(c, str) for c in cols):
        names = [c if isinstance(c, str) else column_dict(c)["name"] for c in cols]
        head = source.with_columns(names).head()
        return [infer_column(head, c) if isinstance(c, str) else column_dict(c) for c in cols]
    return [column_dict(c) for c in cols]


def fit_featurizer_stream(
    source: TableSource,
    columns: Iterable[Any],
    *,
    target: str | None = None,
    transform: Transform | None = None,
    on_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = False,
) -> tuple[Featurizer, dict[str, Any]]:
    """Fit a :class:`Featurizer` in one streaming pass over ``source``.

    Parameters
    ----------
    source : TableSource
    columns : iterable of column-like objects or dicts
    target : str, optional
        Outcome column: its 0/1 values are counted.
    transform : callable, optional
        Applied to every chunk before anything else (must keep its rows).
    on_chunk : callable, optional
        Called with every (transformed) chunk, e.g. to accumulate summary statistics.
    progress : bool, default=False

    Returns
    -------
    featurizer : Featurizer
        Equal to ``Featurizer().fit(all rows, columns)``.
    counts : dict
        ``n_rows`` and, with a target, ``n_positive``.
    """
    featurizer = Featurizer().start_streaming(columns)
    n_rows, n_positive = 0, 0
    bar = progress_bar(total=source.n_rows, desc="fit featurizer", unit="row", enabled=progress)
    for _, frame in source.read():
        frame = apply_transform(transform, frame)
        featurizer.partial_fit(frame)
        if target is not None:
            n_positive += int(chunk_outcome(frame, target).sum())
        if on_chunk is not None:
            on_chunk(frame)
        n_rows += len(frame)
        bar.update(len(frame))
    bar.close()
    if n_rows == 0:
        raise PretrainingError(f"{source!r} holds no rows")
    featurizer.finish_streaming()
    counts = {"n_rows": n_rows}
    if target is not None:
        counts["n_positive"] = n_positive
    return featurizer, counts


def pretrain_stream(
    source: TableSource | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    columns: Iterable[Any],
    target: str | None = None,
    encoder: str = "mlp",
    objective: str = "masked",
    encoder_params: dict[str, Any] | None = None,
    objective_params: dict[str, Any] | None = None,
    epochs: int = 5,
    batch_size: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    mask_rate: float = 0.3,
    chunk_rows: int = 65_536,
    shuffle_rows: int | None = None,
    validation_fraction: float = 0.05,
    validation_rows: int = 20_000,
    patience: int = 2,
    transform: Transform | None = None,
    on_chunk: Callable[[pd.DataFrame], None] | None = None,
    extra_columns: Sequence[str] = (),
    random_state: int | np.random.Generator | None = None,
    device: Any = "auto",
    progress: bool = True,
) -> Any:
    """Pretrain a tabular encoder on Parquet or CSV files, streaming them chunk by chunk.

    One pass fits the featurizer (the same state as :meth:`Featurizer.fit` on all rows);
    every epoch is one more pass: chunks are featurised, mixed in a shuffle buffer of
    ``shuffle_rows`` rows and cut into mini-batches of ``batch_size`` rows. For Parquet files
    the row groups are visited in a new random order every epoch; CSV files are read in order,
    so only the shuffle buffer mixes them — shuffle a sorted source once before streaming it.

    Under ``torchrun`` (an initialised process group of several processes) every process
    reads its own shard — every ``world_size``-th row group of that epoch's order for Parquet
    sources with enough row groups, otherwise every ``world_size``-th row — computes
    ``batch_size // world_size`` rows per step, and gradients are averaged by
    DistributedDataParallel. Rank 0 fits the featurizer and sends it to the others. Every
    process takes the same number of steps per epoch (the smallest shard decides); the few
    rows beyond it wait for the next epoch's order.

    Parameters
    ----------
    source : TableSource, path, folder or list of paths
    columns : iterable of column-like objects, dicts or names
        Feature columns; names get their kind from the dtype of the first chunk.
    target : str, optional
        Outcome column (0/1), needed by the supervised objectives.
    encoder, objective, encoder_params, objective_params, lr, weight_decay, mask_rate :
        As for :func:`tabular.pretrain`.
    epochs : int, default=5
        Most passes over the source.
    batch_size : int, default=512
        Rows per optimisation step (over all processes together).
    chunk_rows : int, default=65536
        Rows read at once (ignored when ``source`` is a :class:`TableSource`).
    shuffle_rows : int, optional
        Capacity of the shuffle buffer (default ``4 * chunk_rows``).
    validation_fraction : float, default=0.05
        Share of rows held out, chosen by :func:`row_hash` of their position; at most
        ``validation_rows`` rows (the share shrinks for large sources). 0 disables early
        stopping.
    validation_rows : int, default=20000
        Cap on the validation rows, which are kept in memory (featurised).
    patience : int, default=2
        Epochs without a better validation loss before stopping.
    transform : callable, optional
        ``DataFrame -> DataFrame`` applied to every chunk first (keeping its rows), e.g. to
        validate values against a schema.
    on_chunk : callable, optional
        Called with every transformed chunk of the featurizer pass (rank 0 only).
    extra_columns : sequence of str, default=()
        More columns to read, for ``transform`` and ``on_chunk`` (e.g. a site column).
    random_state : int or numpy Generator, optional
    device : str or torch.device, default="auto"
        Under ``torchrun`` with CUDA, ``"auto"`` means ``cuda:LOCAL_RANK``.
    progress : bool, default=True

    Returns
    -------
    TabularEncoder
        ``history_`` rows also hold ``rows`` (training rows of the epoch, all processes) and
        ``records_per_s``; ``source_summary_`` says ``streaming: True``.

    Raises
    ------
    PretrainingError
        Bad options, a missing target, non-0/1 outcomes, or too few rows.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> path = tempfile.mkdtemp() + "/source.parquet"
    >>> pd.DataFrame({"a": rng.normal(size=500), "b": rng.choice(["x", "y"], 500)}).to_parquet(path)
    >>> enc = pretrain_stream(path, columns=["a", "b"], encoder_params={"width": 8}, epochs=2,
    ...                       chunk_rows=128, random_state=0, progress=False, device="cpu")
    >>> enc.embed(pd.DataFrame({"a": [0.5], "b": ["y"]})).shape
    (1, 8)
    """
    import torch

    from tabular.distributed import broadcast_object, distributed_info, wrap_ddp
    from tabular.encoders import EncoderNetwork
    from tabular.objectives import OBJECTIVES, make_objective
    from tabular.registry import ENCODERS
    from tabular.tabular_encoder import TabularEncoder

    check_options(epochs, batch_size, lr, weight_decay, validation_fraction, patience)
    network_cls = ENCODERS.get(encoder)
    if not (isinstance(network_cls, type) and issubclass(network_cls, EncoderNetwork)):
        raise PretrainingError(
            f"{encoder!r} is not a tabular encoder network; graph encoders need every record "
            "in memory (the k-nearest-neighbour graph) and cannot be pretrained from a stream"
        )
    objective_cls = OBJECTIVES.get(objective)
    if objective_cls.needs_outcome and target is None:
        raise PretrainingError(f"objective {objective!r} needs the outcome column: pass target=")
    if (
        isinstance(validation_rows, bool)
        or not isinstance(validation_rows, int)
        or validation_rows < 0
    ):
        raise PretrainingError(f"validation_rows must be >= 0, got {validation_rows!r}")
    info = distributed_info()
    dev = resolve_device(device, local_rank=info.local_rank if info.active else None)
    local_batch = batch_size // info.world_size
    if local_batch < objective_cls.min_batch:
        raise PretrainingError(
            f"batch_size={batch_size} over {info.world_size} processes leaves {local_batch} "
            f"rows per process; the objective needs at least {objective_cls.min_batch}"
        )

    src = source if isinstance(source, TableSource) else TableSource(source, chunk_rows=chunk_rows)
    cols = _columns(src, columns)
    names = [c["name"] for c in cols]
    if target is not None and target in names:
        raise PretrainingError(f"the target {target!r} is also listed as a feature column")
    src = src.with_columns(names + ([target] if target is not None else []) + list(extra_columns))
    needed_target = target if objective_cls.needs_outcome else None

    seed = seed_from(random_state)
    seeds = np.random.default_rng(seed).integers(0, 2**62, size=4)
    split_seed = int(seeds[0])

    # ---- pass 1: featurizer (rank 0 reads; the others receive its state)
    state: Any = None
    if info.is_main:
        fz, counts = fit_featurizer_stream(
            src, cols, target=needed_target, transform=transform, on_chunk=on_chunk,
            progress=progress,
        )  # fmt: skip
        state = (fz.state_dict(), counts)
    state = broadcast_object(state)
    featurizer = Featurizer.from_state(state[0])
    counts = state[1]
    n_rows = int(counts["n_rows"])
    src.n_rows = n_rows
    if needed_target is not None and counts["n_positive"] in (0, n_rows):
        raise PretrainingError(
            "the outcome holds a single class; supervised pretraining needs both"
        )

    # ---- validation split and shards
    threshold = 0.0
    if validation_fraction > 0 and validation_rows > 0:
        threshold = min(float(validation_fraction), validation_rows / n_rows)
    plan = ShardPlan.build(src, info.world_size, split_seed, threshold)
    steps = plan.steps_per_epoch(local_batch) if info.active else None
    if steps == 0:
        raise PretrainingError(
            f"too few rows for {info.world_size} processes at batch_size={batch_size}: some "
            "process would take no step; lower batch_size or the number of processes"
        )

    with seeded(seed, dev):
        network = network_cls.from_featurizer(featurizer, **(encoder_params or {}))
        obj = make_objective(
            objective, network, featurizer, mask_rate=mask_rate, params=objective_params
        )
        network.to(dev)
        obj.to(dev)
        model = wrap_ddp(network, obj) if info.active else None
        params = [p for p in (*network.parameters(), *obj.parameters()) if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if info.active:  # dropout differs between processes, reproducibly
            torch.random.manual_seed((seed + 7919 * (info.rank + 1)) % (2**63 - 1))
        epoch_fn = StreamEpoch(
            network=network,
            obj=obj,
            model=model,
            optimizer=optimizer,
            featurizer=featurizer,
            plan=plan,
            rank=info.rank,
            dev=dev,
            local_batch=local_batch,
            steps=steps,
            threshold=threshold,
            split_seed=split_seed,
            val_cap=-(-validation_rows // info.world_size),
            val_seed=int(seeds[3]) + info.rank,
            shuffle_rows=shuffle_rows if shuffle_rows is not None else 4 * src.chunk_rows,
            transform=transform,
            target=needed_target,
            mask_gen=torch.Generator().manual_seed(int(seeds[1]) + info.rank),
            rng=np.random.default_rng([int(seeds[2]), info.rank]),
        )
        history, best_epoch = run_epochs(
            epoch_fn,
            epochs=epochs,
            patience=patience,
            modules=(network, obj),
            desc=f"pretrain {encoder} ({objective}, streaming)",
            progress=progress and info.is_main,
            steps_per_epoch=steps if steps is not None else -(-plan.train_rows // local_batch),
        )
    network.cpu().eval()
    obj.cpu()
    head = getattr(obj, "head", None) if objective_cls.needs_outcome else None
    summary: dict[str, Any] = {
        "n_rows": n_rows,
        "n_train": plan.train_rows,
        "n_validation": epoch_fn.n_validation,
        "n_columns": len(cols),
        "encoder": encoder,
        "objective": objective,
        "encoder_params": dict(encoder_params or {}),
        "objective_params": dict(objective_params or {}),
        "mask_rate": float(mask_rate),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": best_val_loss(history, best_epoch),
        "device": dev.type,
        "world_size": info.world_size,
        "streaming": True,
        "chunk_rows": src.chunk_rows,
        "outcome_used": needed_target is not None,
    }
    if needed_target is not None:
        summary["positive_rate"] = counts["n_positive"] / n_rows
    return TabularEncoder(
        featurizer,
        network,
        columns=cols,
        history=history,
        source_summary=summary,
        source_head=copy.deepcopy(head) if head is not None else None,
    )
