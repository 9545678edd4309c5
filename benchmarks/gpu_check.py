"""The whole pipeline on CUDA, timed side by side with the CPU.

    python -m benchmarks.gpu_check                 # CPU and, when present, CUDA
    python -m benchmarks.gpu_check --quick         # small sizes (runs on a CPU-only machine too)
    python -m benchmarks.gpu_check --devices cuda --json gpu.json

Steps, each on every device: MLP and FT-transformer pretraining (in memory), streaming
pretraining from Parquet, data-parallel pretraining in 2 processes (``gloo`` on the CPU,
``nccl`` on CUDA), differentially private fine-tuning (Opacus, ``lp-ft``), explanations
(permutation on the transfer model; gradient and DeepLIFT on a differentiable MLP), and a
graph encoder (GraphSAGE pretraining, then fine-tuning on attached target records). A step
that fails prints its error and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZES = {
    True: {"pretrain": 5_000, "stream": 20_000, "target": 400, "explain": 20, "graph": 2_000},
    False: {"pretrain": 200_000, "stream": 1_000_000, "target": 3_000, "explain": 200,
            "graph": 50_000},
}  # fmt: skip


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Pipeline:
    """The steps, with shared data, for one size setting."""

    def __init__(self, quick: bool, folder: Path) -> None:
        from graphxfer.datasets import make_multisite

        self.quick = quick
        self.size = SIZES[quick]
        self.folder = folder
        n = self.size["pretrain"]
        cohort = make_multisite(
            n_sites=2, n_per_site=[n, self.size["target"]], shift=0.5, random_state=3
        )
        self.source = cohort.select_groups("site0")
        self.target = cohort.select_groups("site1")
        self.train, self.test = self.target.split(test_size=0.3, random_state=0)
        stream = make_multisite(n_sites=3, n_per_site=-(-self.size["stream"] // 3), random_state=5)
        self.parquet = folder / "stream.parquet"
        stream.data.sample(frac=1.0, random_state=0).to_parquet(self.parquet, row_group_size=65_536)
        self.stream_schema = stream.schema
        self.encoders: dict[tuple[str, str], Any] = {}

    # each step returns (seconds, details)
    def pretrain(self, device: str, encoder: str) -> tuple[float, str]:
        from graphxfer import pretrain

        t = time.perf_counter()
        enc = pretrain(self.source, encoder, "supervised", epochs=2, batch_size=1024,
                       validation_fraction=0.05, random_state=0, device=device,
                       progress=False)  # fmt: skip
        _sync(device)
        seconds = time.perf_counter() - t
        self.encoders[(device, encoder)] = enc
        rate = len(self.source) * len(enc.history) / sum(h["seconds"] for h in enc.history)
        return seconds, f"{rate:,.0f} records/s; val loss {enc.history[-1]['val_loss']:.4f}"

    def stream(self, device: str) -> tuple[float, str]:
        from graphxfer.distributed import pretrain_stream

        t = time.perf_counter()
        enc = pretrain_stream(self.parquet, self.stream_schema, "mlp", "supervised", epochs=1,
                              batch_size=1024, random_state=0, device=device,
                              progress=False)  # fmt: skip
        _sync(device)
        h = enc.history[-1]
        return time.perf_counter() - t, f"{h['records_per_s']:,.0f} records/s (epoch, with reading)"

    def ddp(self, device: str, encoder: str = "mlp") -> tuple[float, str]:
        import torch

        if device.startswith("cuda") and torch.cuda.device_count() < 2:
            return float("nan"), "skipped: nccl needs 2 GPUs for 2 processes"
        import subprocess

        data = self.parquet
        if encoder != "mlp":  # a graph encoder: the graph step's source, as a file
            data = self.folder / "graph-source.parquet"
            if not data.exists():
                n = self.size["graph"]
                source = self.source if len(self.source) <= n else self._subsample(self.source, n)
                source.data.to_parquet(data)
        out = self.folder / f"ddp-{encoder}-{device}"
        cmd = [sys.executable, "-m", "graphxfer.cli", "pretrain", "--data", str(data),
               "--target", "y", "--group", "site", "--encoder", encoder, "--objective",
               "supervised", "--epochs", "1", "--batch-size", "1024", "--nproc-per-node", "2",
               "--master-port", "0", "--device", device.split(":")[0], "--no-progress",
               "--out", str(out)]  # fmt: skip
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-1500:])
        return seconds, done.stdout.strip().splitlines()[-1][:90]

    def dp(self, device: str) -> tuple[float, str]:
        from graphxfer import TransferClassifier
        from privacy import PrivacyConfig

        enc = self.encoders.get((device, "ft-transformer"))
        if enc is None:
            raise RuntimeError("needs the FT-transformer pretraining step")
        config = PrivacyConfig(epsilon=3.0, epochs=3 if self.quick else 10, batch_size=64,
                               learning_rate=1e-2)  # fmt: skip
        t = time.perf_counter()
        clf = TransferClassifier(enc, strategy="lp-ft", privacy=config, random_state=0,
                                 device=device)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(self.train)
        _sync(device)
        seconds = time.perf_counter() - t
        self.dp_model = clf
        return seconds, f"ε = {clf.fine_tune_['epsilon']:.2f}; AUROC {self._auroc(clf):.3f}"

    def explain(self, device: str, method: str) -> tuple[float, str]:
        from graphxfer.explain import explain

        n = self.size["explain"]
        if method == "permutation":
            model = getattr(self, "dp_model", None)
            if model is None:
                raise RuntimeError("needs the DP fine-tuning step")
            label = "transfer model"
        else:
            from benchmarks.bench_explain import OneHotMLP

            model = OneHotMLP(self.train)
            model.module_.to(device)
            encode = model.encode
            model.encode = lambda X: encode(X).to(device)  # type: ignore[method-assign]
            label = "differentiable MLP"
        data = self.test.X.sample(n, replace=True, random_state=0)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ex = explain(model, data, method=method, random_state=0, progress=False)
        _sync(device)
        seconds = time.perf_counter() - t
        return (
            seconds,
            f"{n} records of the {label}; {n / seconds:,.1f} explanations/s; "
            f"shape {ex.values.shape}",
        )

    def graph(self, device: str) -> tuple[float, str]:
        from graphxfer import TransferClassifier, pretrain

        n = self.size["graph"]
        source = self.source if len(self.source) <= n else self._subsample(self.source, n)
        t = time.perf_counter()
        enc = pretrain(source, "graphsage", "supervised", epochs=3, random_state=0,
                       device=device, progress=False)  # fmt: skip
        clf = TransferClassifier(enc, strategy="linear-probe", epochs=10, random_state=0,
                                 device=device).fit(self.train)  # fmt: skip
        _sync(device)
        return (
            time.perf_counter() - t,
            f"{len(source):,} source records; AUROC {self._auroc(clf):.3f}",
        )

    def _auroc(self, clf: Any) -> float:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.test.y, clf.predict_proba(self.test)[:, 1]))

    @staticmethod
    def _subsample(cohort: Any, n: int) -> Any:
        from graphxfer import Cohort

        return Cohort(cohort.data.sample(n, random_state=0), cohort.schema, all_missing="keep")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--devices", help="comma-separated; default: cpu and cuda when present")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    devices = (
        args.devices.split(",")
        if args.devices
        else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        print("CUDA was requested but torch sees no CUDA device", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}; GPU: {gpu}; devices: {', '.join(devices)}; "
          f"{'quick' if args.quick else 'full'} sizes {SIZES[args.quick]}", flush=True)  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="graphxfer-gpu-check-"))
    pipe = Pipeline(args.quick, folder)
    steps: list[tuple[str, Callable[[str], tuple[float, str]]]] = [
        ("pretrain mlp", lambda d: pipe.pretrain(d, "mlp")),
        ("pretrain ft-transformer", lambda d: pipe.pretrain(d, "ft-transformer")),
        ("streaming pretrain (Parquet)", pipe.stream),
        ("DDP pretrain, 2 processes", pipe.ddp),
        ("DDP graphsage pretrain, 2 processes", lambda d: pipe.ddp(d, "graphsage")),
        ("DP fine-tuning (Opacus, lp-ft)", pipe.dp),
        ("explain: permutation", lambda d: pipe.explain(d, "permutation")),
        ("explain: gradient", lambda d: pipe.explain(d, "gradient")),
        ("explain: deep", lambda d: pipe.explain(d, "deep")),
        ("graph encoder: pretrain + attach", pipe.graph),
    ]
    results: dict[str, dict[str, Any]] = {}
    failed = 0
    for device in devices:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        for name, fn in steps:
            try:
                seconds, detail = fn(device)
            except Exception as exc:  # report and go on: one run on a GPU must say everything
                traceback.print_exc()
                seconds, detail = float("nan"), f"FAILED: {type(exc).__name__}: {exc}"[:200]
                failed += 1
            results.setdefault(name, {})[device] = {"seconds": seconds, "detail": detail}
            print(f"[{device}] {name}: {seconds:.2f} s  {detail}", flush=True)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**20
            print(f"[{device}] peak CUDA memory allocated: {peak:,.0f} MiB", flush=True)
    _print_table(results, devices)
    if args.json:
        Path(args.json).write_text(json.dumps({"gpu": gpu, "results": results}, indent=2))
    return 1 if failed else 0


def _print_table(results: dict[str, dict[str, Any]], devices: list[str]) -> None:
    head = ["step", *(f"{d} s" for d in devices)]
    if len(devices) == 2:
        head.append(f"speed-up ({devices[0]} / {devices[1]})")
    print("\n| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for name, per in results.items():
        cells = [name] + [f"{per[d]['seconds']:.2f}" if d in per else "–" for d in devices]
        if len(devices) == 2:
            a, b = (per.get(d, {}).get("seconds", float("nan")) for d in devices)
            cells.append(f"{a / b:.1f}×" if b == b and a == a and b > 0 else "–")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
