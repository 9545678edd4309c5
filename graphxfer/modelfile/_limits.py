"""Size limits of a model file, checked before anything is read or decompressed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from graphxfer.exceptions import ModelFileError, ModelFileTooLargeError

__all__ = ["DEFAULT_LIMITS", "SizeLimits", "bounded_read", "check_size"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class SizeLimits:
    """The largest model file that is read; each size is checked before reading.

    Parameters
    ----------
    file_bytes : int, default=4 GiB
        Largest ``weights.safetensors`` or extra file (uncompressed, for zip members).
    json_bytes : int, default=64 MiB
        Largest ``meta.json``.
    total_bytes : int, default=8 GiB
        Largest sum over all files of a model.
    """

    file_bytes: int = 4 * 1024**3
    json_bytes: int = 64 * 1024**2
    total_bytes: int = 8 * 1024**3

    def __post_init__(self) -> None:
        for name in ("file_bytes", "json_bytes", "total_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelFileError(f"SizeLimits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = SizeLimits()


def check_size(path: Path, name: str, size: int, limit: int) -> None:
    """Refuse the file ``name`` of the model file ``path`` when ``size`` exceeds ``limit``."""
    if size > limit:
        raise ModelFileTooLargeError(
            f"{str(path)!r}: {name!r} is {size:,} bytes, over the limit of {limit:,} bytes; "
            "refusing to read it (raise graphxfer.modelfile.SizeLimits if it is genuine)"
        )


def bounded_read(handle: IO[bytes], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``handle`` (one more than allowed reveals excess)."""
    with handle:
        parts: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = handle.read(min(left, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)
