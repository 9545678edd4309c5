"""Pretraining a GNN encoder on the source graph.

Three objectives:

``"supervised"``
    Binary cross-entropy of a linear head on the embeddings against the source outcome.
``"graphmae"``
    Masked feature reconstruction (GraphMAE, Hou et al. 2022): a random ``mask_rate`` of the
    nodes have their input replaced by a learned mask token, the encoder runs, the masked nodes'
    embeddings are zeroed again ("re-mask"), a one-layer GNN decoder of the same kind
    reconstructs the input features, and the loss is the scaled cosine error
    ``mean((1 - cos(x, x_hat)) ** gamma)`` over the masked seed nodes.
``"dgi"``
    Deep Graph Infomax (:class:`torch_geometric.nn.models.DeepGraphInfomax`): a bilinear
    discriminator tells the seeds' embeddings from those of a corrupted graph (node features
    shuffled) against a summary of the batch.

Large graphs train in mini-batches of seed records with sampled neighbourhoods
(:mod:`graphxfer.graphs.sampling`); one extra hop is sampled for GraphMAE's decoder. A
validation split of the source nodes drives early stopping in :func:`tabular.loop.run_epochs`,
the epoch loop of every pretraining; the best weights are kept. All
randomness — initialisation, splits, sampling, masks, corruption — comes from ``torch.Generator``
objects seeded from ``random_state``; torch's global generator is never seeded.

Under ``torchrun`` (``torch.distributed`` initialised with two or more processes) training is
data-parallel (DistributedDataParallel): rank 0 builds the k-nearest-neighbour graph and sends
it to the others, every process draws the same global order of seed records, takes its share
of each global batch and samples those seeds' neighbourhoods with a generator of its own;
gradients are averaged over processes and validation losses summed, so every process stops
at the same epoch with the same weights. See ``docs/scale.md``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from graphxfer.exceptions import GraphError
from graphxfer.graphs._inputs import build_graph, check_y, fanouts_per_layer, source_inputs
from graphxfer.graphs._objectives import OBJECTIVES, Supervised, Task, TaskLoss, make_task
from graphxfer.graphs._utils import (
    check_choice,
    check_positive_int,
    init_parameters,
    make_generator,
    seed_from,
)
from graphxfer.graphs.encoders import graph_encoder_class
from graphxfer.graphs.graph_encoder import GraphEncoder
from graphxfer.graphs.knn import KNN_METHODS
from graphxfer.graphs.sampling import NeighborTable, iter_subgraphs, sample_subgraph
from tabular.distributed import all_reduce_sum, distributed_info, shard_bounds
from tabular.exceptions import TabularError
from tabular.loop import EpochResult, resolve_device, run_epochs

__all__ = ["OBJECTIVES", "pretrain_graph"]

_MIN_DELTA = 1e-6
"""How much lower than the best so far a validation loss must be to reset the patience."""


# ---------------------------------------------------------------------- training
def pretrain_graph(
    source: Any,
    *,
    encoder: str = "graphsage",
    objective: str = "supervised",
    featurizer: Any = None,
    graph: Any = None,
    k: int = 10,
    knn_method: str = "auto",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    epochs: int = 50,
    batch_size: int = 512,
    fanout: int | Sequence[int | None] | None = (10, 10),
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    mask_rate: float = 0.5,
    val_fraction: float = 0.1,
    patience: int = 10,
    max_categories: int = 16,
    isolated: str = "error",
    random_state: int | np.random.Generator | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> GraphEncoder:
    """Pretrain a GNN encoder on the source records and return a :class:`GraphEncoder`.

    Parameters
    ----------
    source : Cohort or (features, y)
        The source records. A Cohort is featurized with ``featurizer`` (fitted on it when
        omitted); ``features`` may be a ``FeatureBatch`` or a dense float array, ``y`` the 0/1
        outcome or ``None``.
    encoder : {"graphsage", "gat", "gin"}, default="graphsage"
        A graph encoder registered in :data:`graphxfer.registry.GRAPH_NETWORKS`.
    objective : {"supervised", "graphmae", "dgi"}, default="supervised"
    featurizer : tabular.Featurizer, optional
        A featurizer already fitted on the source (to share it with tabular encoders).
    graph : Data or LongTensor (2, E), optional
        The source graph (e.g. from :func:`project_code_graph`). Default: the
        ``k``-nearest-neighbour graph of the dense features.
    k : int, default=10
        Neighbours per record in the similarity graph, and source neighbours per attached
        target record.
    knn_method : {"auto", "exact", "nndescent"}, default="auto"
    hidden, layers : int, default=64, 2
        Embedding width and number of message-passing layers.
    heads : int, default=4
        Attention heads (``encoder="gat"`` only).
    epochs : int, default=50
        Most passes over the training nodes.
    batch_size : int, default=512
        Seed records per mini-batch (per global batch, shared among the processes under
        ``torchrun``).
    fanout : int, sequence of int/None, or None, default=(10, 10)
        Neighbours sampled per hop, one entry per layer; ``None`` keeps all neighbours.
    lr, weight_decay : float
        AdamW settings.
    mask_rate : float, default=0.5
        GraphMAE's share of masked nodes.
    val_fraction : float, default=0.1
        Source nodes held out for early stopping (none when the cohort is under 20 records).
    patience : int, default=10
        Epochs without improvement of the validation loss before stopping.
    max_categories : int, default=16
        One-hot slots per categorical column in the dense features.
    isolated : {"error", "self_loops", "allow"}, default="error"
        Handling of isolated nodes in a given ``graph`` (see :func:`validate_graph`).
    random_state : int, numpy Generator or None
    device : str or torch.device, default="auto"
        CUDA when available, else CPU (``cuda:LOCAL_RANK`` under ``torchrun``). Sampling runs
        on the CPU.
    progress : bool, default=True
        Show a tqdm progress bar over epochs (on a terminal only).

    Returns
    -------
    GraphEncoder
        With ``history_`` (per-epoch ``epoch``, ``train_loss``, ``val_loss`` and
        ``world_size``, the number of processes; no timing, so that runs with the same
        ``random_state`` give identical histories). Under ``torchrun`` every process
        returns the trained encoder; save it from rank 0, whose neighbour index built the
        graph.

    Raises
    ------
    GraphError
        Bad parameters, a source without outcome for ``"supervised"``, non-finite features, or
        a malformed graph.
    """
    encoder_cls = graph_encoder_class(encoder)
    check_choice(objective, "objective", OBJECTIVES)
    check_choice(knn_method, "knn_method", KNN_METHODS)
    k = check_positive_int(k, "k")
    layers = check_positive_int(layers, "layers")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    patience = check_positive_int(patience, "patience")
    fanouts = fanouts_per_layer(fanout, layers)
    if not 0.0 < mask_rate < 1.0:
        raise GraphError(f"mask_rate must be in (0, 1), got {mask_rate}")
    if not 0.0 <= val_fraction < 1.0:
        raise GraphError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not (lr > 0 and math.isfinite(lr)) or not weight_decay >= 0:
        raise GraphError(
            f"lr must be positive and weight_decay non-negative, got {lr}, {weight_decay}"
        )
    info = distributed_info()
    try:
        dev = resolve_device(device, local_rank=info.local_rank if info.active else None)
    except TabularError as exc:
        raise GraphError(str(exc)) from exc
    seed = seed_from(random_state)
    seeds = np.random.default_rng(seed).integers(0, 2**62, size=4)

    x, y_raw, featurizer, dense = source_inputs(source, featurizer, max_categories)
    n = x.shape[0]
    y = check_y(y_raw, n, objective)
    index, edge_index = build_graph(x, graph, k, knn_method, int(seeds[0]), isolated, info)
    table = NeighborTable.from_edge_index(edge_index, n)

    params: dict[str, Any] = {"hidden": hidden, "layers": layers}
    if "heads" in inspect.signature(encoder_cls).parameters:  # attention networks
        params["heads"] = heads
    net = encoder_cls(x.shape[1], **params)
    task: Task = make_task(objective, net, mask_rate=mask_rate)
    init_parameters(task, make_generator(int(seeds[1])))
    task.to(dev)
    hops: list[int | None] = fanouts + [fanouts[-1]] * int(task.extra_hops)

    sample_gen = make_generator(int(seeds[2]))
    order = torch.randperm(n, generator=sample_gen)
    n_val = round(n * val_fraction) if n >= 20 else 0
    val_nodes, train_nodes = order[:n_val], order[n_val:]
    x_dev = x.to(dev)
    y_dev = y.to(dev) if y is not None else None
    model: nn.Module = task
    if info.active and len(train_nodes) < info.world_size:
        raise GraphError(
            f"{len(train_nodes)} training records cannot be shared among {info.world_size} "
            "processes; use fewer processes"
        )
    if info.active:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(TaskLoss(task))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # under DDP the global batch order comes from ``sample_gen`` (alike in every process);
    # neighbour sampling, masks and corruption from a generator of the process's own
    rank_gen = make_generator(int(seeds[2]) + 7919 * info.rank) if info.active else sample_gen

    def run_shared(nodes: torch.Tensor, gen: torch.Generator, train: bool) -> float:
        """One data-parallel pass: this process takes its share of every global batch."""
        task.train(train)
        if train:
            nodes = nodes[torch.randperm(len(nodes), generator=sample_gen)]
        total, count = 0.0, 0
        for start in range(0, len(nodes), batch_size):
            global_rows = min(batch_size, len(nodes) - start)
            if train and global_rows < info.world_size:
                continue  # some process would get no seed: every process skips this step
            lo, hi = shard_bounds(global_rows, info.world_size, info.rank)
            if hi == lo:
                continue  # validation needs no step in step: an empty share is left out
            batch = sample_subgraph(
                table, nodes[start + lo : start + hi], hops, generator=gen, x=x_dev, y=y_dev
            ).to(dev)
            with torch.set_grad_enabled(train):
                loss = model(batch, gen) if train else task.loss(batch, gen)
            if not torch.isfinite(loss):
                raise GraphError(
                    f"the pretraining loss became NaN or infinite in process {info.rank}; lower lr"
                )
            if train:
                # DDP averages gradients over processes; weighting each share by its size
                # makes the average the gradient of the mean loss over the global batch
                optimizer.zero_grad(set_to_none=True)
                (loss * ((hi - lo) * info.world_size / global_rows)).backward()
                optimizer.step()
            total += float(loss.detach()) * (hi - lo)
            count += hi - lo
        summed, rows = all_reduce_sum([total, count])
        return summed / max(rows, 1)

    def run(nodes: torch.Tensor, gen: torch.Generator, train: bool) -> float:
        if info.active:
            return run_shared(nodes, gen, train)
        task.train(train)
        total, count = 0.0, 0
        for batch in iter_subgraphs(
            table, nodes, hops, batch_size, shuffle=train, generator=gen, x=x_dev, y=y_dev
        ):
            batch = batch.to(dev)
            with torch.set_grad_enabled(train):
                loss = task.loss(batch, gen)
            if not torch.isfinite(loss):
                raise GraphError("the pretraining loss became NaN or infinite; lower lr")
            if train:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total += float(loss.detach()) * batch.batch_size
            count += batch.batch_size
        return total / max(count, 1)

    def epoch_fn(epoch: int, advance: Callable[[int], None]) -> EpochResult:
        train_loss = run(train_nodes, rank_gen, True)
        val_loss = None
        if n_val:
            val_loss = run(val_nodes, make_generator(int(seeds[3]) + info.rank), False)
        return EpochResult(train_loss=train_loss, val_loss=val_loss)

    rows, _ = run_epochs(  # the best weights of ``task`` are restored
        epoch_fn,
        epochs=epochs,
        patience=patience,
        modules=[task],
        desc=f"{encoder}/{objective}" + (f" x{info.world_size}" if info.active else ""),
        progress=progress and info.is_main,
        min_delta=_MIN_DELTA,
    )
    history = [
        {
            "epoch": row["epoch"],
            "train_loss": row["train_loss"],
            "val_loss": row["val_loss"],
            "world_size": info.world_size,
        }
        for row in rows
    ]
    task.cpu().eval()
    head = task.head if isinstance(task, Supervised) else None
    return GraphEncoder(
        net,
        x,
        edge_index,
        index=index,
        source_y=None if y is None else y.numpy(),
        featurizer=featurizer,
        dense=dense,
        head=head,
        objective=objective,
        history=history,
    )
