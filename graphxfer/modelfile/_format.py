"""The layout of a model file: its file names, format version, reserved keys and JSON form."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from graphxfer.exceptions import ModelFileError

__all__ = [
    "EXTRA_NAME",
    "FORMAT_VERSION",
    "HEX64",
    "KEY_ENV",
    "META",
    "MIN_KEY_BYTES",
    "RECORD_KEYS",
    "RESERVED",
    "SIGNATURE_PREFIX",
    "WEIGHTS",
    "canonical",
    "package_versions",
    "sha256",
    "version_error",
]

FORMAT_VERSION = 2
"""Version of the model-file layout; 2 added the integrity record."""
WEIGHTS = "weights.safetensors"
META = "meta.json"
KEY_ENV = "GRAPHXFER_MODEL_KEY"
"""Environment variable holding the signing key used when ``key=None``."""
MIN_KEY_BYTES = 16

RESERVED = ("format_version", "kind", "weights_sha256", "extra_files", "integrity")
"""Keys of ``meta.json`` that the writer sets; metadata may not set them."""
EXTRA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
"""Names allowed for extra files."""
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
SIGNATURE_PREFIX = "hmac-sha256:"
RECORD_KEYS = ("algorithm", "files", "signature", "digest")
"""The entries of an integrity record, in their order."""


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


def canonical(doc: dict[str, Any]) -> bytes:
    """The exact bytes graphxfer writes for ``doc`` as ``meta.json``."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    """The hexadecimal sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def version_error(where: str, version: Any) -> ModelFileError:
    """The error for a model file of another format version than :data:`FORMAT_VERSION`."""
    hint = (
        " (version 1 files, written before model files carried an integrity record, are not "
        "read: re-create the encoder or model and save it again)"
        if version == 1
        else ". Re-save it with a matching graphxfer version"
    )
    return ModelFileError(
        f"{where} has model-file format version {version!r}; this graphxfer reads version "
        f"{FORMAT_VERSION}{hint}"
    )
