"""Atomic file writes: a reader never sees a half-written file, and an interrupted write
leaves the previous file intact."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_replace_dir", "atomic_write_bytes", "atomic_write_text", "default_mode"]


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open`` / ``mkdir`` would give under the current umask
    (temporary files and folders are created owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_replace_dir(build: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Move the finished folder ``build`` to ``path``, replacing an old folder atomically.

    The old folder is first renamed aside, the new one renamed in, and only then is the old
    one deleted, so at every instant ``path`` holds either the complete old or the complete
    new content.
    """
    build, path = Path(build), Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{str(path)!r} exists and is not a folder")
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
    try:
        os.replace(build, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
