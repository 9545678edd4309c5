"""Reading a model file: every size checked first, every file from one consistent version.

A model folder is read relative to one open handle of the folder, so that every file comes
from the same folder even while ``save`` swaps a new one in; a ``.zip`` from one open handle,
each member with a bounded read compared with its declared size.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from graphxfer.exceptions import ModelFileError, ModelFileTamperedError, ModelFileTooLargeError
from graphxfer.modelfile._format import META, WEIGHTS, sha256
from graphxfer.modelfile._integrity import check_signature, parse_meta, resolve_key
from graphxfer.modelfile._limits import DEFAULT_LIMITS, SizeLimits, bounded_read, check_size

__all__ = ["is_model_file", "read_model_file"]


def is_model_file(path: str | os.PathLike[str], *, limits: SizeLimits | None = None) -> bool:
    """Whether ``path`` consists of exactly the files of a graphxfer model file.

    A folder (or ``.zip``) qualifies when it holds only plain files, among them
    ``weights.safetensors`` and a ``meta.json`` naming a format version and a kind, and
    nothing but the extra files that ``meta.json`` lists. Hashes are not checked: a damaged
    model file is still a model file (and may be replaced by ``save``).
    """
    limits = limits or DEFAULT_LIMITS
    path = Path(path)
    try:
        if path.is_symlink():
            return False
        if path.is_dir():
            names: list[str] = []
            with os.scandir(path) as entries:
                for entry in entries:
                    if not entry.is_file(follow_symlinks=False):
                        return False
                    names.append(entry.name)
            if META not in names or (path / META).stat().st_size > limits.json_bytes:
                return False
            meta_bytes = (path / META).read_bytes()
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if META not in names or zf.getinfo(META).file_size > limits.json_bytes:
                    return False
                meta_bytes = bounded_read(zf.open(META), limits.json_bytes)
        else:
            return False
        doc = json.loads(meta_bytes.decode("utf-8"))
    except (OSError, ValueError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return False
    if not isinstance(doc, dict):
        return False
    if not isinstance(doc.get("format_version"), int) or not isinstance(doc.get("kind"), str):
        return False
    extras = doc.get("extra_files") or {}
    if not isinstance(extras, dict):
        return False
    return len(names) == len(set(names)) and set(names) == {META, WEIGHTS, *extras}


class _Replaced(Exception):
    """The folder being read was replaced meanwhile; read it again."""


class _FolderSource:
    """The files of a model folder, read relative to one open handle of the folder, so
    that every file comes from the same folder even while ``save`` swaps a new one in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.use_fd = os.open in os.supports_dir_fd
        self.dir_fd: int | None = None
        if self.use_fd:
            self.dir_fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self.fds: dict[str, int] = {}

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        if self.dir_fd is not None:
            os.close(self.dir_fd)

    def _missing(self, name: str) -> ModelFileError:
        if self.dir_fd is not None:
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            held = os.fstat(self.dir_fd)
            if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                raise _Replaced
        if name in (META, WEIGHTS):
            return ModelFileError(f"{str(self.path)!r} is not a model folder: {name} is missing")
        return ModelFileError(f"{str(self.path)!r}: {name!r} is missing")

    def size(self, name: str) -> int:
        if name not in self.fds:
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            try:
                if self.dir_fd is not None:
                    fd = os.open(name, flags, dir_fd=self.dir_fd)
                else:
                    fd = os.open(self.path / name, flags)
            except FileNotFoundError:
                raise self._missing(name) from None
            except OSError as exc:
                raise ModelFileError(
                    f"{str(self.path)!r}: cannot open {name!r} ({exc}); model folders hold "
                    "plain files only"
                ) from exc
            self.fds[name] = fd
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ModelFileError(f"{str(self.path)!r}: {name!r} is not a plain file")
        return os.fstat(self.fds[name]).st_size

    def read(self, name: str, limit: int) -> bytes:
        size = self.size(name)
        check_size(self.path, name, size, limit)
        fd = self.fds.pop(name)
        data = bounded_read(os.fdopen(fd, "rb"), limit)
        if len(data) != size:
            raise ModelFileTamperedError(
                f"{str(self.path)!r}: {name!r} changed while it was read ({size} bytes "
                f"declared, {len(data)} read)"
            )
        return data


class _ZipSource:
    """The members of a ``.zip`` model file, read from one open handle."""

    def __init__(self, path: Path, limits: SizeLimits) -> None:
        self.path = path
        self.handle = open(path, "rb")  # closed in close()
        try:
            size = os.fstat(self.handle.fileno()).st_size
            if size > limits.total_bytes + limits.json_bytes:
                raise ModelFileTooLargeError(
                    f"{str(path)!r} is {size:,} bytes, more than a model file may hold "
                    f"({limits.total_bytes + limits.json_bytes:,}); refusing to read it"
                )
            self.zf = zipfile.ZipFile(self.handle)
        except BaseException:
            self.handle.close()
            raise
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zf.infolist():
            if info.filename in self.infos:
                raise ModelFileTamperedError(
                    f"{str(path)!r} holds the member {info.filename!r} twice"
                )
            self.infos[info.filename] = info

    def close(self) -> None:
        self.zf.close()
        self.handle.close()

    def size(self, name: str) -> int:
        info = self.infos.get(name)
        if info is None:
            if name in (META, WEIGHTS):
                raise ModelFileError(
                    f"{str(self.path)!r} is not a graphxfer model file: it holds no {name} "
                    "(graphxfer never reads pickles)"
                )
            raise ModelFileError(f"{str(self.path)!r}: extra file {name!r} is missing")
        if info.is_dir():
            raise ModelFileError(f"{str(self.path)!r}: {name!r} is a folder, not a file")
        return info.file_size

    def read(self, name: str, limit: int) -> bytes:
        size = self.size(name)
        check_size(self.path, name, size, limit)  # before decompressing anything
        data = bounded_read(self.zf.open(self.infos[name]), limit)
        if len(data) != size:
            raise ModelFileTamperedError(
                f"{str(self.path)!r}: zip member {name!r} declares {size:,} bytes but holds "
                f"{'more' if len(data) > size else f'{len(data):,}'}; refusing it"
            )
        return data


@contextlib.contextmanager
def _open_source(path: Path, limits: SizeLimits) -> Iterator[_FolderSource | _ZipSource]:
    source: _FolderSource | _ZipSource
    if path.is_dir():
        source = _FolderSource(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        source = _ZipSource(path, limits)
    else:
        raise ModelFileError(
            f"{str(path)!r} is neither a model folder nor a .zip model file "
            "(graphxfer never reads pickles)"
        )
    try:
        yield source
    finally:
        source.close()


def _read_files(path: Path, limits: SizeLimits) -> tuple[bytes, dict[str, Any], dict[str, bytes]]:
    """``(meta.json bytes, parsed meta, {file name: bytes})``, each size checked first."""
    for _ in range(10):
        try:
            with _open_source(path, limits) as source:
                source.size(META)
                source.size(WEIGHTS)
                meta_bytes = source.read(META, limits.json_bytes)
                meta = parse_meta(path, meta_bytes)
                names = [n for n in meta["integrity"]["files"] if n != META]
                sizes = {name: source.size(name) for name in names}
                for name, size in sizes.items():
                    check_size(path, name, size, limits.file_bytes)
                total = len(meta_bytes) + sum(sizes.values())
                if total > limits.total_bytes:
                    raise ModelFileTooLargeError(
                        f"{str(path)!r}: its files hold {total:,} bytes, over the limit of "
                        f"{limits.total_bytes:,}; refusing to read them"
                    )
                return meta_bytes, meta, {n: source.read(n, limits.file_bytes) for n in names}
        except _Replaced:
            continue
    raise ModelFileError(f"{str(path)!r} was replaced repeatedly while it was read; try again")


def read_model_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    key: bytes | str | None = None,
    limits: SizeLimits | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and verify a model file; return ``(tensors, meta)``.

    Extra files (see :func:`~graphxfer.modelfile.write_model_file`) are verified and
    returned as bytes in ``meta["extra_file_bytes"]``.

    Parameters
    ----------
    path : path-like
        A model folder or ``.zip``.
    kind : str, optional
        Refuse a file holding another kind (``"encoder"``, ``"model"``).
    key : bytes or str, optional
        Require a signature made with this key. When None, the key in
        ``$GRAPHXFER_MODEL_KEY`` is required if set; otherwise a signature is not checked
        (the hashes still are).
    limits : SizeLimits, optional
        Largest file sizes accepted (default :data:`DEFAULT_LIMITS`).

    Raises
    ------
    ModelFileTamperedError
        ``meta.json`` is not as written, or a file does not match its recorded sha256.
    ModelFileSignatureError
        A key is given and the file is unsigned or signed with another key.
    ModelFileTooLargeError
        A file exceeds ``limits`` (checked before reading or decompressing it).
    ModelFileError
        The file is missing or incomplete, its format version is unknown, a tensor holds NaN
        or inf, or it holds another kind.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    limits = limits or DEFAULT_LIMITS
    verify_key = resolve_key(key)
    path = Path(path)
    if not os.path.lexists(path):
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        _, meta, files = _read_files(path, limits)
    except zipfile.BadZipFile as exc:  # also a member whose CRC-32 does not match its bytes
        raise ModelFileTamperedError(f"cannot read model file {str(path)!r}: {exc}") from exc
    except (OSError, RuntimeError, NotImplementedError) as exc:  # permissions, encryption...
        raise ModelFileError(f"cannot read model file {str(path)!r}: {exc}") from exc
    if verify_key is not None:
        check_signature(path, meta, verify_key)
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(
            f"{str(path)!r} holds a {meta.get('kind')!r}, not a {kind!r}; "
            f"use load_{meta.get('kind')} instead"
        )
    hashes = meta["integrity"]["files"]
    for name, data in files.items():
        if sha256(data) != hashes[name]:
            raise ModelFileTamperedError(
                f"{str(path)!r}: {name} does not match the sha256 recorded in meta.json; the "
                "file was modified or corrupted, refusing to load it"
            )
    try:
        tensors = load(files.pop(WEIGHTS))
    except (SafetensorError, ValueError, OSError) as exc:
        raise ModelFileError(f"{str(path)!r}: weights are not valid safetensors ({exc})") from exc
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(np.isfinite(t.float().numpy()).all()):
            raise ModelFileError(f"{str(path)!r}: tensor {name!r} holds NaN or inf")
    meta["extra_file_bytes"] = files
    return dict(tensors), meta
