"""The integrity record that ends ``meta.json``: file hashes, a digest, an optional signature.

``meta.json`` is written as the canonical JSON of its content followed by the integrity record
as its last entry. The record holds the sha256 of the rest of ``meta.json`` and of every other
file, an HMAC-SHA256 signature over those hashes when a key is given, and a digest over both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from graphxfer.exceptions import ModelFileError, ModelFileSignatureError, ModelFileTamperedError
from graphxfer.modelfile._format import (
    EXTRA_NAME,
    FORMAT_VERSION,
    HEX64,
    KEY_ENV,
    META,
    MIN_KEY_BYTES,
    RECORD_KEYS,
    SIGNATURE_PREFIX,
    WEIGHTS,
    canonical,
    sha256,
    version_error,
)

__all__ = ["check_signature", "parse_meta", "resolve_key", "seal_meta"]

_MARKER = b',\n  "integrity": '


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


def _manifest(hashes: dict[str, str]) -> bytes:
    """What is signed: the hashes of every file, in a canonical serialisation."""
    body = json.dumps(hashes, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"graphxfer model file v{FORMAT_VERSION}\n{body}".encode("ascii")


def _digest(hashes: dict[str, str], signature: str | None) -> str:
    return sha256(_manifest(hashes) + b"\n" + (signature or "").encode("ascii"))


def _sign(key: bytes, hashes: dict[str, str]) -> str:
    return SIGNATURE_PREFIX + hmac.new(key, _manifest(hashes), hashlib.sha256).hexdigest()


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
        body_bytes = canonical(body)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model metadata is not JSON-serialisable: {exc}") from exc
    hashes = {META: sha256(body_bytes), **{n: sha256(b) for n, b in sorted(files.items())}}
    signature = None if signing_key is None else _sign(signing_key, hashes)
    record = {
        "algorithm": "sha256",
        "files": hashes,
        "signature": signature,
        "digest": _digest(hashes, signature),
    }
    # the same bytes as canonical({**body, "integrity": record}), see _split_meta
    return body_bytes[:-3] + b"," + canonical({"integrity": record})[1:]


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
        if tail != b"," + canonical(wrapper)[1:]:
            return None
    except (ValueError, TypeError):
        return None
    return wrapper["integrity"], meta_bytes[:at] + b"\n}\n"


def parse_meta(path: Path, meta_bytes: bytes) -> dict[str, Any]:
    """Check ``meta.json`` against its own integrity record, then parse it.

    The bytes are verified before the content is parsed: any difference from the bytes
    graphxfer wrote is refused with :class:`ModelFileTamperedError`.
    """
    where = repr(str(path))
    split = _split_meta(meta_bytes)
    if split is not None:
        record, body_bytes = split
        hashes = _valid_record(record)
        if hashes is not None and hmac.compare_digest(sha256(body_bytes), hashes[META]):
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
            raise version_error(where, version)
        raise ModelFileTamperedError(
            f"{where}: meta.json has no integrity record; the file was modified or corrupted"
        )
    described = f"{where}: meta.json (format version {version!r}, kind {meta.get('kind')!r})"
    if not _well_formed(found):
        if version != FORMAT_VERSION:
            raise version_error(where, version)
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


def _check_content(meta: dict[str, Any], where: str, hashes: dict[str, str]) -> None:
    """The parts of a verified ``meta.json`` that the reader relies on."""
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise version_error(where, version)
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
        tuple(record) == RECORD_KEYS
        and record["algorithm"] == "sha256"
        and isinstance(hashes, dict)
        and META in hashes
        and WEIGHTS in hashes
        and all(
            isinstance(n, str)
            and (n in (META, WEIGHTS) or EXTRA_NAME.match(n) is not None)
            and isinstance(h, str)
            and HEX64.match(h) is not None
            for n, h in hashes.items()
        )
        and (
            signature is None
            or (
                isinstance(signature, str)
                and signature.startswith(SIGNATURE_PREFIX)
                and HEX64.match(signature[len(SIGNATURE_PREFIX) :]) is not None
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


def check_signature(path: Path, meta: dict[str, Any], key: bytes) -> None:
    """Refuse ``meta`` (verified) unless it is signed with ``key``."""
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
