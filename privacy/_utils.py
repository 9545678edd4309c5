"""Small helpers shared by the training code: random states, generators and devices."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from privacy.exceptions import PrivacyConfigError

if TYPE_CHECKING:
    import torch

#: What ``random_state`` parameters accept (as in scikit-learn).
RandomState: TypeAlias = "int | np.random.Generator | None"

__all__ = [
    "RandomState",
    "atomic_write_text",
    "check_random_state",
    "resolve_device",
    "secure_generator",
    "spawn_seeds",
    "torch_generator",
]


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator` (never the global one).

    ``None`` gives fresh entropy, an integer a reproducible stream; a generator is used as is.
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise PrivacyConfigError(
            f"random_state must be None, an int or a numpy.random.Generator, got "
            f"{type(random_state).__name__}; pass e.g. random_state=0."
        )
    if random_state < 0:
        raise PrivacyConfigError(f"random_state must be >= 0, got {random_state}.")
    return np.random.default_rng(int(random_state))


def spawn_seeds(rng: np.random.Generator, k: int) -> list[int]:
    """``k`` independent 63-bit seeds drawn from ``rng``."""
    return [int(s) for s in rng.integers(0, 2**63 - 1, size=k, dtype=np.int64)]


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed`` (global RNG untouched)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def secure_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded from the operating system's CSPRNG.

    The 64-bit seed comes from :mod:`secrets` (``os.urandom``) and is neither kept, returned
    nor logged, so the draws cannot be replayed from anything a run stores or releases (unlike
    :func:`torch_generator`, whose seed derives from a ``random_state``). The generator itself
    is torch's (Mersenne Twister on the CPU, Philox on CUDA), not a cryptographic one: use
    ``PrivacyConfig(secure_mode=True)`` with ``torchcsprng`` installed for that.
    """
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(secrets.randbits(64))
    return gen


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked and returned."""
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PrivacyConfigError(
            f"device={device!r} is not a valid torch device; pass 'auto', 'cpu' or 'cuda'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PrivacyConfigError(
            f"device={device!r} was requested but CUDA is not available here; pass "
            "device='auto' or device='cpu'."
        )
    return dev


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder, then
    rename it over ``path``: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
