"""What leaves the target institution: model files that show any edit, saves that never
destroy what they did not write, and CSV exports that a spreadsheet cannot run."""

from __future__ import annotations

import csv
import doctest
import hashlib
import io
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
import graphxfer._io
import privacy
from graphxfer import TransferClassifier, load_encoder, load_model
from graphxfer._io import exchange_paths, write_csv_atomic
from graphxfer.exceptions import (
    ModelFileError,
    ModelFileExistsError,
    ModelFileSignatureError,
    ModelFileTamperedError,
    ModelFileTooLargeError,
)
from graphxfer.explain import export_explanations
from graphxfer.modelfile import (
    DEFAULT_LIMITS,
    KEY_ENV,
    SizeLimits,
    is_model_file,
    read_model_file,
    seal_meta,
    write_model_file,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)

KEY = "correct horse battery staple, 2024"
OTHER_KEY = b"\x01" * 32


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def cohort() -> graphxfer.Cohort:
    return graphxfer.datasets.load_heart_disease().select_groups(["cleveland"])


@pytest.fixture(scope="module")
def fitted(cohort: graphxfer.Cohort) -> Iterator[tuple[graphxfer.Encoder, TransferClassifier]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    encoder = graphxfer.pretrain(
        cohort,
        "mlp",
        epochs=1,
        encoder_params={"width": 16, "n_blocks": 1},
        random_state=0,
        progress=False,
        device="cpu",
    )
    config = privacy.PrivacyConfig(epsilon=2.0, epochs=1, batch_size=32, accountant="rdp")
    model = TransferClassifier(
        encoder,
        strategy="linear-probe",
        epochs=1,
        privacy=config,
        random_state=0,
        device="cpu",
        progress=False,
    ).fit(cohort)
    yield encoder, model
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(
    fitted: tuple[graphxfer.Encoder, TransferClassifier], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A DP-fitted model saved once, unsigned and signed (copied before any edit)."""
    _, model = fitted
    root = tmp_path_factory.mktemp("release")
    return {"plain": model.save(root / "plain"), "signed": model.save(root / "signed", key=KEY)}


def _copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def _small_file(path: Path, **kwargs: Any) -> Path:
    """A model file with a short but representative meta.json (a ledger, a strategy, a schema)."""
    meta = {
        "params": {"strategy": "linear-probe", "epochs": 1, "note": "Zürich – ε"},
        "feature_schema": {"columns": [{"name": "age", "role": "feature", "type": "numeric"}]},
        "ledger": {
            "accountant": "rdp",
            "entries": [{"mechanism": "dp-sgd", "epsilon": 1.9980897854841952, "delta": 1e-05}],
        },
        "metrics": [],
        "fallback": None,
    }
    tensors = {"w": torch.linspace(-1.0, 1.0, 48).reshape(4, 12), "idx": torch.arange(3)}
    return write_model_file(path, tensors, meta, kind="model", **kwargs)


def _flip_each(path: Path, positions: Any, mask: int = 0x01) -> list[int]:
    """Flip each position of ``path`` in turn (restored after) and return those not refused."""
    raw = path.read_bytes()
    missed = []
    fd = os.open(path, os.O_RDWR)
    try:
        for i in positions:
            os.pwrite(fd, bytes([raw[i] ^ mask]), i)
            try:
                read_model_file(path.parent)
            except ModelFileTamperedError:
                pass
            else:
                missed.append(i)
            finally:
                os.pwrite(fd, raw[i : i + 1], i)
    finally:
        os.close(fd)
    assert path.read_bytes() == raw
    return missed


def _spread(n: int, k: int) -> list[int]:
    return sorted({0, n - 1, *np.linspace(0, n - 1, k).astype(int).tolist()})


# ----------------------------------------------------------------------------- integrity
@pytest.mark.parametrize("mask", [0x01, 0x20, 0x80])
def test_every_byte_edit_of_meta_json_is_refused(tmp_path: Path, mask: int) -> None:
    path = _small_file(tmp_path / "m")
    read_model_file(path)
    meta = path / "meta.json"
    assert _flip_each(meta, range(meta.stat().st_size), mask) == []


def test_byte_edits_of_a_fitted_model_are_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(saved["plain"], tmp_path / "m")
    raw = (path / "meta.json").read_bytes()
    # every byte of the privacy ledger, the strategy and the integrity record...
    regions = []
    for key in (b'\n  "ledger": ', b'\n    "strategy": ', b'\n  "integrity": '):
        start = raw.index(key)
        end = raw.index(b"\n  }" if key != b'\n    "strategy": ' else b"\n", start + len(key))
        regions.extend(range(start, end + 4))
    # ...and a spread of positions over the whole file
    positions = sorted(set(regions) | set(_spread(len(raw), 200)))
    assert _flip_each(path / "meta.json", positions) == []
    weights = path / "weights.safetensors"
    assert _flip_each(weights, _spread(weights.stat().st_size, 200)) == []
    load_model(path)  # every edit was undone


def _rewrite(path: Path, change: Any) -> None:
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    change(meta)
    text = json.dumps(meta, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    (path / "meta.json").write_text(text, encoding="utf-8")


def _set_epsilon(meta: dict[str, Any]) -> None:
    meta["ledger"]["entries"][0]["epsilon"] = 0.1


def test_meta_json_is_written_canonically(saved: dict[str, Path]) -> None:
    raw = (saved["plain"] / "meta.json").read_bytes()
    meta = json.loads(raw)
    assert (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode() == raw
    record = meta["integrity"]
    assert list(meta)[-1] == "integrity" and record["signature"] is None
    weights = (saved["plain"] / "weights.safetensors").read_bytes()
    assert record["files"]["weights.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert meta["format_version"] == 2


@pytest.mark.parametrize(
    "change",
    [
        _set_epsilon,
        lambda m: m["params"].update(strategy="full"),
        lambda m: m["feature_schema"]["columns"].pop(),
        lambda m: m.update(created="2000-01-01T00:00:00+00:00"),
        lambda m: m["integrity"].update(signature=None),
    ],
    ids=["ledger-epsilon", "strategy", "schema", "created", "integrity"],
)
def test_edits_of_meta_json_content_are_refused(
    saved: dict[str, Path], tmp_path: Path, change: Any
) -> None:
    path = _copy(saved["signed"], tmp_path / "m")
    load_model(path, key=KEY)
    _rewrite(path, change)
    with pytest.raises(ModelFileTamperedError, match=r"meta\.json"):
        load_model(path)
    with pytest.raises(ModelFileTamperedError):
        load_model(path, key=KEY)


def test_ledger_epsilon_edit_is_refused_even_if_reformatted(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    path = _copy(saved["plain"], tmp_path / "m")
    model = load_model(path)
    assert model.ledger_ is not None and model.ledger_.entries[0].epsilon > 1.0
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    _set_epsilon(meta)
    for text in (json.dumps(meta), json.dumps(meta, indent=4), json.dumps(meta, indent=2)):
        (path / "meta.json").write_text(text, encoding="utf-8")
        with pytest.raises(ModelFileTamperedError, match=r"sha256|byte for byte"):
            load_model(path)


def test_a_forger_who_rewrites_the_hashes_is_caught_only_by_the_signature(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    """The documented limit: an unsigned hash detects edits, not a forger who re-hashes."""
    path = _copy(saved["signed"], tmp_path / "m")
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    _set_epsilon(meta)
    files = {"weights.safetensors": (path / "weights.safetensors").read_bytes()}
    (path / "meta.json").write_bytes(seal_meta(meta, files))  # re-hashed, without the key
    forged = load_model(path)  # no key: the forgery is consistent
    assert forged.ledger_ is not None and forged.ledger_.entries[0].epsilon == pytest.approx(0.1)
    with pytest.raises(ModelFileSignatureError, match="not signed"):
        load_model(path, key=KEY)
    (path / "meta.json").write_bytes(seal_meta(meta, files, key=OTHER_KEY))
    with pytest.raises(ModelFileSignatureError, match="another key"):
        load_model(path, key=KEY)


def test_older_and_newer_formats_are_refused_clearly(saved: dict[str, Path], tmp_path: Path):
    path = _copy(saved["plain"], tmp_path / "m")
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    del meta["integrity"]
    meta["format_version"] = 1
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"format version 1.*integrity record"):
        load_model(path)
    meta["format_version"] = 3
    files = {"weights.safetensors": (path / "weights.safetensors").read_bytes()}
    (path / "meta.json").write_bytes(seal_meta(meta, files))
    with pytest.raises(ModelFileError, match="format version 3"):
        load_model(path)


# ----------------------------------------------------------------------------- signing
@pytest.mark.parametrize("fmt", ["folder", "model.zip"])
def test_signed_files_need_the_right_key(
    fitted: tuple[graphxfer.Encoder, TransferClassifier],
    cohort: graphxfer.Cohort,
    tmp_path: Path,
    fmt: str,
) -> None:
    encoder, model = fitted
    signed = model.save(tmp_path / f"signed-{fmt}", key=KEY)
    expected = model.predict_proba(cohort)
    np.testing.assert_array_equal(load_model(signed, key=KEY).predict_proba(cohort), expected)
    np.testing.assert_array_equal(
        load_model(signed, key=KEY.encode()).predict_proba(cohort), expected
    )
    with pytest.raises(ModelFileSignatureError, match="another key"):
        load_model(signed, key=OTHER_KEY)
    load_model(signed)  # without a key the hashes are checked, the signature cannot be
    unsigned = model.save(tmp_path / f"unsigned-{fmt}")
    with pytest.raises(ModelFileSignatureError, match="not signed"):
        load_model(unsigned, key=KEY)
    enc_path = encoder.save(tmp_path / f"encoder-{fmt}", key=KEY)
    assert load_encoder(enc_path, key=KEY).name == "mlp"
    with pytest.raises(ModelFileSignatureError):
        load_encoder(enc_path, key=OTHER_KEY)


def test_key_from_the_environment(
    saved: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    load_model(saved["signed"])
    with pytest.raises(ModelFileSignatureError, match="not signed"):
        load_model(saved["plain"])
    path = _small_file(tmp_path / "env")  # signed with the key of the environment
    assert json.loads((path / "meta.json").read_bytes())["integrity"]["signature"]
    monkeypatch.delenv(KEY_ENV)
    read_model_file(path, key=KEY)
    with pytest.raises(ModelFileSignatureError):
        read_model_file(path, key=OTHER_KEY)


def test_short_or_odd_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="at least 16"):
        _small_file(tmp_path / "a", key="secret")
    with pytest.raises(ModelFileError, match="bytes or str"):
        _small_file(tmp_path / "b", key=12345678901234567890)  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- size limits
def _zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_oversized_zip_members_are_refused_before_decompression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEFAULT_LIMITS.file_bytes == 4 * 1024**3 and DEFAULT_LIMITS.json_bytes == 64 * 1024**2
    good = _small_file(tmp_path / "good.zip")
    with zipfile.ZipFile(good) as zf:
        meta = zf.read("meta.json")
    bomb = _zip_with(
        tmp_path / "bomb.zip",
        {"meta.json": meta, "weights.safetensors": bytes(8 * 1024 * 1024)},  # 8 MiB of zeros
    )
    assert bomb.stat().st_size < 64 * 1024  # it deflates to almost nothing
    opened: list[str] = []
    zip_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(name if isinstance(name, str) else name.filename)
        return zip_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    with pytest.raises(ModelFileTooLargeError, match=r"weights\.safetensors"):
        read_model_file(bomb, limits=SizeLimits(file_bytes=1024 * 1024))
    assert "weights.safetensors" not in opened, "the member was decompressed before the check"
    opened.clear()
    with pytest.raises(ModelFileTooLargeError, match=r"meta\.json"):
        read_model_file(good, limits=SizeLimits(json_bytes=64))
    assert opened == []
    with pytest.raises(ModelFileTooLargeError):
        read_model_file(bomb, limits=SizeLimits(total_bytes=4 * 1024 * 1024))
    # with room for it, the oversized member is read and then refused by its hash
    with pytest.raises(ModelFileTamperedError, match="sha256"):
        read_model_file(bomb)


def test_zip_member_holding_more_than_it_declares_is_refused(tmp_path: Path) -> None:
    good = _small_file(tmp_path / "good.zip")
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    size = len(members["weights.safetensors"])
    # halve the declared size of weights.safetensors in its local and central headers
    name = b"weights.safetensors"
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        at = raw.index(signature)
        while raw[at + name_at : at + name_at + len(name)] != name:
            at = raw.index(signature, at + 1)
        assert int.from_bytes(raw[at + size_at : at + size_at + 4], "little") == size
        raw[at + size_at : at + size_at + 4] = (size // 2).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError):
        read_model_file(path)


def test_oversized_folder_files_are_refused_before_reading(tmp_path: Path) -> None:
    path = _small_file(tmp_path / "m")
    with pytest.raises(ModelFileTooLargeError, match=r"meta\.json"):
        read_model_file(path, limits=SizeLimits(json_bytes=100))
    with pytest.raises(ModelFileTooLargeError, match=r"weights\.safetensors"):
        read_model_file(path, limits=SizeLimits(file_bytes=100))
    with pytest.raises(ModelFileError, match="positive int"):
        SizeLimits(file_bytes=0)


# ----------------------------------------------------------------------------- saving
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_save_never_deletes_a_folder_of_other_files(
    fitted: tuple[graphxfer.Encoder, TransferClassifier], tmp_path: Path
) -> None:
    encoder, model = fitted
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("four years of work\n", encoding="utf-8")
    (thesis / "figures").mkdir()
    (thesis / "figures" / "fig1.png").write_bytes(b"\x89PNG...")
    before = _snapshot(thesis)
    for save in (model.save, encoder.save):
        with pytest.raises(ModelFileExistsError, match="not a graphxfer model file"):
            save(thesis)
    assert _snapshot(thesis) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary files left
    # a model folder with a foreign file in it is not a model folder either
    folder = model.save(tmp_path / "model")
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    assert not is_model_file(folder)
    with pytest.raises(ModelFileExistsError):
        model.save(folder)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    # overwrite=True is the explicit way to replace them
    model.save(thesis, overwrite=True)
    assert sorted(p.name for p in thesis.iterdir()) == ["meta.json", "weights.safetensors"]
    load_model(thesis)


def test_save_replaces_model_files_and_empty_folders(
    fitted: tuple[graphxfer.Encoder, TransferClassifier], tmp_path: Path
) -> None:
    encoder, model = fitted
    for name in ("folder", "model.zip"):
        path = model.save(tmp_path / name)
        assert is_model_file(path)
        model.save(path)  # a graphxfer model file is replaced without overwrite=True
        load_model(path)
    path = tmp_path / "folder"
    encoder.save(path)  # an encoder may replace a model: both are graphxfer model files
    with pytest.raises(ModelFileError, match="use load_encoder"):
        load_model(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    load_model(model.save(empty))


def test_save_refuses_files_links_and_foreign_zips(
    fitted: tuple[graphxfer.Encoder, TransferClassifier], tmp_path: Path
) -> None:
    _, model = fitted
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7")
    for overwrite in (False, True):
        with pytest.raises(ModelFileExistsError, match="is a file, not a folder"):
            model.save(report, overwrite=overwrite)
    assert report.read_bytes() == b"%PDF-1.7"
    archive = _zip_with(tmp_path / "data.zip", {"records.csv": b"id,age\n1,50\n"})
    not_zip = tmp_path / "notes.zip"
    not_zip.write_bytes(b"not a zip at all")
    for path in (archive, not_zip):
        before = path.read_bytes()
        with pytest.raises(ModelFileExistsError, match="overwrite=True"):
            model.save(path)
        assert path.read_bytes() == before
        model.save(path, overwrite=True)
        load_model(path)
    folder_zip = tmp_path / "folder.zip"
    folder_zip.mkdir()
    with pytest.raises(ModelFileExistsError, match="not a file"):
        model.save(folder_zip, overwrite=True)
    link = tmp_path / "latest"
    link.symlink_to(model.save(tmp_path / "v1"))
    with pytest.raises(ModelFileExistsError, match="symbolic link"):
        model.save(link, overwrite=True)
    assert link.is_symlink()


def _exchange_supported(tmp_path: Path) -> bool:
    a, b = tmp_path / "xa", tmp_path / "xb"
    a.mkdir()
    b.mkdir()
    (a / "a").touch()
    ok = exchange_paths(a, b)
    shutil.rmtree(a)
    shutil.rmtree(b)
    return ok


@pytest.mark.parametrize("fmt", ["folder", "model.zip"])
def test_a_reader_never_sees_a_missing_or_partial_model_file(tmp_path: Path, fmt: str) -> None:
    if fmt == "folder" and not _exchange_supported(tmp_path):
        pytest.skip("this file system cannot exchange folders atomically (RENAME_EXCHANGE)")
    path = tmp_path / fmt
    versions = [{"w": torch.full((64, 64), float(v)), "b": torch.arange(v + 1)} for v in range(2)]
    write_model_file(path, versions[0], {"version": 0}, kind="encoder")
    stop = threading.Event()
    failures: list[str] = []
    reads = [0]

    def poll() -> None:
        while not stop.is_set():
            try:
                tensors, meta = read_model_file(path)
            except Exception as exc:  # anything at all is a failure here
                failures.append(repr(exc))
                continue
            version = meta["version"]
            if not torch.equal(tensors["w"], versions[version]["w"]):
                failures.append(f"weights of another version than meta.json ({version})")
            reads[0] += 1

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for i in range(1, 21):
            write_model_file(path, versions[i % 2], {"version": i % 2}, kind="encoder")
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert reads[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [fmt]


# ----------------------------------------------------------------------------- CSV
HOSTILE = ['=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(1)", "\tx", "\rx", "plain"]


def test_explanation_csv_is_formula_safe(tmp_path: Path) -> None:
    import shap

    n = len(HOSTILE)
    values = np.tile([[-1.5, 0.25]], (n, 1))
    shown = np.array([[-1.5, v] for v in ["=1+1", "-2", "@x", "red", "+", "\t", "ok"]], object)
    exp = shap.Explanation(
        values,
        base_values=np.full(n, 0.5),
        data=shown,
        feature_names=["=age", "colour"],
        output_names="probability of the positive class",
    )
    csv_path, json_path = export_explanations(exp, np.full(n, -1.5), tmp_path / "x", ids=HOSTILE)
    text = csv_path.read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["id", "prediction"] and "shap:=age" in header
    assert [r[0] for r in body] == ["'" + v if v != "plain" else v for v in HOSTILE]
    colour = header.index("value:colour")
    assert [r[colour] for r in body] == ["'=1+1", "'-2", "'@x", "red", "'+", "'\t", "ok"]
    for cell in (c for r in body for c in r):
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        assert not cell.startswith("-") or float(cell) < 0  # only numbers may start with '-'
    # numbers stay unquoted numbers
    assert text.count(',-1.5,"probability of the positive class",0.5,') == n
    table = pd.read_csv(csv_path)
    assert table["prediction"].dtype == np.float64 and (table["prediction"] == -1.5).all()
    assert (table["shap:=age"] == -1.5).all() and (table["value:=age"] == -1.5).all()
    # the JSON keeps the original values
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert [r["id"] for r in document["records"]] == HOSTILE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.json"]


def test_write_csv_atomic_escapes_every_text_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "=name": pd.Series(HOSTILE, dtype="str"),
            "kind": pd.Categorical(["@a", "b", "@a", "b", "-c", "b", "b"]),
            "mixed": pd.Series([-1.5, "-1.5", None, 2, True, "=x", 0.0], dtype=object),
            "x": [-1.5, -2.0, 0.0, 1.0, 2.0, np.nan, 3.5],
            "n": [-1, -2, 0, 1, 2, 3, 4],
        }
    )
    path = tmp_path / "t.csv"
    write_csv_atomic(path, frame)
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert rows[0] == ["'=name", "kind", "mixed", "x", "n"]
    assert [r[1] for r in rows[1:]] == ["'@a", "b", "'@a", "b", "'-c", "b", "b"]
    assert [r[2] for r in rows[1:]] == ["-1.5", "'-1.5", "", "2", "True", "'=x", "0.0"]
    back = pd.read_csv(path)
    assert back["x"].tolist()[:5] == [-1.5, -2.0, 0.0, 1.0, 2.0]
    assert back["n"].tolist() == [-1, -2, 0, 1, 2, 3, 4]
    assert frame.columns[0] == "=name"  # the caller's frame is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_io_doctests() -> None:
    result = doctest.testmod(graphxfer._io, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
