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

The parts: the layout (``_format``), the size limits (``_limits``), the integrity record
(``_integrity``), reading (``_read``) and atomic writing (``_write``).
"""

from __future__ import annotations

from graphxfer.modelfile._format import FORMAT_VERSION, KEY_ENV, package_versions
from graphxfer.modelfile._format import META as META
from graphxfer.modelfile._format import MIN_KEY_BYTES as MIN_KEY_BYTES
from graphxfer.modelfile._format import WEIGHTS as WEIGHTS
from graphxfer.modelfile._integrity import resolve_key as resolve_key
from graphxfer.modelfile._integrity import seal_meta as seal_meta
from graphxfer.modelfile._limits import DEFAULT_LIMITS, SizeLimits
from graphxfer.modelfile._read import is_model_file, read_model_file
from graphxfer.modelfile._write import write_model_file

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
