"""Streaming pretraining from Parquet and CSV files: the featurizer of one streaming pass equals
the in-memory fit, chunks cover every row once, and a streamed encoder learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _tabular_data import SMALL_PARAMS, columns, make_frame

from tabular import Featurizer, PretrainingError, TabularEncoder, TabularError
from tabular.streaming import TableSource, fit_featurizer_stream, pretrain_stream, row_hash

N = 1500


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    X, y = make_frame(N, seed=5)
    X["y"] = y
    return X


@pytest.fixture(scope="module")
def files(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stream")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, folder / "source.parquet", row_group_size=200)
    parts = folder / "parts"
    parts.mkdir()
    for i, lo in enumerate(range(0, N, 600)):
        pq.write_table(table.slice(lo, 600), parts / f"part-{i}.parquet", row_group_size=250)
    frame.to_csv(folder / "source.csv", index=False)
    return {
        "parquet": folder / "source.parquet",
        "folder": parts,
        "csv": folder / "source.csv",
    }


def _assert_same_featurizer(a: Featurizer, b: Featurizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for key in ("center", "scale"):
        np.testing.assert_allclose(sa.pop(key), sb.pop(key), rtol=1e-9, atol=1e-12)
    assert sa == sb


@pytest.mark.parametrize("kind", ["parquet", "folder", "csv"])
def test_source_reads_every_row_once_in_order(
    files: dict[str, Path], frame: pd.DataFrame, kind: str
) -> None:
    src = TableSource(files[kind], columns=["x0", "c0"], chunk_rows=128)
    rows, parts = [], []
    for positions, chunk in src.read():
        assert 0 < len(chunk) <= 128
        assert list(chunk.columns) == ["x0", "c0"]
        rows.append(positions)
        parts.append(chunk)
    assert np.array_equal(np.concatenate(rows), np.arange(N))
    got = pd.concat(parts, ignore_index=True)
    np.testing.assert_allclose(got["x0"].to_numpy(float), frame["x0"].to_numpy(float))
    assert src.n_rows == N


def test_parquet_pieces_are_row_groups(files: dict[str, Path]) -> None:
    src = TableSource(files["parquet"])
    pieces = src.pieces
    assert pieces is not None and len(pieces) == 8
    assert [p.offset for p in pieces] == list(range(0, N, 200))
    back = list(src.read([pieces[3], pieces[0]]))
    assert back[0][0][0] == 600 and back[-1][0][-1] == 199


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_streaming_featurizer_equals_in_memory_fit(
    files: dict[str, Path], frame: pd.DataFrame, kind: str
) -> None:
    src = TableSource(files[kind], chunk_rows=97)
    streamed, counts = fit_featurizer_stream(src, columns(), target="y")
    _assert_same_featurizer(streamed, Featurizer().fit(frame, columns()))
    assert counts == {"n_rows": N, "n_positive": int(frame["y"].sum())}


def test_featurizer_partial_fit_over_chunks_equals_fit(frame: pd.DataFrame) -> None:
    fz = Featurizer().start_streaming(columns())
    for lo in range(0, N, 333):
        fz.partial_fit(frame.iloc[lo : lo + 333])
    _assert_same_featurizer(fz.finish_streaming(), Featurizer().fit(frame, columns()))


def test_row_hash_is_uniform_and_fixed() -> None:
    rows = np.arange(200_000)
    h = row_hash(rows, seed=3)
    assert h.min() >= 0 and h.max() < 1
    assert abs(h.mean() - 0.5) < 0.005
    assert abs((h < 0.1).mean() - 0.1) < 0.005
    assert np.array_equal(h[:10], row_hash(rows[:10], seed=3))
    assert not np.array_equal(h[:10], row_hash(rows[:10], seed=4))


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_pretrain_stream_learns(files: dict[str, Path], frame: pd.DataFrame, kind: str) -> None:
    enc = pretrain_stream(
        files[kind],
        columns=columns(),
        target="y",
        encoder="mlp",
        objective="supervised+masked",
        encoder_params=SMALL_PARAMS["mlp"],
        epochs=4,
        batch_size=64,
        chunk_rows=256,
        shuffle_rows=512,
        validation_fraction=0.1,
        patience=4,
        random_state=0,
        device="cpu",
        progress=False,
    )
    assert isinstance(enc, TabularEncoder)
    emb = enc.embed(frame.head(25))
    assert emb.shape == (25, SMALL_PARAMS["mlp"]["width"])
    assert np.isfinite(emb).all()
    losses = [h["train_loss"] for h in enc.history_]
    assert losses[-1] < losses[0]
    summary = enc.source_summary_
    assert summary["streaming"] and summary["n_rows"] == N
    assert 100 <= summary["n_validation"] <= 200  # a hash split of about 10%
    # single process: every training row is used once per epoch
    assert all(h["rows"] == summary["n_train"] for h in enc.history_)
    assert summary["n_train"] + summary["n_validation"] == N
    assert enc.source_head_ is not None
    assert summary["positive_rate"] == pytest.approx(frame["y"].mean())


def test_pretrain_stream_is_reproducible(files: dict[str, Path]) -> None:
    kwargs = {
        "columns": columns(),
        "encoder_params": SMALL_PARAMS["mlp"],
        "epochs": 2,
        "batch_size": 128,
        "chunk_rows": 300,
        "random_state": 1,
        "device": "cpu",
        "progress": False,
    }
    a = pretrain_stream(files["folder"], **kwargs)
    b = pretrain_stream(files["folder"], **kwargs)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]


def test_validation_rows_are_capped(files: dict[str, Path]) -> None:
    enc = pretrain_stream(
        files["parquet"],
        columns=["x0", "x1", "c0"],
        encoder_params=SMALL_PARAMS["mlp"],
        epochs=1,
        validation_fraction=0.5,
        validation_rows=60,
        device="cpu",
        progress=False,
        random_state=0,
    )
    assert 30 <= enc.source_summary_["n_validation"] <= 60
    assert enc.columns_[2] == {"name": "c0", "kind": "categorical"}  # kind from the dtype


def test_supervised_objective_needs_a_target(files: dict[str, Path]) -> None:
    with pytest.raises(PretrainingError, match="target="):
        pretrain_stream(files["parquet"], columns=columns(), objective="supervised")


def test_outcomes_must_be_binary(tmp_path: Path, frame: pd.DataFrame) -> None:
    bad = frame.assign(y=frame["y"].astype(float))
    bad.loc[7, "y"] = np.nan
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(PretrainingError, match="0/1"):
        pretrain_stream(
            tmp_path / "bad.parquet",
            columns=columns(),
            target="y",
            objective="supervised",
            device="cpu",
            progress=False,
        )


def test_missing_columns_and_files_are_reported(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TabularError, match="lacks column"):
        pretrain_stream(files["parquet"], columns=[*columns(), {"name": "nope"}], progress=False)
    with pytest.raises(TabularError, match="does not exist"):
        TableSource(tmp_path / "absent.parquet")
    (tmp_path / "notes.txt").write_text("a\n1\n")
    with pytest.raises(TabularError, match="format"):
        TableSource([files["parquet"], files["csv"]])
