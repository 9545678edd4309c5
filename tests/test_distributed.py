"""DistributedDataParallel pretraining: two CPU processes (gloo) against one process.

With identical initial weights, dropout off, an objective that is a mean over rows and the same
global batches, data-parallel training must follow single-process training step for step; the
only difference is the order of floating-point sums in the gradient all-reduce.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
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
                json.dumps({"state": state, "history": enc.history_, "summary": enc.source_summary_})
            )
    finally:
        dist.destroy_process_group()


def test_shard_bounds_cover_the_batch_without_overlap() -> None:
    for n in (1, 7, 60, 61):
        for world in (1, 2, 3, 5):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
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


def test_cli_relaunches_through_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "enc"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable, "-m", "graphxfer.cli", "pretrain",
            "--dataset", "heart-disease", "--sites", "cleveland,hungarian",
            "--encoder", "mlp", "--objective", "supervised", "--epochs", "2",
            "--batch-size", "64", "--nproc-per-node", "2", "--master-port", "0",
            "--device", "cpu", "--no-progress", "--out", str(out),
        ],  # fmt: skip
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
    assert enc.inner.source_summary_["world_size"] == 2
    assert enc.source_summary["n_rows"] == 597


def test_graph_encoders_refuse_distributed_pretraining() -> None:
    from graphxfer.distributed import DistributedUnsupportedError, check_distributed_encoder

    with pytest.raises(DistributedUnsupportedError, match="graph encoder"):
        check_distributed_encoder("graphsage")
    check_distributed_encoder("mlp")
