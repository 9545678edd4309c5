"""Pretraining from Parquet or CSV files larger than memory.

:class:`TableSource` reads files in chunks of rows (Parquet row groups through
``pyarrow.parquet.ParquetFile.iter_batches``, CSV through ``pandas.read_csv(chunksize=...)``).
:func:`pretrain_stream` makes one streaming pass to fit the featurizer
(:meth:`Featurizer.partial_fit`), then trains for a number of epochs, each one more pass over
the files: chunks are featurised, mixed in a shuffle buffer and cut into mini-batches. Memory
is bounded by the chunk size, the shuffle buffer and the validation sample — never by the
number of rows in the files.

Validation rows are chosen by a hash of each row's position in the source (the same rows in
every epoch and every process), so no list of rows is kept. Under ``torchrun`` every process
trains on its own shard of the files (:mod:`tabular.distributed`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular._data import column_dict, infer_column
from tabular.exceptions import PretrainingError, TabularError
from tabular.featurizer import FeatureBatch, Featurizer

__all__ = ["TableSource", "fit_featurizer_stream", "pretrain_stream", "row_hash"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".txt")
_HASH_BLOCK = 1 << 20

Transform = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class _Piece:
    """A unit of random access: one row group of one Parquet file."""

    path: str
    row_group: int
    n_rows: int
    offset: int  # position of its first row in the whole source


class TableSource:
    """Rows of one or more Parquet or CSV files, read lazily in chunks.

    Parameters
    ----------
    paths : path or sequence of paths
        Files, or folders (all ``*.parquet`` / ``*.pq`` / ``*.csv`` files inside, sorted by
        name). Every file must have the same format and hold the ``columns``.
    columns : sequence of str, optional
        Columns to read (default: all).
    chunk_rows : int, default=65536
        Largest number of rows read at once.
    format : {"parquet", "csv"}, optional
        Default: from the file suffix.

    Attributes
    ----------
    format : str
    files : list of str
    n_rows : int or None
        Rows in all files (from the Parquet metadata; ``None`` for CSV until counted by a pass).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> pd.DataFrame({"a": range(5)}).to_parquet(f"{folder}/part.parquet")
    >>> src = TableSource(folder, chunk_rows=2)
    >>> [(rows.tolist(), frame["a"].tolist()) for rows, frame in src.read()]
    [([0, 1], [0, 1]), ([2, 3], [2, 3]), ([4], [4])]
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        columns: Sequence[str] | None = None,
        chunk_rows: int = 65_536,
        format: str | None = None,
    ) -> None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise TabularError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        self.files = _expand(paths)
        self.format = _format(self.files, format)
        self.columns = None if columns is None else list(dict.fromkeys(columns))
        self.chunk_rows = chunk_rows
        self._pieces: list[_Piece] | None = None
        self.n_rows: int | None = None
        if self.format == "parquet":
            self._pieces = self._parquet_pieces()
            self.n_rows = sum(p.n_rows for p in self._pieces)

    def __repr__(self) -> str:
        return (
            f"TableSource({len(self.files)} {self.format} file(s), rows={self.n_rows}, "
            f"chunk_rows={self.chunk_rows})"
        )

    @property
    def pieces(self) -> list[_Piece] | None:
        """Parquet row groups (units that can be read in any order); ``None`` for CSV."""
        return None if self._pieces is None else list(self._pieces)

    def with_columns(self, columns: Sequence[str]) -> TableSource:
        """The same files, reading only ``columns``."""
        out = TableSource.__new__(TableSource)
        out.__dict__.update(self.__dict__)
        out.columns = list(dict.fromkeys(columns))
        return out

    def _parquet_pieces(self) -> list[_Piece]:
        import pyarrow.parquet as pq

        pieces, offset = [], 0
        for path in self.files:
            meta = pq.ParquetFile(path).metadata
            for rg in range(meta.num_row_groups):
                n = meta.row_group(rg).num_rows
                if n:
                    pieces.append(_Piece(path, rg, n, offset))
                    offset += n
        return pieces

    def head(self, n: int = 1000) -> pd.DataFrame:
        """The first ``n`` rows (at most one chunk)."""
        for _, frame in self.read():
            return frame.head(n)
        raise TabularError(f"{self!r} holds no rows")

    def read(
        self, pieces: Sequence[_Piece] | None = None
    ) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """Chunks as ``(row positions in the whole source, frame)``.

        Parameters
        ----------
        pieces : sequence, optional
            Parquet row groups to read, in this order (default: all, in file order).
        """
        if self.format == "csv":
            if pieces is not None:
                raise TabularError("CSV files are read in order; they have no pieces")
            yield from self._read_csv()
            return
        import pyarrow.parquet as pq

        handles: dict[str, Any] = {}
        chosen = self._pieces if pieces is None else pieces
        for piece in chosen or ():
            pf = handles.get(piece.path)
            if pf is None:
                pf = handles[piece.path] = pq.ParquetFile(piece.path)
                self._check_columns(pf.schema_arrow.names, piece.path)
            start = piece.offset
            for batch in pf.iter_batches(
                batch_size=self.chunk_rows, row_groups=[piece.row_group], columns=self.columns
            ):
                frame = batch.to_pandas()
                yield np.arange(start, start + len(frame), dtype=np.int64), frame
                start += len(frame)

    def _read_csv(self) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        start = 0
        for path in self.files:
            header = pd.read_csv(path, nrows=0).columns
            self._check_columns(list(header), path)
            with pd.read_csv(path, chunksize=self.chunk_rows, usecols=self.columns) as reader:
                for frame in reader:
                    frame = frame.reset_index(drop=True)
                    yield np.arange(start, start + len(frame), dtype=np.int64), frame
                    start += len(frame)
        self.n_rows = start

    def _check_columns(self, names: Sequence[str], path: str) -> None:
        if self.columns is None:
            return
        absent = [c for c in self.columns if c not in names]
        if absent:
            raise TabularError(
                f"{path} lacks column(s) {absent}; it has {list(names)[:30]}. Every file of "
                "the source must hold every feature column (and the target when one is used)"
            )


def _expand(paths: Any) -> list[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise TabularError("no source files given")
    files: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                str(f) for f in p.iterdir() if f.is_file() and f.name.endswith(_PARQUET + _CSV)
            )
            if not found:
                raise TabularError(f"folder {str(p)!r} holds no .parquet, .pq or .csv file")
            files.extend(found)
        elif p.is_file():
            files.append(str(p))
        else:
            raise TabularError(f"source file {str(p)!r} does not exist")
    return files


def _format(files: list[str], format: str | None) -> str:
    if format is not None:
        if format not in ("parquet", "csv"):
            raise TabularError(f"format must be 'parquet' or 'csv', got {format!r}")
        return format
    kinds = {"parquet" if f.endswith(_PARQUET) else "csv" if f.endswith(_CSV) else f for f in files}
    if len(kinds) != 1 or not kinds <= {"parquet", "csv"}:
        raise TabularError(
            f"cannot tell the format of {sorted(kinds)}: use files ending in .parquet or .csv "
            "(one format for all), or pass format="
        )
    return kinds.pop()


def row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in ``[0, 1)`` per row position, fixed by ``seed`` (SplitMix64).

    Rows whose hash falls below the validation share form the validation split, in every
    epoch and every process, without storing a list of rows.
    """
    z = np.asarray(rows, dtype=np.uint64) + np.uint64(seed % (2**64))
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _count_below(start: int, stop: int, seed: int, threshold: float, world: int) -> np.ndarray:
    """Per process (row position modulo ``world``): rows in ``[start, stop)`` hashed below."""
    out = np.zeros(world, dtype=np.int64)
    if threshold <= 0:
        return out
    for lo in range(start, stop, _HASH_BLOCK):
        rows = np.arange(lo, min(lo + _HASH_BLOCK, stop), dtype=np.int64)
        below = rows[row_hash(rows, seed) < threshold]
        out += np.bincount(below % world, minlength=world)
    return out


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
    from tqdm.auto import tqdm

    featurizer = Featurizer().start_streaming(columns)
    n_rows, n_positive = 0, 0
    bar = tqdm(
        total=source.n_rows, desc="fit featurizer", unit="row", disable=not progress, leave=False
    )
    for _, frame in source.read():
        frame = _apply(transform, frame)
        featurizer.partial_fit(frame)
        if target is not None:
            n_positive += int(_outcome(frame, target).sum())
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


def _apply(transform: Transform | None, frame: pd.DataFrame) -> pd.DataFrame:
    if transform is None:
        return frame
    out = transform(frame)
    if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
        raise PretrainingError(
            "transform must return a DataFrame with the same rows as the chunk it was given"
        )
    return out


def _outcome(frame: pd.DataFrame, target: str) -> np.ndarray:
    if target not in frame.columns:
        raise PretrainingError(f"the chunk lacks the target column {target!r}")
    values = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        shown = frame[target][bad].head(5).tolist()
        raise PretrainingError(
            f"target {target!r} must hold 0/1 values in every row; found {shown} "
            "(missing outcomes included): clean the files or drop those rows first"
        )
    return values.astype(np.float32)


class _ShuffleBuffer:
    """Mixes featurised rows across chunks and cuts them into mini-batches.

    Holds at most ``capacity`` rows plus one chunk; each time it overflows it is shuffled and
    the overflow leaves as full batches, so a row waits a random number of chunks.
    """

    def __init__(self, capacity: int, batch_size: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self.rng = rng
        self.parts: list[tuple[FeatureBatch, np.ndarray | None]] = []
        self.rows = 0

    def add(
        self, batch: FeatureBatch, y: np.ndarray | None
    ) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        if len(batch):
            self.parts.append((batch, y))
            self.rows += len(batch)
        if self.rows > self.capacity:
            n_out = -(-(self.rows - self.capacity) // self.batch_size) * self.batch_size
            yield from self._emit(min(n_out, self.rows - self.rows % self.batch_size))

    def flush(self, *, partial: bool) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        n_out = self.rows if partial else self.rows - self.rows % self.batch_size
        yield from self._emit(n_out)
        self.parts, self.rows = [], 0

    def _emit(self, n_out: int) -> Iterator[tuple[FeatureBatch, np.ndarray | None]]:
        if n_out <= 0:
            return
        pool = FeatureBatch.concat([b for b, _ in self.parts])
        ys = [y for _, y in self.parts]
        y_pool: np.ndarray | None = None
        if ys[0] is not None:
            y_pool = np.concatenate([y for y in ys if y is not None])
        perm = self.rng.permutation(len(pool))
        out, keep = perm[:n_out], perm[n_out:]
        self.parts = [(pool.take(keep), None if y_pool is None else y_pool[keep])]
        self.rows = len(keep)
        for lo in range(0, n_out, self.batch_size):
            idx = out[lo : lo + self.batch_size]
            yield pool.take(idx), None if y_pool is None else y_pool[idx]


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

    from tabular._torch import EarlyStopping, resolve_device, seed_from, seeded
    from tabular.distributed import broadcast_object, distributed_info, wrap_ddp
    from tabular.encoders import EncoderNetwork
    from tabular.objectives import OBJECTIVES, make_objective
    from tabular.pretraining import _check_options
    from tabular.registry import ENCODERS
    from tabular.tabular_encoder import TabularEncoder

    _check_options(epochs, batch_size, lr, weight_decay, validation_fraction, patience)
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
    if isinstance(device, str) and device == "auto" and info.active and torch.cuda.is_available():
        device = f"cuda:{info.local_rank}"
    dev = resolve_device(device)
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
    plan = _ShardPlan.build(src, info.world_size, split_seed, threshold)
    steps = plan.steps_per_epoch(local_batch) if info.active else None
    if steps == 0:
        raise PretrainingError(
            f"too few rows for {info.world_size} processes at batch_size={batch_size}: some "
            "process would take no step; lower batch_size or the number of processes"
        )
    val_cap = -(-validation_rows // info.world_size)

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
        mask_gen = torch.Generator().manual_seed(int(seeds[1]) + info.rank)
        rng = np.random.default_rng([int(seeds[2]), info.rank])

        history: list[dict[str, Any]] = []
        stopper = EarlyStopping(patience)
        val_parts: list[tuple[FeatureBatch, np.ndarray | None]] = []
        val_data: tuple[FeatureBatch, np.ndarray | None] | None = None
        from tqdm.auto import tqdm

        per_epoch = steps if steps is not None else -(-plan.train_rows // local_batch)
        bar = tqdm(
            total=epochs * per_epoch,
            desc=f"pretrain {encoder} ({objective}, streaming)",
            unit="step",
            disable=not (progress and info.is_main),
            leave=False,
        )
        shuffle_cap = shuffle_rows if shuffle_rows is not None else 4 * src.chunk_rows
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            network.train()
            obj.train()
            buffer = _ShuffleBuffer(shuffle_cap, local_batch, rng)
            total, done_rows, n_steps = 0.0, 0, 0
            collect = epoch == 1 and threshold > 0
            for frame_rows, frame in plan.read(epoch, info.rank):
                frame = _apply(transform, frame.reset_index(drop=True))
                is_val = row_hash(frame_rows, split_seed) < threshold if threshold > 0 else None
                mine = plan.mine(frame_rows, info.rank)
                keep = mine if is_val is None else mine & ~is_val
                if collect and is_val is not None:
                    held = sum(len(b) for b, _ in val_parts)
                    pick = np.flatnonzero(mine & is_val)[: max(val_cap - held, 0)]
                    if len(pick):
                        part = frame.iloc[pick]
                        val_parts.append((featurizer.transform(part), _y(part, needed_target)))
                train = frame.iloc[np.flatnonzero(keep)] if not keep.all() else frame
                batches = buffer.add(featurizer.transform(train), _y(train, needed_target))
                for fb, y in batches:
                    if steps is not None and n_steps >= steps:
                        break
                    total += _step(network, obj, model, optimizer, fb, y, dev, mask_gen) * len(fb)
                    done_rows += len(fb)
                    n_steps += 1
                    bar.update(1)
                if steps is not None and n_steps >= steps:
                    break
            for fb, y in buffer.flush(partial=steps is None):
                if steps is not None and n_steps >= steps:
                    break
                if len(fb) < objective_cls.min_batch:
                    continue
                total += _step(network, obj, model, optimizer, fb, y, dev, mask_gen) * len(fb)
                done_rows += len(fb)
                n_steps += 1
                bar.update(1)
            if steps is not None and n_steps < steps:
                raise PretrainingError(
                    f"process {info.rank} ran out of rows after {n_steps} of {steps} steps; "
                    "the files changed while training?"
                )
            summed = _all_sum([total, done_rows])
            train_loss = summed[0] / summed[1] if summed[1] else math.nan
            rows_epoch = int(summed[1])
            if collect:
                val_data = _concat(val_parts)
                val_parts = []
            val_loss = None
            n_val_global = int(_all_sum([0 if val_data is None else len(val_data[0])])[0])
            if n_val_global:
                val_loss = _validate(
                    network, obj, val_data, dev, local_batch, int(seeds[3]) + info.rank
                )
            seconds = time.perf_counter() - start
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "seconds": seconds,
                    "rows": rows_epoch,
                    "records_per_s": rows_epoch / seconds if seconds > 0 else None,
                }
            )
            bar.set_postfix(
                epoch=epoch,
                train=f"{train_loss:.4f}",
                val="-" if val_loss is None else f"{val_loss:.4f}",
            )
            if not math.isfinite(train_loss):
                raise PretrainingError(
                    f"the pretraining loss is not finite ({train_loss}); lower lr"
                )
            if stopper.step(epoch, val_loss, network, obj):
                break
        bar.close()
    stopper.restore(network, obj)
    best_epoch = stopper.best_epoch
    network.cpu().eval()
    obj.cpu()
    head = getattr(obj, "head", None) if objective_cls.needs_outcome else None
    summary: dict[str, Any] = {
        "n_rows": n_rows,
        "n_train": plan.train_rows,
        "n_validation": n_val_global,
        "n_columns": len(cols),
        "encoder": encoder,
        "objective": objective,
        "encoder_params": dict(encoder_params or {}),
        "objective_params": dict(objective_params or {}),
        "mask_rate": float(mask_rate),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": next((h["val_loss"] for h in history if h["epoch"] == best_epoch), None),
        "device": dev.type,
        "world_size": info.world_size,
        "streaming": True,
        "chunk_rows": src.chunk_rows,
        "outcome_used": needed_target is not None,
    }
    if needed_target is not None:
        summary["positive_rate"] = counts["n_positive"] / n_rows
    import copy

    return TabularEncoder(
        featurizer,
        network,
        columns=cols,
        history=history,
        source_summary=summary,
        source_head=copy.deepcopy(head) if head is not None else None,
    )


def _y(frame: pd.DataFrame, target: str | None) -> np.ndarray | None:
    return None if target is None else _outcome(frame, target)


def _concat(
    parts: list[tuple[FeatureBatch, np.ndarray | None]],
) -> tuple[FeatureBatch, np.ndarray | None] | None:
    if not parts:
        return None
    ys = [y for _, y in parts]
    y = None if ys[0] is None else np.concatenate([v for v in ys if v is not None])
    return FeatureBatch.concat([b for b, _ in parts]), y


def _tensors(fb: FeatureBatch, y: np.ndarray | None, dev: Any) -> tuple[Any, ...]:
    import torch

    parts = fb.to_tensors(dev)
    return parts, None if y is None else torch.as_tensor(y, device=dev)


def _step(
    network: Any,
    obj: Any,
    model: Any,
    optimizer: Any,
    fb: FeatureBatch,
    y: np.ndarray | None,
    dev: Any,
    generator: Any,
) -> float:
    import torch

    batch, yt = _tensors(fb, y, dev)
    loss = (
        model(*batch, yt, generator)
        if model is not None
        else obj.loss(network, batch, yt, generator)
    )
    if not torch.isfinite(loss):
        raise PretrainingError(
            f"the pretraining loss is not finite ({loss.item()}); lower lr or check the data "
            "for extreme values"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _validate(
    network: Any,
    obj: Any,
    data: tuple[FeatureBatch, np.ndarray | None] | None,
    dev: Any,
    batch_size: int,
    seed: int,
) -> float | None:
    import torch

    network.eval()
    obj.eval()
    total, rows = 0.0, 0
    if data is not None:
        fb, y = data
        gen = torch.Generator().manual_seed(seed)  # the same masks every epoch
        with torch.no_grad():
            for lo in range(0, len(fb), batch_size):
                idx = np.arange(lo, min(lo + batch_size, len(fb)))
                if len(idx) < obj.min_batch:
                    continue
                batch, yt = _tensors(fb.take(idx), None if y is None else y[idx], dev)
                total += float(obj.loss(network, batch, yt, gen)) * len(idx)
                rows += len(idx)
    summed = _all_sum([total, rows])
    return summed[0] / summed[1] if summed[1] else None


def _all_sum(values: list[float]) -> list[float]:
    from tabular.distributed import all_reduce_sum

    return all_reduce_sum(values)


@dataclass
class _ShardPlan:
    """Which rows each process reads in each epoch, and how many of them it trains on."""

    source: TableSource
    world: int
    mode: (
        str  # "single", "pieces" (row groups dealt to processes) or "rows" (row position mod world)
    )
    seed: int
    train_rows: int
    piece_train: np.ndarray | None  # training rows per piece ("pieces" mode)
    rank_train: np.ndarray | None  # training rows per process ("rows" mode)

    @classmethod
    def build(cls, source: TableSource, world: int, seed: int, threshold: float) -> _ShardPlan:
        n = int(source.n_rows or 0)
        pieces = source.pieces
        if world == 1:
            val = int(_count_below(0, n, seed, threshold, 1)[0])
            return cls(source, world, "single", seed, n - val, None, None)
        if pieces is not None and len(pieces) >= 2 * world:
            train = np.array(
                [
                    p.n_rows
                    - int(_count_below(p.offset, p.offset + p.n_rows, seed, threshold, 1)[0])
                    for p in pieces
                ],
                dtype=np.int64,
            )
            return cls(source, world, "pieces", seed, int(train.sum()), train, None)
        per_rank = _mod_counts(n, world) - _count_below(0, n, seed, threshold, world)
        return cls(source, world, "rows", seed, int(per_rank.sum()), None, per_rank)

    def _order(self, epoch: int) -> np.ndarray:
        assert self.piece_train is not None
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.piece_train))

    def steps_per_epoch(self, local_batch: int) -> int:
        """Steps every process can take in every epoch (the smallest shard decides)."""
        if self.mode == "rows":
            assert self.rank_train is not None
            return int(self.rank_train.min()) // local_batch
        assert self.piece_train is not None
        # a process reads every world-th piece of a random order: at worst the smallest ones
        n_each = len(self.piece_train) // self.world
        return int(np.sort(self.piece_train)[:n_each].sum()) // local_batch

    def read(self, epoch: int, rank: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        pieces = self.source.pieces
        if self.mode == "pieces":
            assert pieces is not None
            order = self._order(epoch)
            yield from self.source.read([pieces[i] for i in order[rank :: self.world]])
        elif pieces is not None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(pieces))
            yield from self.source.read([pieces[i] for i in order])
        else:
            yield from self.source.read()

    def mine(self, rows: np.ndarray, rank: int) -> np.ndarray:
        if self.mode == "rows":
            return rows % self.world == rank
        return np.ones(len(rows), dtype=bool)


def _mod_counts(n: int, world: int) -> np.ndarray:
    base, extra = divmod(n, world)
    return np.array([base + (1 if r < extra else 0) for r in range(world)], dtype=np.int64)
