"""Large source cohorts: streaming pretraining from files and pretraining across processes.

* :func:`pretrain_stream` pretrains a tabular encoder on Parquet or CSV files larger than memory
  and returns an :class:`~graphxfer.Encoder` whose source summary is built from streaming
  statistics (counts, outcome rate, sites, missing shares, category frequencies and numeric
  quantiles from a per-column reservoir sample of values); no record is kept.
* :func:`launch_pretrain` is what ``graphxfer pretrain --nproc-per-node N`` runs: it re-launches
  the command through ``torch.distributed.run`` (``torchrun``), one process per device and
  machine; every process then pretrains with DistributedDataParallel (``gloo`` on CPU, ``nccl``
  on CUDA) and rank 0 saves the encoder.

Graph encoders (``graphsage``, ``gat``, ``gin``) pretrain across processes too
(:func:`graphxfer.graphs.pretrain_graph` under ``torchrun``): rank 0 builds the
k-nearest-neighbour graph and sends it to the others, and each process samples the
neighbourhoods of its own share of every global batch of seed records. They cannot stream:
the graph and the file they are saved in hold every source record (attachment of a target
record searches them), so the source has to fit in memory; :func:`check_distributed_encoder`
says so before anything runs. See ``docs/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError
from graphxfer.registry import encoder_kind, encoder_names, tabular_encoder_names
from graphxfer.schema import Schema

__all__ = [
    "DistributedUnsupportedError",
    "StreamingSummary",
    "check_distributed_encoder",
    "launch_pretrain",
    "pretrain_stream",
]

_N_QUANTILES = 101
_RESERVOIR = 20_000
# options of `graphxfer pretrain` that concern the launcher only
_LAUNCH_KEYS = ("nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port", "config")


class DistributedUnsupportedError(GraphxferError):
    """The encoder cannot be pretrained from a stream or across processes (yet)."""


def check_distributed_encoder(encoder: str, *, streaming: bool = False) -> None:
    """Raise unless ``encoder`` can be pretrained across processes (``streaming=False``) or
    from a stream of files (``streaming=True``).

    Every encoder trains across processes; only tabular encoders stream.

    Raises
    ------
    DistributedUnsupportedError
        A graph encoder with ``streaming=True``.
    GraphxferError
        An unknown encoder.

    Examples
    --------
    >>> check_distributed_encoder("gin")
    >>> try:
    ...     check_distributed_encoder("gin", streaming=True)
    ... except DistributedUnsupportedError as exc:
    ...     print(str(exc)[:50])
    graph encoder 'gin' cannot be pretrained from a st
    """
    kind = encoder_kind(encoder)
    if kind is None:
        raise GraphxferError(f"unknown encoder {encoder!r}; choose one of {encoder_names()}")
    if streaming and kind == "graph":
        raise DistributedUnsupportedError(
            f"graph encoder {encoder!r} cannot be pretrained from a stream: its "
            "k-nearest-neighbour graph, and the encoder file that target records attach to, "
            "hold every source record, so the source must fit in memory (a graph over 1M "
            "records builds on one machine, see docs/scale.md). Load the source as a Cohort "
            "and use graphxfer.pretrain (across processes with torchrun if need be), or "
            f"stream with a tabular encoder {tabular_encoder_names()}"
        )


# ---------------------------------------------------------------------- streaming summary
class StreamingSummary:
    """The record-free source summary of :func:`graphxfer.encoder.source_summary`, built
    chunk by chunk.

    Counts, outcome rate, sites, missing shares and category frequencies are exact. Numeric
    quantiles come from a uniform reservoir sample of each column's observed values, drawn
    independently per column (so no row of the source is ever held together); with at most
    ``reservoir`` values per column they are exact, beyond it their rank error is about
    ``1 / sqrt(reservoir)``.

    Parameters
    ----------
    schema : Schema
    reservoir : int, default=20000
        Values kept per numeric column.
    random_state : int, optional

    Examples
    --------
    >>> import pandas as pd
    >>> from graphxfer import Schema
    >>> df = pd.DataFrame({"age": [40.0, 50.0, None, 70.0], "y": [0, 1, 1, 0]})
    >>> acc = StreamingSummary(Schema.infer(df, target="y"))
    >>> acc.update(df.iloc[:2]); acc.update(df.iloc[2:])
    >>> s = acc.result()
    >>> s["n_rows"], s["positive_rate"], s["marginals"]["age"]["missing"]
    (4, 0.5, 0.25)
    """

    def __init__(
        self, schema: Schema, *, reservoir: int = _RESERVOIR, random_state: int | None = 0
    ) -> None:
        self.schema = schema
        self.reservoir = reservoir
        self._rng = np.random.default_rng(random_state)
        self.n_rows = 0
        self._positives = 0
        self._sites: dict[str, int] = {}
        self._missing = {c.name: 0 for c in schema.features}
        self._seen = {c.name: 0 for c in schema.features if c.kind == "numeric"}
        self._samples = {name: np.empty(0) for name in self._seen}
        self._counts: dict[str, dict[str, int]] = {
            c.name: {} for c in schema.features if c.kind != "numeric"
        }

    def update(self, frame: pd.DataFrame) -> None:
        """Add one chunk of canonical cohort values (``Cohort(chunk, schema).data``)."""
        self.n_rows += len(frame)
        target, group = self.schema.target, self.schema.group
        if target is not None:
            self._positives += int(pd.to_numeric(frame[target.name]).sum())
        if group is not None:
            for site, n in frame[group.name].astype(str).value_counts(sort=False).items():
                self._sites[str(site)] = self._sites.get(str(site), 0) + int(n)
        for col in self.schema.features:
            values = frame[col.name]
            observed = values.dropna()
            self._missing[col.name] += len(values) - len(observed)
            if col.kind == "numeric":
                self._add_values(col.name, observed.to_numpy(dtype=float))
            else:
                counts = self._counts[col.name]
                for label, n in observed.astype(str).value_counts(sort=False).items():
                    counts[str(label)] = counts.get(str(label), 0) + int(n)

    def _add_values(self, name: str, values: np.ndarray) -> None:
        sample, seen = self._samples[name], self._seen[name]
        room = max(self.reservoir - len(sample), 0)
        if room:
            sample = np.concatenate([sample, values[:room]])
            seen += min(room, len(values))
            values = values[room:]
        if len(values):
            # Algorithm R, vectorised: item i (1-based) replaces a random slot with prob. cap/i
            position = seen + np.arange(1, len(values) + 1)
            slot = self._rng.integers(0, position)
            keep = slot < self.reservoir
            sample[slot[keep]] = values[keep]
            seen += len(values)
        self._samples[name], self._seen[name] = sample, seen

    def result(self) -> dict[str, Any]:
        """The summary, in the format of :func:`graphxfer.encoder.source_summary`."""
        if self.n_rows == 0:
            raise GraphxferError("the streaming summary has seen no rows")
        marginals: dict[str, Any] = {}
        for col in self.schema.features:
            missing = self._missing[col.name] / self.n_rows
            if col.kind == "numeric":
                sample = self._samples[col.name]
                quantiles: list[float] = []
                if len(sample):
                    q = np.quantile(sample, np.linspace(0, 1, _N_QUANTILES))
                    quantiles = [float(v) for v in q]
                marginals[col.name] = {
                    "kind": "numeric",
                    "missing": missing,
                    "quantiles": quantiles,
                }
            else:
                counts = self._counts[col.name]
                total = sum(counts.values())
                ordered = sorted(counts.items(), key=lambda kv: -kv[1])
                marginals[col.name] = {
                    "kind": col.kind,
                    "missing": missing,
                    "frequencies": {k: v / total for k, v in ordered},
                }
        return {
            "name": self.schema.name,
            "n_rows": self.n_rows,
            "n_persons": self.n_rows if self.schema.id is None else None,
            "positive_rate": (
                self._positives / self.n_rows if self.schema.target is not None else None
            ),
            "sites": dict(self._sites) if self.schema.group is not None else None,
            "marginals": marginals,
            "streaming": True,
        }


# ---------------------------------------------------------------------- streaming pretraining
def pretrain_stream(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    schema: Schema,
    encoder: str = "mlp",
    objective: str = "supervised",
    *,
    chunk_rows: int = 65_536,
    format: str | None = None,
    **params: Any,
) -> Encoder:
    """Pretrain an encoder on Parquet or CSV files larger than memory.

    Each chunk is validated against ``schema`` as a :class:`~graphxfer.Cohort` would validate
    it (canonical values, declared categories), then streamed through
    :func:`tabular.pretrain_stream`. The source summary (for SHAP backgrounds) is gathered in
    the same pass that fits the featurizer (:class:`StreamingSummary`). Under ``torchrun``,
    every process trains on its own shard and all of them return the same encoder; save it
    from rank 0.

    Parameters
    ----------
    paths : path, folder or list of paths
        ``.parquet`` / ``.pq`` or ``.csv`` files holding every column of ``schema`` that is
        not ignored.
    schema : Schema
        The source schema (features, target, group).
    encoder : {"ft-transformer", "mlp", "tabnet"}, default="mlp"
    objective : str, default="supervised"
        As for :func:`graphxfer.pretrain`.
    chunk_rows : int, default=65536
        Rows read and validated at once.
    format : {"parquet", "csv"}, optional
        Default: from the file suffix.
    **params
        Passed to :func:`tabular.pretrain_stream` (``epochs``, ``batch_size``,
        ``shuffle_rows``, ``validation_fraction``, ``random_state``, ``device``, ``progress``...).

    Returns
    -------
    Encoder

    Raises
    ------
    DistributedUnsupportedError
        A graph encoder.

    Examples
    --------
    >>> import tempfile
    >>> from graphxfer.datasets import make_multisite
    >>> cohort = make_multisite(n_per_site=400, random_state=0)
    >>> path = tempfile.mkdtemp() + "/source.parquet"
    >>> cohort.data.to_parquet(path)
    >>> enc = pretrain_stream(path, cohort.schema, "mlp", epochs=1, chunk_rows=500,
    ...                       random_state=0, progress=False, device="cpu")
    >>> enc.source_summary["n_rows"], enc.embed(cohort).shape
    (1200, (1200, 128))
    """
    import tabular
    from graphxfer.cohort import Cohort
    from tabular.distributed import broadcast_object, distributed_info
    from tabular.streaming import TableSource

    if not isinstance(schema, Schema):
        raise GraphxferError(f"schema must be a graphxfer.Schema, got {type(schema).__name__}")
    check_distributed_encoder(encoder, streaming=True)
    schema = schema.copy()
    target = schema.target.name if schema.target is not None else None
    read = [c.name for c in schema.columns if c.role != "ignore"]

    def canonical(frame: pd.DataFrame) -> pd.DataFrame:
        cohort = Cohort(frame, schema, all_missing="keep", repeated_ids="allow")
        return cohort.data

    summary = StreamingSummary(schema, random_state=params.get("random_state"))
    source = TableSource(paths, chunk_rows=chunk_rows, format=format)
    inner = tabular.pretrain_stream(
        source,
        columns=schema.features,
        target=target,
        encoder=encoder,
        objective=objective,
        transform=canonical,
        on_chunk=summary.update,
        extra_columns=[c for c in read if c not in schema.feature_names],
        **params,
    )
    info = distributed_info()
    result = broadcast_object(summary.result() if info.is_main else None)
    return Encoder(inner, schema=schema, source_summary=result, kind="tabular")


# ---------------------------------------------------------------------- torchrun launcher
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_args(args: argparse.Namespace) -> list[str]:
    """The ``torch.distributed.run`` command line that re-launches ``args`` in N processes."""
    nproc, nnodes, node_rank = args.nproc_per_node, args.nnodes, args.node_rank
    for name, value in (("--nproc-per-node", nproc), ("--nnodes", nnodes)):
        if not isinstance(value, int) or value < 1:
            raise GraphxferError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(node_rank, int) or not 0 <= node_rank < nnodes:
        raise GraphxferError(f"--node-rank must be in [0, {nnodes}), got {node_rank!r}")
    port = int(args.master_port)
    if port == 0:
        if nnodes > 1:
            raise GraphxferError("--master-port 0 (a free port) only works on one machine")
        port = _free_port()
    payload = {k: v for k, v in vars(args).items() if k not in _LAUNCH_KEYS}
    return [
        f"--nproc-per-node={nproc}",
        f"--nnodes={nnodes}",
        f"--node-rank={node_rank}",
        f"--master-addr={args.master_addr}",
        f"--master-port={port}",
        "--module",
        "graphxfer.distributed",
        json.dumps(payload),
    ]


def launch_pretrain(args: argparse.Namespace) -> int:
    """Run ``graphxfer pretrain`` in ``--nproc-per-node`` processes on each of ``--nnodes``
    machines, through ``torch.distributed.run``.

    Start the same command on every machine with its own ``--node-rank`` and the address and
    port of the rank-0 machine (``--master-addr``, ``--master-port``). Every process loads the
    source cohort, pretrains with DistributedDataParallel on its share of each batch, and the
    process of global rank 0 saves the encoder to ``--out``.

    Returns
    -------
    int
        Exit status (0).

    Raises
    ------
    GraphxferError
        An unknown encoder, bad launcher options, or a process that failed (its error is
        printed above).
    """
    check_distributed_encoder(args.encoder)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch = get_args_parser().parse_args(torchrun_args(args))
    try:
        run(launch)
    except ChildFailedError as exc:
        failures = exc.failures
        codes = sorted({f.exitcode for f in failures.values()})
        raise GraphxferError(
            f"distributed pretraining failed in {len(failures)} process(es) (exit code(s) "
            f"{codes}); the first error is printed above"
        ) from None
    return 0


def _worker(payload: str) -> int:
    """One process of a launched ``graphxfer pretrain`` (``python -m graphxfer.distributed``)."""
    import torch.distributed as dist

    from graphxfer._cli_cohorts import load_cohort
    from graphxfer.encoder import pretrain
    from tabular.distributed import distributed_info, init_from_env
    from tabular.exceptions import TabularError
    from tabular.loop import resolve_device

    args = argparse.Namespace(**json.loads(payload))
    try:  # "auto": this process's own GPU on its machine, when there are GPUs
        device = resolve_device(args.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    except TabularError as exc:
        rank = os.environ.get("RANK", "0")
        print(f"graphxfer pretrain (rank {rank}): error: {exc}", file=sys.stderr)
        return 2
    created = init_from_env(device=device)
    try:
        info = distributed_info()
        params: dict[str, Any] = {
            "epochs": args.epochs,
            "random_state": args.seed,
            "progress": not args.no_progress,
            "device": device,
        }
        if args.batch_size is not None:
            params["batch_size"] = args.batch_size
        try:
            source = load_cohort(args)
            encoder = pretrain(source, args.encoder, args.objective, **params)
        except (GraphxferError, TabularError, FileNotFoundError) as exc:
            print(f"graphxfer pretrain (rank {info.rank}): error: {exc}", file=sys.stderr)
            return 2
        if info.is_main:
            path = encoder.save(args.out)
            print(
                f"pretrained {encoder.name} ({args.objective}) on {len(source):,} records with "
                f"{info.world_size} processes -> {path}",
                flush=True,
            )
        if info.active:
            dist.barrier()
        return 0
    finally:
        if created:
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover - run by torch.distributed.run
    sys.exit(_worker(sys.argv[1]))
