"""Small helpers shared by the graph modules: seeds, checks, parameter initialisation (devices
come from :func:`tabular.loop.resolve_device`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from graphxfer.exceptions import GraphError

__all__ = [
    "as_float_tensor",
    "check_choice",
    "check_positive_int",
    "init_parameters",
    "make_generator",
    "seed_from",
    "state_to_cpu",
]


def seed_from(random_state: int | np.random.Generator | None) -> int:
    """A 63-bit integer seed drawn from ``random_state`` (fresh entropy when ``None``)."""
    if isinstance(random_state, (bool, np.bool_)):
        raise GraphError(
            f"random_state must be an int, a numpy Generator or None, got {random_state!r}"
        )
    rng = np.random.default_rng(random_state)
    return int(rng.integers(0, 2**63 - 1))


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (the global generator is left alone)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    return gen


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter of ``module`` from ``generator``, in a fixed order.

    Layer norms get weight 1 and bias 0; every other parameter with two or more dimensions is
    drawn from the Glorot uniform distribution (PyG's default for message-passing layers);
    remaining one-dimensional parameters (biases, GIN's epsilon, mask tokens) start at 0. Using
    an explicit generator makes pretraining reproducible without seeding torch's global random
    number generator.
    """
    with torch.no_grad():
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                if isinstance(sub, nn.LayerNorm):
                    param.fill_(1.0 if name == "weight" else 0.0)
                elif param.dim() >= 2:
                    fan_in, fan_out = param.shape[-1], param.shape[-2]
                    bound = float(np.sqrt(6.0 / (fan_in + fan_out)))
                    values = torch.empty(param.shape, dtype=param.dtype)
                    values.uniform_(-bound, bound, generator=generator)
                    param.copy_(values)
                else:
                    param.zero_()


def state_to_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``module.state_dict()``."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def as_float_tensor(values: Any, *, name: str) -> torch.Tensor:
    """``values`` (array or tensor) as a 2-D float32 CPU tensor with finite entries."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach().to("cpu", torch.float32)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise GraphError(f"{name} must be a numeric 2-D array: {exc}") from exc
    if tensor.dim() != 2:
        raise GraphError(
            f"{name} must be 2-D (records x features), got shape {tuple(tensor.shape)}"
        )
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=1)).flatten()[:5].tolist()
        raise GraphError(
            f"{name} holds NaN or infinite values (rows {rows}, {int(bad.sum())} entries); "
            "featurize the records first (the featurizer imputes 0 and adds missing indicators) "
            "or impute them yourself"
        )
    return tensor.contiguous()


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; a :class:`GraphError` otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise GraphError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise GraphError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``; a :class:`GraphError` otherwise."""
    if value not in allowed:
        raise GraphError(f"{name}={value!r} is not one of {allowed}")
    return str(value)
