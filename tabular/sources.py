"""Parquet and CSV files read lazily, in chunks of rows.

:class:`TableSource` reads Parquet row groups through
``pyarrow.parquet.ParquetFile.iter_batches`` and CSV files through
``pandas.read_csv(chunksize=...)``; every chunk comes with the positions of its rows in the
whole source, so that splits and shards can be decided by row position without a list of
rows. Streaming pretraining (:func:`tabular.pretrain_stream`) reads its data through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabular.exceptions import PretrainingError, TabularError

__all__ = ["TablePiece", "TableSource", "Transform", "apply_transform", "chunk_outcome"]

#: A function applied to every chunk (``DataFrame -> DataFrame``, keeping its rows).
Transform = Callable[[pd.DataFrame], pd.DataFrame]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".txt")
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class TablePiece:
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
        self._pieces: list[TablePiece] | None = None
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
    def pieces(self) -> list[TablePiece] | None:
        """Parquet row groups (units that can be read in any order); ``None`` for CSV."""
        return None if self._pieces is None else list(self._pieces)

    def with_columns(self, columns: Sequence[str]) -> TableSource:
        """The same files, reading only ``columns``."""
        out = TableSource.__new__(TableSource)
        out.__dict__.update(self.__dict__)
        out.columns = list(dict.fromkeys(columns))
        return out

    def _parquet_pieces(self) -> list[TablePiece]:
        import pyarrow.parquet as pq

        pieces, offset = [], 0
        for path in self.files:
            meta = pq.ParquetFile(path).metadata
            for rg in range(meta.num_row_groups):
                n = meta.row_group(rg).num_rows
                if n:
                    pieces.append(TablePiece(path, rg, n, offset))
                    offset += n
        return pieces

    def head(self, n: int = 1000) -> pd.DataFrame:
        """The first ``n`` rows (at most one chunk)."""
        for _, frame in self.read():
            return frame.head(n)
        raise TabularError(f"{self!r} holds no rows")

    def read(
        self, pieces: Sequence[TablePiece] | None = None
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


def apply_transform(transform: Transform | None, frame: pd.DataFrame) -> pd.DataFrame:
    """``transform(frame)``, checked to keep the chunk's rows (``frame`` when no transform)."""
    if transform is None:
        return frame
    out = transform(frame)
    if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
        raise PretrainingError(
            "transform must return a DataFrame with the same rows as the chunk it was given"
        )
    return out


def chunk_outcome(frame: pd.DataFrame, target: str) -> np.ndarray:
    """The 0/1 outcome column ``target`` of a chunk, as float32; anything else is refused."""
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
