"""DistributedDataParallel pretraining: two CPU processes (gloo) against one process.

With identical initial weights, dropout off, an objective that is a mean over rows and the same
global batches, data-parallel training must follow single-process training step for step; the
only difference is the order of floating-point sums in the gradient all-reduce.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tabular.distributed import DistributedInfo, distributed_info, shard_bounds

ROOT = Path(__file__).resolve().parents[2]
WORLD = 2
TOLERANCE = 1e-4
"""Largest absolute difference allowed between a DDP and a single-process parameter."""

PARAMS = {
    "encoder": "mlp",
    "objective": "supervised",
    "encoder_params": {"width": 16, "n_blocks": 2, "dropout": 0.0},
    "epochs": 3,
    "batch_size": 60,
    "validation_fraction": 0.2,
    "patience": 5,
    "random_state": 7,
    "device": "cpu",
    "progress": False,
}


def _frame(n: int = 430, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(10, 3, size=n),
            "c": rng.choice(["x", "y", "z"], size=n),
        }
    )
    X.loc[rng.random(n) < 0.1, "b"] = np.nan
    logit = X["a"].to_numpy() + (X["c"] == "x").to_numpy() - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    """One process of the DDP run (module level: ``torch.multiprocessing.spawn`` pickles it)."""
    import torch.distributed as dist

    import tabular

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        X, y = _frame()
        enc = tabular.pretrain(X, y=y, **PARAMS)
        if rank == 0:
            state = {k: v.tolist() for k, v in enc.network_.state_dict().items()}
            Path(out).write_text(
                json.dumps(
                    {"state": state, "history": enc.history_, "summary": enc.source_summary_}
                )
            )
    finally:
        dist.destroy_process_group()


STREAM_PARAMS = {
    "columns": ["a", "b", "c"],
    "target": "y",
    "encoder": "mlp",
    "objective": "supervised",
    "encoder_params": {"width": 16, "n_blocks": 1, "dropout": 0.1},
    "epochs": 2,
    "batch_size": 32,
    "chunk_rows": 50,
    "random_state": 0,
    "device": "cpu",
    "progress": False,
}


def _stream_worker(rank: int, world: int, rendezvous: str, folder: str) -> None:
    """One process of a streaming DDP run over a Parquet file and a CSV file."""
    import torch.distributed as dist

    from tabular.streaming import pretrain_stream

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        for kind in ("parquet", "csv"):
            enc = pretrain_stream(Path(folder) / f"source.{kind}", **STREAM_PARAMS)
            state = {k: v.tolist() for k, v in enc.network_.state_dict().items()}
            Path(folder, f"{kind}-{rank}.json").write_text(
                json.dumps(
                    {"state": state, "history": enc.history_, "summary": enc.source_summary_}
                )
            )
    finally:
        dist.destroy_process_group()


def test_shard_bounds_cover_the_batch_without_overlap() -> None:
    for n in (1, 7, 60, 61):
        for world in (1, 2, 3, 5):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_single_process_is_not_distributed() -> None:
    assert distributed_info() == DistributedInfo(0, 1, 0)
    assert not distributed_info().active


def test_two_gloo_processes_match_single_process_training(tmp_path: Path) -> None:
    import tabular

    torch.set_num_threads(1)
    X, y = _frame()
    single = tabular.pretrain(X, y=y, **PARAMS)

    out = tmp_path / "ddp.json"
    torch.multiprocessing.spawn(
        _worker, args=(WORLD, str(tmp_path / "rendezvous"), str(out)), nprocs=WORLD, join=True
    )
    ddp = json.loads(out.read_text())

    assert ddp["summary"]["world_size"] == WORLD
    assert [h["epoch"] for h in ddp["history"]] == [h["epoch"] for h in single.history_]
    for mine, theirs in zip(ddp["history"], single.history_):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=TOLERANCE)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=TOLERANCE)
    reference = single.network_.state_dict()
    assert set(ddp["state"]) == set(reference)
    worst = max(
        float((torch.tensor(ddp["state"][k]) - v.float()).abs().max()) for k, v in reference.items()
    )
    assert worst < TOLERANCE
    # the run really trained: parameters moved away from their initial values
    assert single.history_[-1]["train_loss"] < single.history_[0]["train_loss"] + 1e-9


@pytest.mark.parametrize(
    "encoder",
    # graph pretraining through torchrun takes over 10 s on 2 cores
    ["mlp", pytest.param("graphsage", marks=pytest.mark.slow)],
)
def test_cli_relaunches_through_torchrun(tmp_path: Path, encoder: str) -> None:
    out = tmp_path / "enc"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphxfer.cli",
            "pretrain",
            "--dataset",
            "heart-disease",
            "--sites",
            "cleveland,hungarian",
            "--encoder",
            encoder,
            "--objective",
            "supervised",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--nproc-per-node",
            "2",
            "--master-port",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stdout
    from graphxfer import load_encoder

    enc = load_encoder(out)
    if encoder == "mlp":
        assert enc.inner.source_summary_["world_size"] == 2
    else:
        assert [h["world_size"] for h in enc.inner.history_] == [2, 2]
    assert enc.source_summary["n_rows"] == 597


def test_only_tabular_encoders_stream() -> None:
    from graphxfer.distributed import DistributedUnsupportedError, check_distributed_encoder
    from graphxfer.exceptions import GraphxferError

    for encoder in ("mlp", "ft-transformer", "tabnet", "graphsage", "gat", "gin"):
        check_distributed_encoder(encoder)  # every encoder trains across processes
    check_distributed_encoder("mlp", streaming=True)
    with pytest.raises(DistributedUnsupportedError, match="graph encoder 'graphsage'"):
        check_distributed_encoder("graphsage", streaming=True)
    with pytest.raises(GraphxferError, match="unknown encoder 'cnn'"):
        check_distributed_encoder("cnn")


def test_streaming_ddp_keeps_replicas_identical(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = _frame(n=700)
    X["y"] = y
    pq.write_table(pa.Table.from_pandas(X), tmp_path / "source.parquet", row_group_size=80)
    X.to_csv(tmp_path / "source.csv", index=False)
    torch.multiprocessing.spawn(
        _stream_worker,
        args=(WORLD, str(tmp_path / "rendezvous"), str(tmp_path)),
        nprocs=WORLD,
        join=True,
    )
    for kind in ("parquet", "csv"):
        runs = [json.loads((tmp_path / f"{kind}-{r}.json").read_text()) for r in range(WORLD)]
        # DDP applies the same averaged gradient everywhere: the replicas never drift apart
        for key, value in runs[0]["state"].items():
            assert np.array_equal(np.asarray(value), np.asarray(runs[1]["state"][key])), key
        timeless = [
            [
                {k: v for k, v in h.items() if k not in ("seconds", "records_per_s")}
                for h in r["history"]
            ]
            for r in runs
        ]
        assert timeless[0] == timeless[1]
        summary = runs[0]["summary"]
        assert summary["world_size"] == WORLD and summary["n_rows"] == 700
        for h in runs[0]["history"]:
            # same number of steps in every process, of batch_size // world rows each
            assert h["rows"] % STREAM_PARAMS["batch_size"] == 0
            assert summary["n_train"] - 2 * 80 <= h["rows"] <= summary["n_train"]


def test_streamed_encoder_and_summary_match_the_cohort(tmp_path: Path) -> None:
    from graphxfer.datasets import make_multisite
    from graphxfer.distributed import pretrain_stream
    from graphxfer.encoder import source_summary

    cohort = make_multisite(n_sites=3, n_per_site=300, random_state=2)
    cohort.data.to_parquet(tmp_path / "source.parquet", row_group_size=128)
    enc = pretrain_stream(
        tmp_path / "source.parquet",
        cohort.schema,
        "mlp",
        "supervised",
        encoder_params={"width": 16},
        epochs=2,
        chunk_rows=100,
        random_state=0,
        device="cpu",
        progress=False,
    )
    expected = source_summary(cohort)
    got = enc.source_summary
    for key in ("n_rows", "n_persons", "sites", "name"):
        assert got[key] == expected[key], key
    assert got["positive_rate"] == pytest.approx(expected["positive_rate"])
    for name, marginal in expected["marginals"].items():
        mine = got["marginals"][name]
        assert mine["missing"] == pytest.approx(marginal["missing"])
        if marginal["kind"] == "numeric":  # the reservoir holds every value of a small source
            np.testing.assert_allclose(mine["quantiles"], marginal["quantiles"], rtol=1e-12)
        else:
            assert mine["frequencies"] == pytest.approx(marginal["frequencies"])
    assert enc.embed(cohort).shape == (900, 16)
    assert len(enc.background(50)) == 50
    # the streamed featurizer is the in-memory one
    from tabular import Featurizer

    reference = Featurizer().fit(cohort.X, cohort.schema.features).state_dict()
    state = enc.inner.featurizer_.state_dict()
    np.testing.assert_allclose(state.pop("center"), reference.pop("center"), rtol=1e-9)
    np.testing.assert_allclose(state.pop("scale"), reference.pop("scale"), rtol=1e-9)
    assert state == reference


def test_reservoir_quantiles_of_a_large_column_are_close() -> None:
    from graphxfer import Column, Schema
    from graphxfer.distributed import StreamingSummary

    rng = np.random.default_rng(0)
    values = rng.exponential(size=300_000)
    schema = Schema([Column("v", lower=0.0, upper=50.0)], name="big")
    acc = StreamingSummary(schema, reservoir=20_000, random_state=1)
    for lo in range(0, len(values), 65_536):
        acc.update(pd.DataFrame({"v": values[lo : lo + 65_536]}))
    q = np.asarray(acc.result()["marginals"]["v"]["quantiles"])
    exact = np.quantile(values, np.linspace(0, 1, 101))
    # ranks of the sketch's quantiles in the full column are within 1.5 points of the target
    ranks = np.searchsorted(np.sort(values), q[1:-1]) / len(values)
    assert np.abs(ranks - np.linspace(0, 1, 101)[1:-1]).max() < 0.015
    assert q[0] >= exact[0] and q[-1] <= exact[-1]


def test_graph_encoders_cannot_stream(tmp_path: Path) -> None:
    from graphxfer.datasets import make_multisite
    from graphxfer.distributed import DistributedUnsupportedError, pretrain_stream

    cohort = make_multisite(n_per_site=20, random_state=0)
    cohort.data.to_parquet(tmp_path / "s.parquet")
    with pytest.raises(DistributedUnsupportedError, match="from a stream"):
        pretrain_stream(tmp_path / "s.parquet", cohort.schema, "graphsage")


def test_launcher_builds_the_torchrun_command() -> None:
    import argparse

    from graphxfer.distributed import torchrun_args

    args = argparse.Namespace(
        command="pretrain", encoder="mlp", nproc_per_node=4, nnodes=2, node_rank=1,
        master_addr="10.0.0.1", master_port=29501, config=None, epochs=3,
    )  # fmt: skip
    argv = torchrun_args(args)
    assert argv[:5] == [
        "--nproc-per-node=4", "--nnodes=2", "--node-rank=1",
        "--master-addr=10.0.0.1", "--master-port=29501",
    ]  # fmt: skip
    assert argv[5:7] == ["--module", "graphxfer.distributed"]
    payload = json.loads(argv[7])
    assert payload == {"command": "pretrain", "encoder": "mlp", "epochs": 3}
    from graphxfer.exceptions import GraphxferError

    with pytest.raises(GraphxferError, match="node-rank"):
        torchrun_args(argparse.Namespace(**{**vars(args), "node_rank": 2}))
    with pytest.raises(GraphxferError, match="one machine"):
        torchrun_args(argparse.Namespace(**{**vars(args), "master_port": 0}))


def test_docstring_examples() -> None:
    import doctest

    import graphxfer.distributed

    result = doctest.testmod(
        graphxfer.distributed, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
