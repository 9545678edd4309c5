"""Model files: safetensors + JSON, verified on load, written atomically."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from graphxfer.exceptions import ModelFileError
from graphxfer.modelfile import FORMAT_VERSION, read_model_file, seal_meta, write_model_file


@pytest.fixture(params=["folder", "model.zip"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / request.param


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=g), "idx": torch.arange(5)}


def test_round_trip(target: Path) -> None:
    write_model_file(target, _tensors(), {"encoder": {"class": "mlp"}}, kind="encoder")
    tensors, meta = read_model_file(target, kind="encoder")
    assert torch.equal(tensors["w"], _tensors()["w"])
    assert torch.equal(tensors["idx"], _tensors()["idx"])
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["encoder"] == {"class": "mlp"}
    assert "torch" in meta["package_versions"]


def test_tampered_weights_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m"
    write_model_file(path, _tensors(), {}, kind="encoder")
    raw = bytearray((path / "weights.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (path / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="sha256"):
        read_model_file(path)


def test_unknown_format_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m"
    write_model_file(path, _tensors(), {}, kind="encoder")
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = 99
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="format version 99"):
        read_model_file(path)


def test_wrong_kind_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    write_model_file(path, _tensors(), {}, kind="model")
    with pytest.raises(ModelFileError, match="holds a 'model'"):
        read_model_file(path, kind="encoder")


def test_nan_weights_are_refused_on_save_and_load(tmp_path: Path) -> None:
    bad = {"w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(ModelFileError, match="NaN or inf"):
        write_model_file(tmp_path / "m", bad, {}, kind="encoder")
    # a file whose (consistent, re-sealed) hashes cover NaN weights is still refused on load
    import hashlib

    from safetensors.torch import save

    path = tmp_path / "n"
    path.mkdir()
    weights = save(bad)
    (path / "weights.safetensors").write_bytes(weights)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "encoder",
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    (path / "meta.json").write_bytes(seal_meta(meta, {"weights.safetensors": weights}))
    with pytest.raises(ModelFileError, match="NaN or inf"):
        read_model_file(path)


def test_pickles_and_junk_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, junk)  # a pickle-based file
    with pytest.raises(ModelFileError, match="never reads pickles"):
        read_model_file(junk)
    with pytest.raises(ModelFileError, match="does not exist"):
        read_model_file(tmp_path / "absent")
    zpath = tmp_path / "half.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("meta.json", "{}")
    with pytest.raises(ModelFileError, match=r"weights\.safetensors"):
        read_model_file(zpath)


def test_interrupted_save_leaves_the_old_file_intact(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_model_file(target, _tensors(), {"version": "old"}, kind="encoder")

    import graphxfer.modelfile._write as writer

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "atomic_replace_dir", boom)
    monkeypatch.setattr(writer.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_model_file(target, {"w": torch.zeros(1)}, {"version": "new"}, kind="encoder")
    monkeypatch.undo()
    _, meta = read_model_file(target)
    assert meta["version"] == "old"
    leftovers = [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename-aside"])
def test_a_folder_put_in_place_during_a_save_is_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    import shutil

    import graphxfer._io as io
    import graphxfer.modelfile._write as writer
    from graphxfer.exceptions import ModelFileExistsError

    path = tmp_path / "model"
    write_model_file(path, _tensors(), {"version": "old"}, kind="encoder")
    real = writer.atomic_replace_dir

    def another_process_swaps_in_a_folder(build: Path, dest: Path, **kwargs: object) -> None:
        # after the writer checked ``dest`` (a model file) and before it swaps
        shutil.rmtree(dest)
        dest.mkdir()
        (dest / "notes.txt").write_text("keep me")
        real(build, dest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "atomic_replace_dir", another_process_swaps_in_a_folder)
    if not exchange:
        monkeypatch.setattr(io, "exchange_paths", lambda a, b: False)
    with pytest.raises(ModelFileExistsError, match="not a graphxfer model file"):
        write_model_file(path, _tensors(), {"version": "new"}, kind="encoder")
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]
    assert (path / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left


def test_a_checked_out_folder_is_kept_when_it_cannot_be_swapped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import graphxfer._io as io
    import graphxfer.modelfile._write as writer
    from graphxfer.exceptions import ModelFileExistsError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    if not io.exchange_paths(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this system cannot exchange two folders")
    path = tmp_path / "model"
    write_model_file(path, _tensors(), {"version": "old"}, kind="encoder")
    real_replace, real_exchange = writer.atomic_replace_dir, io.exchange_paths
    calls: list[int] = []

    def exchange_once(a: Path, b: Path) -> bool:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("the exchange back fails")
        return real_exchange(a, b)

    def another_process_swaps_in_a_folder(build: Path, dest: Path, **kwargs: object) -> None:
        shutil.rmtree(dest)
        dest.mkdir()
        (dest / "notes.txt").write_text("keep me")
        real_replace(build, dest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(io, "exchange_paths", exchange_once)
    monkeypatch.setattr(writer, "atomic_replace_dir", another_process_swaps_in_a_folder)
    with pytest.raises(ModelFileExistsError):
        write_model_file(path, _tensors(), {"version": "new"}, kind="encoder")
    assert len(calls) == 2
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".model.kept-")]
    assert len(kept) == 1 and (kept[0] / "notes.txt").read_text() == "keep me"
