"""Randomness of private runs: the generators of Poisson sampling and of the Gaussian noise.

Poisson sampling and noise never derive from ``random_state``. With ``secure_mode=True`` they
come from ``torchcsprng`` (Opacus' secure mode); otherwise from ``torch.Generator`` objects
seeded from the operating system's CSPRNG whose seeds are never stored
(:func:`~privacy._utils.secure_generator`). A stored seed would let anyone holding the
released weights replay the noise and tell, with certainty, which records were trained on.
"""

from __future__ import annotations

from typing import Any

import torch

from privacy._utils import secure_generator
from privacy.config import PrivacyConfig
from privacy.exceptions import PrivacyConfigError

__all__ = ["csprng_generator", "gaussian_noise", "private_generators"]


def csprng_generator() -> Any:
    """A ``torchcsprng`` generator reading ``/dev/urandom`` (secure mode)."""
    try:
        import torchcsprng as csprng
    except ImportError as exc:
        raise PrivacyConfigError(
            "secure_mode=True needs the torchcsprng package for cryptographically secure "
            "sampling and noise; install it, or pass secure_mode=False (sampling and noise "
            "then come from torch generators seeded from the operating system's CSPRNG, "
            "without torchcsprng's hardening)."
        ) from exc
    return csprng.create_random_device_generator("/dev/urandom")


def private_generators(config: PrivacyConfig, device: torch.device) -> tuple[Any, Any]:
    """Generators of Poisson sampling (CPU) and of the noise (on ``device``) of one phase.

    Never derived from ``random_state``: see the module docstring.
    """
    if config.secure_mode:
        gen = csprng_generator()
        return gen, gen
    return secure_generator("cpu"), secure_generator(device)


def gaussian_noise(
    std: float, like: torch.Tensor, generator: Any, *, hardened: bool
) -> torch.Tensor:
    """Noise ``N(0, std^2)`` shaped like ``like``, drawn from ``generator`` on its device.

    ``hardened`` sums four draws of standard deviation ``std`` and halves the sum (the same
    distribution), which defeats attacks on the floating-point representation of a single
    Gaussian draw (Holohan et al., 2021); Opacus' secure mode does the same.
    """
    device = getattr(generator, "device", torch.device("cpu"))
    if std == 0:
        return torch.zeros_like(like)

    def draw() -> torch.Tensor:
        return torch.normal(
            0.0, std, size=tuple(like.shape), generator=generator, device=device, dtype=like.dtype
        )

    noise = (draw() + draw() + draw() + draw()) / 2 if hardened else draw()
    return noise.to(like.device)
