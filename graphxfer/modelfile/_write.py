"""Writing a model file atomically: a temporary folder or file is completed, then swapped in.

An interrupted save leaves the previous file intact and a reader always finds a complete model
file. Only an existing graphxfer model file (or an empty folder) is replaced unless
``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graphxfer._io import atomic_replace_dir, default_mode, make_parent
from graphxfer.exceptions import ModelFileError, ModelFileExistsError
from graphxfer.modelfile._format import (
    EXTRA_NAME,
    FORMAT_VERSION,
    META,
    RESERVED,
    WEIGHTS,
    package_versions,
    sha256,
)
from graphxfer.modelfile._integrity import seal_meta
from graphxfer.modelfile._read import is_model_file

__all__ = ["write_model_file"]


def _to_bytes(tensors: dict[str, Any]) -> bytes:
    import torch
    from safetensors.torch import save

    clean: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        t = torch.as_tensor(value).detach().cpu().contiguous()
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"tensor {name!r} holds NaN or inf; refusing to save it")
        clean[name] = t
    return save(clean)


def write_model_file(
    path: str | os.PathLike[str],
    tensors: dict[str, Any],
    meta: dict[str, Any],
    *,
    kind: str,
    extra_files: dict[str, bytes] | None = None,
    key: bytes | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``tensors`` and ``meta`` to ``path`` (a folder, or a file ending in ``.zip``).

    Parameters
    ----------
    path : path-like
        Destination. An existing graphxfer model file (or an empty folder) at ``path`` is
        replaced atomically; anything else is refused unless ``overwrite=True``.
    tensors : dict of str to tensor or array
        Weights (finite floats, ints or bools).
    meta : dict
        JSON-serialisable metadata (schema, featurizer state, configs, ledger...). The keys
        ``format_version``, ``kind``, ``weights_sha256``, ``extra_files`` and ``integrity``
        are reserved.
    kind : str
        What the file holds (``"encoder"`` or ``"model"``); checked when reading.
    extra_files : dict of str to bytes, optional
        Further files in non-executable formats (e.g. an XGBoost model as UBJSON), stored
        beside the weights with their sha256 recorded in ``meta.json``.
    key : bytes or str, optional
        Sign the file with HMAC-SHA256 under this key (at least 16 bytes). When None, the
        key in ``$GRAPHXFER_MODEL_KEY`` is used if set; otherwise the file is unsigned.
    overwrite : bool, default=False
        Replace whatever is at ``path`` (a folder of other files, a non-model ``.zip``). A
        file where a folder is to be written, or a folder or a symbolic link at ``path``
        of a ``.zip``, is refused even so.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ModelFileExistsError
        ``path`` holds something other than a graphxfer model file.
    ModelFileError
        Non-finite weights, metadata that is not JSON, reserved keys or invalid file names.
    """
    path = Path(path)
    extra_files = dict(extra_files or {})
    for name, data in extra_files.items():
        if not isinstance(name, str) or name in (WEIGHTS, META) or not EXTRA_NAME.match(name):
            raise ModelFileError(
                f"invalid extra file name {name!r}: use letters, digits, '.', '_' and '-', "
                f"not {WEIGHTS!r} or {META!r}"
            )
        if not isinstance(data, bytes):
            raise ModelFileError(f"extra file {name!r} must be bytes, got {type(data).__name__}")
    clash = sorted(set(meta) & set(RESERVED))
    if clash:
        raise ModelFileError(f"model metadata may not set the reserved keys {clash}")
    weights = _to_bytes(tensors)
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_versions": package_versions(),
        "weights_sha256": sha256(weights),
        "extra_files": {n: sha256(b) for n, b in extra_files.items()},
        **meta,
    }
    files = {WEIGHTS: weights, **extra_files}
    meta_text = seal_meta(doc, files, key=key).decode("utf-8")
    make_parent(path)
    _check_destination(path, overwrite=overwrite)
    if path.suffix == ".zip":
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr(WEIGHTS, weights)
                    zf.writestr(META, meta_text)
                    for name, data in extra_files.items():
                        zf.writestr(name, data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, default_mode())
            _check_destination(path, overwrite=overwrite)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync(path.parent)
        return path
    build = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        (build / WEIGHTS).write_bytes(weights)
        (build / META).write_text(meta_text, encoding="utf-8", newline="\n")
        for name, data in extra_files.items():
            (build / name).write_bytes(data)
        for name in (WEIGHTS, META, *extra_files):
            _fsync(build / name)
        os.chmod(build, default_mode(directory=True))
        _fsync(build)
        _check_destination(path, overwrite=overwrite)
        atomic_replace_dir(
            build,
            path,
            # what another process may have put at path since the check is checked again
            check_old=lambda old: _check_destination(old, overwrite=overwrite, shown=path),
        )
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _fsync(path.parent)
    return path


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or, where the system allows, a folder) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on some systems
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_destination(path: Path, *, overwrite: bool, shown: Path | None = None) -> None:
    """Refuse to replace anything but a graphxfer model file, unless ``overwrite``.

    ``shown`` is the destination named in the error when ``path`` is where its old content
    was moved aside (see :func:`~graphxfer._io.atomic_replace_dir`)."""
    if not os.path.lexists(path):
        return
    where = repr(str(shown if shown is not None else path))
    if path.is_symlink():
        raise ModelFileExistsError(
            f"{where} is a symbolic link; save to the folder or file it points to, or remove it"
        )
    if (shown if shown is not None else path).suffix == ".zip":
        if not path.is_file():
            raise ModelFileExistsError(
                f"{where} exists and is not a file; a .zip model file cannot replace it "
                "(remove it yourself, or choose another path)"
            )
    elif not path.is_dir():
        raise ModelFileExistsError(
            f"{where} exists and is a file, not a folder; a model folder cannot replace it "
            "(remove it yourself, or add .zip to write a zip model file)"
        )
    else:
        with os.scandir(path) as entries:
            if next(entries, None) is None:
                return  # an empty folder holds nothing to lose
    if overwrite or is_model_file(path):
        return
    what = "folder" if path.is_dir() else "file"
    raise ModelFileExistsError(
        f"{where} exists and is not a graphxfer model file; saving would delete this {what}. "
        "Choose another path, or pass overwrite=True to replace it"
    )
