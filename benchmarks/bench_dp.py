"""Differentially private fine-tuning: time over non-private time per strategy, and our DP
fine-tuning against a hand-written Opacus loop on the same model.

A pretrained FT-transformer (the demo's encoder) is fine-tuned on a synthetic target cohort
with :func:`privacy.fine_tune`, once with a :class:`privacy.PrivacyConfig` and once with the
matching non-private :class:`privacy.TrainConfig` (same epochs, batch size, learning rate and
optimizer). Each run starts from a fresh copy of the same module.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

from benchmarks._common import Goal, Section, emit, run_child, set_threads, standalone, table

GOAL_LINEAR_PROBE = 1.5
N_SOURCE = 20_000


def _setup(quick: bool) -> tuple[Any, Any, Any, Any]:
    import torch

    from graphxfer import pretrain
    from graphxfer.datasets import make_multisite

    n_target = 1000 if quick else 3000
    cohort = make_multisite(n_sites=2, n_per_site=[N_SOURCE, n_target], random_state=4)
    source, target = cohort.select_groups("site0"), cohort.select_groups("site1")
    enc = pretrain(
        source,
        "ft-transformer",
        "supervised",
        epochs=2 if quick else 5,
        batch_size=512,
        random_state=0,
        device="cpu",
        progress=False,
    )
    module, make_inputs, _ = enc.fine_tunable(target.schema.features, random_state=0)
    inputs = make_inputs(target.X)
    y = torch.as_tensor(target.y, dtype=torch.float32)
    return module, inputs, y, target


def _config(quick: bool) -> Any:
    from privacy import PrivacyConfig

    return PrivacyConfig(epsilon=3.0, epochs=3 if quick else 10, batch_size=64, learning_rate=1e-2)


def child(quick: bool) -> None:
    set_threads()
    import torch

    import privacy as dp
    from privacy.accounting import forget_calibrations

    module, inputs, y, _ = _setup(quick)
    config = _config(quick)
    # warm-up (first-call costs of torch and Opacus), not measured
    warm: list[dict[str, Any]] = [
        {"train_config": dp.TrainConfig(epochs=1)},
        {"config": _config(True)},
    ]
    for options in warm:
        dp.fine_tune(copy.deepcopy(module), inputs, y, strategy="full", random_state=0,
                     device="cpu", progress=False, **options)  # fmt: skip
    rows = []
    for name in dp.available_strategies():
        timings: dict[str, Any] = {"strategy": name}
        for private in (False, True):
            model = copy.deepcopy(module)
            kwargs: dict[str, Any] = (
                {"config": config} if private else {"train_config": dp.TrainConfig.matching(config)}
            )
            forget_calibrations()  # every timed call pays for its own accounting
            with torch.random.fork_rng():
                torch.manual_seed(0)
                t = time.perf_counter()
                result = dp.fine_tune(
                    model, inputs, y, strategy=name, random_state=0, device="cpu",
                    progress=False, **kwargs,
                )  # fmt: skip
                wall = time.perf_counter() - t
            key = "dp" if private else "plain"
            timings[f"{key}_s"] = wall
            timings[f"{key}_train_s"] = sum(p.seconds for p in result.phases)
            if private:
                timings["epsilon"] = result.epsilon
                timings["steps"] = sum(p.steps for p in result.phases)
        rows.append(timings)

    # hand-written Opacus on the same model, strategy "full": same noise, rate, steps, clipping
    model = copy.deepcopy(module)
    forget_calibrations()
    t = time.perf_counter()
    ours = dp.fine_tune(
        model, inputs, y, strategy="full", config=config, random_state=0, device="cpu",
        progress=False,
    )  # fmt: skip
    ours_s = time.perf_counter() - t
    phase = ours.phases[0]
    hand_s, hand_eps = _hand_written_opacus(module, inputs, y, config, phase)
    emit(
        {
            "rows": rows,
            "n_target": len(y),
            "n_source": N_SOURCE,
            "config": config.to_dict(),
            "opacus": {
                "ours_s": ours_s,
                "ours_train_s": phase.seconds,
                "ours_epsilon": ours.epsilon,
                "hand_s": hand_s,
                "hand_epsilon": hand_eps,
                "steps": phase.steps,
                "noise_multiplier": phase.noise_multiplier,
                "sample_rate": phase.sample_rate,
            },
        }
    )


def _hand_written_opacus(
    module: Any, inputs: Any, y: Any, config: Any, phase: Any
) -> tuple[float, float]:
    """The textbook Opacus loop (``make_private_with_epsilon``, Poisson sampling, Adam)."""
    import torch
    import torch.nn.functional as F
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    model = copy.deepcopy(module).train()
    t = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loader = DataLoader(TensorDataset(*inputs, y), batch_size=config.batch_size, shuffle=True)
    engine = PrivacyEngine(accountant=config.accountant)
    model, optimizer, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=config.epsilon,
        target_delta=phase.delta,
        epochs=config.epochs,
        max_grad_norm=config.max_grad_norm,
    )
    for _ in range(config.epochs):
        for *xs, target in loader:
            if len(target) == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            logits = model(*xs).reshape(-1)
            F.binary_cross_entropy_with_logits(logits, target).backward()
            optimizer.step()
    seconds = time.perf_counter() - t
    return seconds, float(engine.get_epsilon(phase.delta))


def run(quick: bool) -> Section:
    r = run_child("benchmarks.bench_dp", ["--child"] + (["--quick"] if quick else []))
    rows = []
    ratios: dict[str, float] = {}
    for row in r["rows"]:
        ratio = row["dp_s"] / row["plain_s"]
        ratios[row["strategy"]] = ratio
        rows.append(
            {
                "strategy": row["strategy"],
                "non-private s": row["plain_s"],
                "DP s": row["dp_s"],
                "DP / non-private": ratio,
                "DP training only s": row["dp_train_s"],
                "training only ratio": row["dp_train_s"] / row["plain_train_s"],
                "ε": row["epsilon"],
                "DP steps": row["steps"],
            }
        )
    o = r["opacus"]
    opacus_rows = [
        {
            "implementation": "privacy.fine_tune (strategy full)",
            "seconds": o["ours_s"],
            "ε": o["ours_epsilon"],
            "relative": 1.0,
        },
        {
            "implementation": "hand-written Opacus loop",
            "seconds": o["hand_s"],
            "ε": o["hand_epsilon"],
            "relative": o["hand_s"] / o["ours_s"],
        },
    ]
    section = Section(
        "dp",
        "Differentially private fine-tuning",
        tables=[table(rows), table(opacus_rows)],
        command="python -m benchmarks.bench_dp" + (" --quick" if quick else ""),
    )
    probe = next(row for row in r["rows"] if row["strategy"] == "linear-probe")
    section.goals = [
        Goal(
            "DP linear probe / non-private (whole call)",
            GOAL_LINEAR_PROBE,
            ratios.get("linear-probe"),
            "×",
            True,
        ),
        Goal(
            "DP linear probe / non-private (training phases only)",
            GOAL_LINEAR_PROBE,
            probe["dp_train_s"] / probe["plain_train_s"],
            "×",
            True,
        ),
    ]
    c = r["config"]
    section.notes.append(
        f"Target: {r['n_target']:,} synthetic records; FT-transformer pretrained on "
        f"{r['n_source']:,} source records. DP: ε = {c['epsilon']:g} ({c['accountant']} "
        f"accountant), {c['epochs']} epochs, batch {c['batch_size']}, Poisson sampling, "
        f"clipping {c['max_grad_norm']:g}, Opacus `{c['grad_sample_mode']}` per-sample "
        "gradients; the non-private runs use the same epochs, batch size, learning rate and "
        "optimizer. *DP s* is the whole call: noise calibration (never taken from the memo of "
        "earlier calls), Opacus set-up, training and "
        "the ledger; *training only* compares the phases' own training time."
    )
    probe_fixed = probe["dp_s"] - probe["dp_train_s"]
    whole, training = section.goals
    if not whole.met:
        section.notes.append(
            f"Why the whole-call ratio of the linear probe misses the goal: {probe_fixed:.1f} s "
            "of the DP call is outside the training phases (noise calibration by the "
            "accountant, Opacus wrapping), a fixed cost per call that does not grow with the "
            "data, so it weighs less as the target or the number of epochs grows."
            + (
                ""
                if training.met
                else " Inside the training phases, Opacus's per-sample gradient hooks and "
                "Poisson-sampled batches of varying size add the rest."
            )
        )
    section.notes.append(
        f"Hand-written loop: `PrivacyEngine.make_private_with_epsilon` on the same module with "
        f"the same accountant, ε, δ, epochs, batch size, clipping bound and Adam learning rate "
        f"(our run: {o['steps']} steps, noise multiplier {o['noise_multiplier']:.3f}, sample "
        f"rate {o['sample_rate']:.4f}); its time includes its own noise calibration."
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.quick)
    else:
        standalone(run, rest + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    main()
