"""Graph encoders pretrained with DistributedDataParallel: two CPU processes (gloo).

With full neighbourhoods (``fanout=None``: no sampling randomness), the supervised objective
(a mean over seed records) and the same global batches, each process computing the loss of
its own share of seed records must follow single-process training step for step; the only
difference is the order of floating-point sums in the gradient all-reduce.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

WORLD = 2
TOLERANCE = 1e-4
"""Largest absolute difference allowed between a DDP and a single-process parameter."""

EXACT = {
    "encoder": "graphsage",
    "objective": "supervised",
    "k": 5,
    "hidden": 16,
    "layers": 2,
    "epochs": 4,
    "batch_size": 48,
    "fanout": None,
    "lr": 5e-3,
    "val_fraction": 0.2,
    "patience": 10,
    "random_state": 3,
    "device": "cpu",
    "progress": False,
}

SAMPLED = [
    {"encoder": "gat", "objective": "graphmae"},
    {"encoder": "gin", "objective": "dgi"},
]
ONE_VAL = {**EXACT, "val_fraction": 0.004, "epochs": 2}
"""One validation record (260 * 0.004 rounds to 1): one process's share of it is empty."""
NNDESCENT = {"encoder": "graphsage", "objective": "graphmae", "knn_method": "nndescent"}


def _arrays(n: int = 260, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    logit = 1.5 * x[:, 0] - x[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def _dump(encoder, path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "state": {k: v.tolist() for k, v in encoder.network.state_dict().items()},
                "head": None
                if encoder.head is None
                else {k: v.tolist() for k, v in encoder.head.state_dict().items()},
                "history": encoder.history_,
                "edges": encoder.edge_index.tolist(),
                "method": encoder.index.method_,
            }
        )
    )


def _worker(rank: int, world: int, rendezvous: str, folder: str, runs: dict) -> None:
    """One process (module level: ``torch.multiprocessing.spawn`` pickles it)."""
    import torch.distributed as dist

    from graphxfer.exceptions import GraphError
    from graphxfer.graphs import pretrain_graph

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        x, y = _arrays()
        for name, params in runs.items():
            _dump(pretrain_graph((x, y), **params), Path(folder, f"{name}-{rank}.json"))
        try:  # 20 records, 19 held out for validation: 1 to train, 2 processes
            pretrain_graph((x[:20], y[:20]), **{**EXACT, "k": 3, "val_fraction": 0.95})
        except GraphError as exc:
            Path(folder, f"too_few-{rank}.txt").write_text(str(exc))
    finally:
        dist.destroy_process_group()


def _spawn(folder: Path, runs: dict) -> Path:
    torch.multiprocessing.spawn(
        _worker,
        args=(WORLD, str(folder / "rendezvous"), str(folder), runs),
        nprocs=WORLD,
        join=True,
    )
    return folder


def _sampled(change: dict) -> dict:
    return {**EXACT, "fanout": (3, 3), "epochs": 2, **change}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = {"exact": EXACT, "one_val": ONE_VAL}
    runs |= {f"sampled{i}": _sampled(c) for i, c in enumerate(SAMPLED)}
    return _spawn(tmp_path_factory.mktemp("graph-ddp"), runs)


def _load(folder: Path, name: str, rank: int) -> dict:
    return json.loads((folder / f"{name}-{rank}.json").read_text())


def test_two_gloo_processes_match_single_process_training(ddp_runs: Path) -> None:
    from graphxfer.graphs import pretrain_graph

    torch.set_num_threads(1)
    x, y = _arrays()
    single = pretrain_graph((x, y), **EXACT)
    ddp = _load(ddp_runs, "exact", 0)

    assert [h["world_size"] for h in ddp["history"]] == [WORLD] * len(ddp["history"])
    assert len(ddp["history"]) == len(single.history_) == EXACT["epochs"]
    for mine, theirs in zip(ddp["history"], single.history_):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=TOLERANCE)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=TOLERANCE)
    assert ddp["edges"] == single.edge_index.tolist()
    reference = {**single.network.state_dict()}
    worst = max(
        float((torch.tensor(ddp["state"][k]) - v).abs().max()) for k, v in reference.items()
    )
    assert worst < TOLERANCE
    head = single.head.state_dict()
    assert max(float((torch.tensor(ddp["head"][k]) - v).abs().max()) for k, v in head.items()) < (
        TOLERANCE
    )
    # the run trained: the loss fell
    assert single.history_[-1]["train_loss"] < single.history_[0]["train_loss"]


def _check_replicas(runs: list[dict]) -> None:
    # each process sampled its own neighbourhoods, yet DDP applied the same averaged
    # gradient everywhere: the replicas never drift apart, and they share one graph
    for key, value in runs[0]["state"].items():
        assert np.array_equal(np.asarray(value), np.asarray(runs[1]["state"][key])), key
    assert runs[0]["edges"] == runs[1]["edges"]
    assert runs[0]["history"] == runs[1]["history"]
    assert all(np.isfinite(h["train_loss"]) for h in runs[0]["history"])


@pytest.mark.parametrize("i", range(len(SAMPLED)))
def test_every_encoder_and_objective_keeps_replicas_identical(ddp_runs: Path, i: int) -> None:
    _check_replicas([_load(ddp_runs, f"sampled{i}", r) for r in range(WORLD)])


@pytest.mark.slow
def test_rank_zero_builds_the_nndescent_graph_for_everyone(tmp_path: Path) -> None:
    _spawn(tmp_path, {"nnd": _sampled(NNDESCENT)})  # compiles NN-descent's kernels: slow
    runs = [_load(tmp_path, "nnd", r) for r in range(WORLD)]
    _check_replicas(runs)
    # rank 0 searched with NN-descent; the others index the source for exact search
    assert (runs[0]["method"], runs[1]["method"]) == ("nndescent", "exact")


def test_single_process_history_records_one_process() -> None:
    from graphxfer.graphs import pretrain_graph

    x, y = _arrays(n=80)
    enc = pretrain_graph((x, y), **{**EXACT, "epochs": 1})
    assert enc.history_[0]["world_size"] == 1


def test_a_launched_process_refuses_a_device_it_cannot_use(capsys, monkeypatch) -> None:
    from graphxfer.distributed import _worker

    monkeypatch.setenv("RANK", "1")
    assert _worker(json.dumps({"device": "no-such-device", "encoder": "graphsage"})) == 2
    assert "(rank 1): error: device='no-such-device' is not a torch device" in (
        capsys.readouterr().err
    )


def test_a_process_without_validation_records_leaves_the_loss_intact(ddp_runs: Path) -> None:
    from graphxfer.graphs import pretrain_graph

    torch.set_num_threads(1)
    x, y = _arrays()
    single = pretrain_graph((x, y), **ONE_VAL)
    ddp = _load(ddp_runs, "one_val", 0)
    for mine, theirs in zip(ddp["history"], single.history_, strict=True):
        assert theirs["val_loss"] > 0
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=TOLERANCE)


def test_too_few_training_records_for_the_processes_is_an_error(ddp_runs: Path) -> None:
    for rank in range(WORLD):
        message = (ddp_runs / f"too_few-{rank}.txt").read_text()
        assert message.startswith("1 training records cannot be shared among 2 processes")
