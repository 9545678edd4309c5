"""Model files: ``weights.safetensors`` + ``meta.json`` in a folder or a ``.zip``. Never a pickle.

Integrity
    ``meta.json`` ends with an ``integrity`` record: the sha256 of the rest of ``meta.json``
    and of every other file, a digest over those hashes, and optionally an HMAC-SHA256
    signature made with a user key. Reading checks that ``meta.json`` is byte for byte the
    canonical JSON graphxfer writes and that every hash matches, so any edit of any file
    (a ledger's epsilon, the strategy, the schema, one bit of the weights) is refused with
    :class:`~graphxfer.exceptions.ModelFileTamperedError`. A plain hash detects corruption and
    edits but not a forger who also rewrites the hashes; a signature checked with the key
    (``key=`` or the ``GRAPHXFER_MODEL_KEY`` environment variable) detects that too.

Size limits
    Every file's size is checked against :class:`SizeLimits` before it is read or
    decompressed, and zip members are read with a bounded read and compared with their
    declared size.

Saving
    Writing is atomic (a temporary folder or file is completed, then swapped in), so an
    interrupted save leaves the previous file intact and a reader always finds a complete
    model file. ``save`` replaces only an existing graphxfer model file (or an empty folder)
    unless ``overwrite=True``.

Reading verifies the format version, the integrity record, the signature when a key is
given, and that every tensor is finite, and never executes code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from graphxfer._io import atomic_replace_dir, default_mode
from graphxfer.exceptions import (
    ModelFileError,
    ModelFileExistsError,
    ModelFileSignatureError,
    ModelFileTamperedError,
    ModelFileTooLargeError,
)

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT_VERSION",
    "KEY_ENV",
    "SizeLimits",
    "is_model_file",
    "package_versions",
    "read_model_file",
    "write_model_file",
]

FORMAT_VERSION = 2
"""Version of the model-file layout; 2 added the integrity record."""
WEIGHTS = "weights.safetensors"
META = "meta.json"
KEY_ENV = "GRAPHXFER_MODEL_KEY"
"""Environment variable holding the signing key used when ``key=None``."""
MIN_KEY_BYTES = 16

_RESERVED = ("format_version", "kind", "weights_sha256", "extra_files", "integrity")
_EXTRA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_SIGNATURE_PREFIX = "hmac-sha256:"
_RECORD_KEYS = ("algorithm", "files", "signature", "digest")
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


# ------------------------------------------------------------------ integrity record
def resolve_key(key: bytes | str | None) -> bytes | None:
    """The signing key as bytes: ``key``, else ``$GRAPHXFER_MODEL_KEY``, else None.

    A ``str`` is encoded as UTF-8. Keys shorter than 16 bytes are refused.
    """
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
        source = f"${KEY_ENV}"
    else:
        source = "key"
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise ModelFileError(f"{source} must be bytes or str, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ModelFileError(
            f"{source} is {len(key)} bytes long; use at least {MIN_KEY_BYTES} random bytes "
            "(e.g. secrets.token_hex(32))"
        )
    return bytes(key)


def _canonical(doc: dict[str, Any]) -> bytes:
    """The exact bytes graphxfer writes for ``doc`` as ``meta.json``."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(hashes: dict[str, str]) -> bytes:
    """What is signed: the hashes of every file, in a canonical serialisation."""
    body = json.dumps(hashes, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"graphxfer model file v{FORMAT_VERSION}\n{body}".encode("ascii")


def _digest(hashes: dict[str, str], signature: str | None) -> str:
    return _sha256(_manifest(hashes) + b"\n" + (signature or "").encode("ascii"))


def _sign(key: bytes, hashes: dict[str, str]) -> str:
    return _SIGNATURE_PREFIX + hmac.new(key, _manifest(hashes), hashlib.sha256).hexdigest()


def seal_meta(
    doc: dict[str, Any], files: dict[str, bytes], *, key: bytes | str | None = None
) -> bytes:
    """The bytes of ``meta.json`` for ``doc``, ending with its integrity record.

    Parameters
    ----------
    doc : dict
        The metadata; an ``integrity`` entry in it is replaced.
    files : dict of str to bytes
        Every other file of the model (``weights.safetensors`` and any extra file).
    key : bytes or str, optional
        Sign with HMAC-SHA256 under this key (``$GRAPHXFER_MODEL_KEY`` when None).

    Returns
    -------
    bytes
        UTF-8 JSON, indented by two spaces, ending in a newline.
    """
    signing_key = resolve_key(key)
    body = {k: v for k, v in doc.items() if k != "integrity"}
    if not body:
        raise ModelFileError("model metadata is empty")
    try:
        body_bytes = _canonical(body)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model metadata is not JSON-serialisable: {exc}") from exc
    hashes = {META: _sha256(body_bytes), **{n: _sha256(b) for n, b in sorted(files.items())}}
    signature = None if signing_key is None else _sign(signing_key, hashes)
    record = {
        "algorithm": "sha256",
        "files": hashes,
        "signature": signature,
        "digest": _digest(hashes, signature),
    }
    # the same bytes as _canonical({**body, "integrity": record}), see _split_meta
    return body_bytes[:-3] + b"," + _canonical({"integrity": record})[1:]


# ------------------------------------------------------------------ writing
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
        if not isinstance(name, str) or name in (WEIGHTS, META) or not _EXTRA_NAME.match(name):
            raise ModelFileError(
                f"invalid extra file name {name!r}: use letters, digits, '.', '_' and '-', "
                f"not {WEIGHTS!r} or {META!r}"
            )
        if not isinstance(data, bytes):
            raise ModelFileError(f"extra file {name!r} must be bytes, got {type(data).__name__}")
    clash = sorted(set(meta) & set(_RESERVED))
    if clash:
        raise ModelFileError(f"model metadata may not set the reserved keys {clash}")
    weights = _to_bytes(tensors)
    doc = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_versions": package_versions(),
        "weights_sha256": _sha256(weights),
        "extra_files": {n: _sha256(b) for n, b in extra_files.items()},
        **meta,
    }
    files = {WEIGHTS: weights, **extra_files}
    meta_text = seal_meta(doc, files, key=key).decode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
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
        atomic_replace_dir(build, path)
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


def _check_destination(path: Path, *, overwrite: bool) -> None:
    """Refuse to replace anything but a graphxfer model file, unless ``overwrite``."""
    if not os.path.lexists(path):
        return
    where = repr(str(path))
    if path.is_symlink():
        raise ModelFileExistsError(
            f"{where} is a symbolic link; save to the folder or file it points to, or remove it"
        )
    if path.suffix == ".zip":
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
                meta_bytes = _bounded_read(zf.open(META), limits.json_bytes)
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


# ------------------------------------------------------------------ reading
class _Replaced(Exception):
    """The folder being read was replaced meanwhile; read it again."""


def _bounded_read(handle: IO[bytes], limit: int) -> bytes:
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
        _check_size(self.path, name, size, limit)
        fd = self.fds.pop(name)
        data = _bounded_read(os.fdopen(fd, "rb"), limit)
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
        _check_size(self.path, name, size, limit)  # before decompressing anything
        data = _bounded_read(self.zf.open(self.infos[name]), limit)
        if len(data) != size:
            raise ModelFileTamperedError(
                f"{str(self.path)!r}: zip member {name!r} declares {size:,} bytes but holds "
                f"{'more' if len(data) > size else f'{len(data):,}'}; refusing it"
            )
        return data


def _check_size(path: Path, name: str, size: int, limit: int) -> None:
    if size > limit:
        raise ModelFileTooLargeError(
            f"{str(path)!r}: {name!r} is {size:,} bytes, over the limit of {limit:,} bytes; "
            "refusing to read it (raise graphxfer.modelfile.SizeLimits if it is genuine)"
        )


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
                meta = _parse_meta(path, meta_bytes)
                names = [n for n in meta["integrity"]["files"] if n != META]
                sizes = {name: source.size(name) for name in names}
                for name, size in sizes.items():
                    _check_size(path, name, size, limits.file_bytes)
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


_MARKER = b',\n  "integrity": '


def _split_meta(meta_bytes: bytes) -> tuple[dict[str, Any], bytes] | None:
    """``(integrity record, canonical bytes of the rest of meta.json)``, or None.

    ``meta.json`` is written as the canonical JSON of its content followed by the integrity
    record as its last entry, so the rest is recovered without parsing the whole file: cut
    at the record, close the object. None when the record is not where and how graphxfer
    writes it.
    """
    at = meta_bytes.rfind(_MARKER)
    if at < 0:
        return None
    tail = meta_bytes[at:]
    try:
        wrapper = json.loads(b"{" + tail[1:])
        if not (isinstance(wrapper, dict) and isinstance(wrapper.get("integrity"), dict)):
            return None
        if tail != b"," + _canonical(wrapper)[1:]:
            return None
    except (ValueError, TypeError):
        return None
    return wrapper["integrity"], meta_bytes[:at] + b"\n}\n"


def _parse_meta(path: Path, meta_bytes: bytes) -> dict[str, Any]:
    """Check ``meta.json`` against its own integrity record, then parse it.

    The bytes are verified before the content is parsed: any difference from the bytes
    graphxfer wrote is refused with :class:`ModelFileTamperedError`.
    """
    where = repr(str(path))
    split = _split_meta(meta_bytes)
    if split is not None:
        record, body_bytes = split
        hashes = _valid_record(record)
        if hashes is not None and hmac.compare_digest(_sha256(body_bytes), hashes[META]):
            meta = json.loads(meta_bytes)  # the verified bytes of a canonical JSON object
            _check_content(meta, where, hashes)
            return meta
    # refused: say why
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileTamperedError(
            f"{where}: meta.json is not valid JSON ({exc}); the file was modified or corrupted"
        ) from exc
    if not isinstance(meta, dict):
        raise ModelFileTamperedError(f"{where}: meta.json must hold a JSON object")
    version = meta.get("format_version")
    found = meta.get("integrity")
    if not isinstance(found, dict):
        if version != FORMAT_VERSION:
            raise _version_error(where, version)
        raise ModelFileTamperedError(
            f"{where}: meta.json has no integrity record; the file was modified or corrupted"
        )
    described = f"{where}: meta.json (format version {version!r}, kind {meta.get('kind')!r})"
    if not _well_formed(found):
        if version != FORMAT_VERSION:
            raise _version_error(where, version)
        raise ModelFileTamperedError(
            f"{described} has a malformed integrity record; the file was modified or corrupted"
        )
    if _valid_record(found) is None:
        raise ModelFileTamperedError(
            f"{described}: its integrity record does not match its digest; the file was "
            "modified or corrupted, refusing to load it"
        )
    raise ModelFileTamperedError(
        f"{described} is not byte for byte the file graphxfer wrote (its sha256 does not match "
        "the integrity record): it was modified after saving or corrupted, refusing to load it"
    )


def _version_error(where: str, version: Any) -> ModelFileError:
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


def _check_content(meta: dict[str, Any], where: str, hashes: dict[str, str]) -> None:
    """The parts of a verified ``meta.json`` that the reader relies on."""
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise _version_error(where, version)
    extras = meta.get("extra_files") or {}
    if (
        not isinstance(extras, dict)
        or meta.get("weights_sha256") != hashes[WEIGHTS]
        or set(hashes) != {META, WEIGHTS, *extras}
        or any(hashes[n] != d for n, d in extras.items())
    ):
        raise ModelFileTamperedError(
            f"{where}: the files listed in the integrity record of meta.json do not match its "
            "'weights_sha256' and 'extra_files'"
        )


def _well_formed(record: dict[str, Any]) -> bool:
    """Whether ``record`` has the layout of an integrity record (digest not checked)."""
    hashes = record.get("files")
    signature = record.get("signature")
    return (
        tuple(record) == _RECORD_KEYS
        and record["algorithm"] == "sha256"
        and isinstance(hashes, dict)
        and META in hashes
        and WEIGHTS in hashes
        and all(
            isinstance(n, str)
            and (n in (META, WEIGHTS) or _EXTRA_NAME.match(n) is not None)
            and isinstance(h, str)
            and _HEX64.match(h) is not None
            for n, h in hashes.items()
        )
        and (
            signature is None
            or (
                isinstance(signature, str)
                and signature.startswith(_SIGNATURE_PREFIX)
                and _HEX64.match(signature[len(_SIGNATURE_PREFIX) :]) is not None
            )
        )
        and isinstance(record["digest"], str)
    )


def _valid_record(record: dict[str, Any]) -> dict[str, str] | None:
    """The file hashes of a well-formed integrity record whose digest matches, else None."""
    if not _well_formed(record):
        return None
    hashes: dict[str, str] = record["files"]
    if not hmac.compare_digest(_digest(hashes, record["signature"]), record["digest"]):
        return None
    return hashes


def _check_signature(path: Path, meta: dict[str, Any], key: bytes) -> None:
    record = meta["integrity"]
    signature = record["signature"]
    if signature is None:
        raise ModelFileSignatureError(
            f"{str(path)!r} is not signed, but a key was given (key= or ${KEY_ENV}); refusing "
            "to load it. Re-save it with save(path, key=...) where it was made"
        )
    if not hmac.compare_digest(_sign(key, record["files"]), signature):
        raise ModelFileSignatureError(
            f"{str(path)!r} is signed with another key than the one given, or was modified "
            "and signed again without it; refusing to load it"
        )


def read_model_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    key: bytes | str | None = None,
    limits: SizeLimits | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and verify a model file; return ``(tensors, meta)``.

    Extra files (see :func:`write_model_file`) are verified and returned as bytes in
    ``meta["extra_file_bytes"]``.

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
        _check_signature(path, meta, verify_key)
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(
            f"{str(path)!r} holds a {meta.get('kind')!r}, not a {kind!r}; "
            f"use load_{meta.get('kind')} instead"
        )
    hashes = meta["integrity"]["files"]
    for name, data in files.items():
        if _sha256(data) != hashes[name]:
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
