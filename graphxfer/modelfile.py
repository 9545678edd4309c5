"""Model files: ``weights.safetensors`` + ``meta.json`` in a folder or a ``.zip``. Never a pickle.

Writing is atomic (a temporary folder or file is completed, then renamed over the old one), so
an interrupted save leaves the previous file intact. Reading verifies the format version, the
sha256 of the weights, and that every tensor is finite, and never executes code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from graphxfer._io import atomic_replace_dir, default_mode
from graphxfer.exceptions import ModelFileError

__all__ = ["FORMAT_VERSION", "package_versions", "read_model_file", "write_model_file"]

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "meta.json"
_MAX_META_BYTES = 64 * 1024 * 1024


def package_versions() -> dict[str, str]:
    """Versions of graphxfer and the libraries whose numerics a model file depends on."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in (
        "graphxfer",
        "torch",
        "torch-geometric",
        "opacus",
        "numpy",
        "pandas",
        "scikit-learn",
        "xgboost",
        "xgboost-cpu",
        "pytorch-tabnet",
        "shap",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


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
) -> Path:
    """Write ``tensors`` and ``meta`` to ``path`` (a folder, or a file ending in ``.zip``).

    Parameters
    ----------
    path : path-like
        Destination. An existing model at ``path`` is replaced atomically.
    tensors : dict of str to tensor or array
        Weights (finite floats, ints or bools).
    meta : dict
        JSON-serialisable metadata (schema, featurizer state, configs, ledger...).
    kind : str
        What the file holds (``"encoder"`` or ``"model"``); checked when reading.
    extra_files : dict of str to bytes, optional
        Further files in non-executable formats (e.g. an XGBoost model as UBJSON), stored
        beside the weights with their sha256 recorded in ``meta.json``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    weights = _to_bytes(tensors)
    extra_files = dict(extra_files or {})
    for name in extra_files:
        if name in (WEIGHTS, META) or "/" in name or "\\" in name or name.startswith("."):
            raise ModelFileError(f"invalid extra file name {name!r}")
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_versions": package_versions(),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "extra_files": {n: hashlib.sha256(b).hexdigest() for n, b in extra_files.items()},
        **meta,
    }
    try:
        meta_text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model metadata is not JSON-serialisable: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
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
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
    build = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        (build / WEIGHTS).write_bytes(weights)
        (build / META).write_text(meta_text + "\n", encoding="utf-8")
        for name, data in extra_files.items():
            (build / name).write_bytes(data)
        os.chmod(build, default_mode(directory=True))
        atomic_replace_dir(build, path)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return path


def read_model_file(
    path: str | os.PathLike[str], *, kind: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and verify a model file; return ``(tensors, meta)``.

    Extra files (see :func:`write_model_file`) are verified and returned as bytes in
    ``meta["extra_file_bytes"]``.

    Raises
    ------
    ModelFileError
        The file is missing or incomplete, its format version is unknown, the weights do not
        match their recorded sha256, a tensor holds NaN or inf, or it holds another kind.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        if path.is_dir():
            for name in (WEIGHTS, META):
                if not (path / name).is_file():
                    raise ModelFileError(f"{str(path)!r} is not a model folder: {name} is missing")
            weights = (path / WEIGHTS).read_bytes()
            meta_bytes = (path / META).read_bytes()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                for name in (WEIGHTS, META):
                    if name not in names:
                        raise ModelFileError(
                            f"{str(path)!r} is not a graphxfer model file: it holds no {name} "
                            "(graphxfer never reads pickles)"
                        )
                if zf.getinfo(META).file_size > _MAX_META_BYTES:
                    raise ModelFileError(f"{str(path)!r}: meta.json is implausibly large")
                weights = zf.read(WEIGHTS)
                meta_bytes = zf.read(META)
        else:
            raise ModelFileError(
                f"{str(path)!r} is neither a model folder nor a .zip model file "
                "(graphxfer never reads pickles)"
            )
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"cannot read model file {str(path)!r}: {exc}") from exc
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{str(path)!r}: meta.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{str(path)!r}: meta.json must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} has model-file format version {version!r}; this graphxfer reads "
            f"version {FORMAT_VERSION}. Re-save it with a matching graphxfer version"
        )
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(
            f"{str(path)!r} holds a {meta.get('kind')!r}, not a {kind!r}; "
            f"use load_{meta.get('kind')} instead"
        )
    digest = hashlib.sha256(weights).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise ModelFileError(
            f"{str(path)!r}: the weights do not match the sha256 recorded in meta.json; "
            "the file was modified or corrupted, refusing to load it"
        )
    try:
        tensors = load(weights)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ModelFileError(f"{str(path)!r}: weights are not valid safetensors ({exc})") from exc
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(np.isfinite(t.float().numpy()).all()):
            raise ModelFileError(f"{str(path)!r}: tensor {name!r} holds NaN or inf")
    extras: dict[str, bytes] = {}
    declared = meta.get("extra_files") or {}
    if not isinstance(declared, dict):
        raise ModelFileError(f"{str(path)!r}: meta.json 'extra_files' must be an object")
    for name, digest in declared.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelFileError(f"{str(path)!r}: invalid extra file name {name!r}")
        try:
            if path.is_dir():
                data = (path / name).read_bytes()
            else:
                with zipfile.ZipFile(path) as zf:
                    data = zf.read(name)
        except (OSError, KeyError) as exc:
            raise ModelFileError(f"{str(path)!r}: extra file {name!r} is missing") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise ModelFileError(
                f"{str(path)!r}: {name!r} does not match the sha256 recorded in meta.json"
            )
        extras[name] = data
    meta["extra_file_bytes"] = extras
    return dict(tensors), meta
