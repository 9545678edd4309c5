"""Pretraining every registered encoder, and the model files of encoders and fitted models.

Shared invariants, run over every encoder kind: a save/load round trip gives identical
predictions; a tampered, unknown-format, non-finite or unknown-encoder file is refused with
:class:`ModelFileError`; an interrupted save leaves the previous file intact; nothing is
pickled; the source summary holds no record.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import graphxfer
from graphxfer import Cohort, TransferClassifier, datasets, load_encoder, load_model
from graphxfer.encoder import GRAPH_ENCODERS, TABULAR_ENCODERS, Encoder
from graphxfer.exceptions import GraphxferError, ModelFileError
from graphxfer.modelfile import FORMAT_VERSION, seal_meta


def _graph_encoders_available() -> bool:
    try:
        from graphxfer.graphs import pretrain_graph  # noqa: F401
    except ImportError:
        return False
    return True


_NO_GRAPHS = pytest.mark.skipif(
    not _graph_encoders_available(),
    reason="graph encoders need graphxfer.graphs.pretrain_graph, which this checkout lacks",
)

# Small networks and one or two epochs: these tests are about files and contracts, not skill.
PRETRAIN_PARAMS: dict[str, dict[str, Any]] = {
    "linear": {"epochs": 2},
    "mlp": {"epochs": 2, "encoder_params": {"width": 16, "n_blocks": 1}},
    "ft-transformer": {"epochs": 1, "encoder_params": {"d_token": 8, "n_layers": 1, "n_heads": 2}},
    "tabnet": {"epochs": 1, "encoder_params": {"n_d": 8, "n_a": 8, "n_steps": 2}},
    "graphsage": {"epochs": 1, "hidden": 16, "k": 5},
    "gat": {"epochs": 1, "hidden": 16, "heads": 2, "k": 5},
    "gin": {"epochs": 1, "hidden": 16, "k": 5},
}
KINDS = [
    *TABULAR_ENCODERS,
    *(pytest.param(name, marks=_NO_GRAPHS) for name in GRAPH_ENCODERS),
]
FORMATS = ["folder", "model.zip"]
N_SOURCE = 597  # cleveland + hungarian
N_TARGET = 200  # va


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The networks here are tiny: intra-op threads only oversubscribe shared CI cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def heart() -> dict[str, Cohort]:
    cohort = datasets.load_heart_disease()
    return {
        "source": cohort.select_groups(["cleveland", "hungarian"]),
        "target": cohort.select_groups("va"),
    }


def _pretrain(source: Cohort, name: str, **extra: Any) -> Encoder:
    params = {"random_state": 0, "progress": False, "device": "cpu", **PRETRAIN_PARAMS[name]}
    return graphxfer.pretrain(source, encoder=name, **{**params, **extra})


@pytest.fixture(scope="module", params=KINDS)
def encoder(request: pytest.FixtureRequest, heart: dict[str, Cohort]) -> Encoder:
    return _pretrain(heart["source"], request.param)


@pytest.fixture(scope="module")
def model(encoder: Encoder, heart: dict[str, Cohort]) -> TransferClassifier:
    clf = TransferClassifier(
        encoder, strategy="lp-ft", epochs=2, learning_rate=1e-2, random_state=0, device="cpu"
    )
    return clf.fit(heart["target"])


@pytest.fixture(scope="module")
def saved(
    encoder: Encoder, model: TransferClassifier, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The encoder and the fitted model saved once as folders (copied before tampering)."""
    root = tmp_path_factory.mktemp(f"files-{encoder.name}")
    return {"encoder": encoder.save(root / "encoder"), "model": model.save(root / "model")}


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir()}
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _read_meta(path: Path) -> dict[str, Any]:
    return json.loads((path / "meta.json").read_text(encoding="utf-8"))


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Rewrite meta.json as a forger would: with an integrity record that matches the edit
    (so that the checks behind the integrity record are the ones tested)."""
    files = {p.name: p.read_bytes() for p in path.iterdir() if p.name != "meta.json"}
    (path / "meta.json").write_bytes(seal_meta(meta, files))


def _loader(what: str) -> Any:
    return load_encoder if what == "encoder" else load_model


# ----------------------------------------------------------------------------- pretraining
def test_pretrain_gives_an_encoder(encoder: Encoder, heart: dict[str, Cohort]) -> None:
    assert isinstance(encoder, Encoder)
    assert encoder.name in PRETRAIN_PARAMS
    assert encoder.kind == ("graph" if encoder.name in GRAPH_ENCODERS else "tabular")
    assert encoder.schema.feature_names == heart["source"].schema.feature_names
    assert encoder.source_summary["n_rows"] == N_SOURCE
    assert encoder.history, "pretraining keeps a per-epoch record"
    emb = encoder.embed(heart["target"])
    assert emb.ndim == 2 and emb.shape[0] == N_TARGET
    assert np.isfinite(emb).all()


@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("mlp", "masked"),
        ("mlp", "contrastive"),
        pytest.param("graphsage", "dgi", marks=_NO_GRAPHS),
    ],
)
def test_pretrain_self_supervised_objectives(
    name: str, objective: str, heart: dict[str, Cohort]
) -> None:
    enc = _pretrain(heart["source"], name, objective=objective, epochs=1)
    assert enc.name == name
    assert np.isfinite(enc.embed(heart["target"])).all()


def test_pretrain_refuses_unknown_encoders_and_non_cohorts(heart: dict[str, Cohort]) -> None:
    with pytest.raises(GraphxferError, match="unknown encoder 'xgbnet'"):
        graphxfer.pretrain(heart["source"], encoder="xgbnet")
    with pytest.raises(GraphxferError, match=r"needs a graphxfer\.Cohort"):
        graphxfer.pretrain(heart["source"].data, encoder="mlp")


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", FORMATS)
def test_encoder_round_trip_gives_identical_predictions(
    encoder: Encoder, heart: dict[str, Cohort], tmp_path: Path, fmt: str
) -> None:
    loaded = load_encoder(encoder.save(tmp_path / fmt))
    assert loaded.name == encoder.name and loaded.kind == encoder.kind
    assert loaded.schema == encoder.schema
    assert loaded.source_summary == encoder.source_summary
    target = heart["target"]
    np.testing.assert_array_equal(loaded.embed(target), encoder.embed(target))
    # a model fine-tuned from the loaded encoder is the model fine-tuned from the original
    params = {"strategy": "linear-probe", "epochs": 1, "random_state": 3, "device": "cpu"}
    p_loaded = TransferClassifier(loaded, **params).fit(target).predict_proba(target)
    p_original = TransferClassifier(encoder, **params).fit(target).predict_proba(target)
    np.testing.assert_array_equal(p_loaded, p_original)


def test_transfer_classifier_accepts_the_path_of_a_saved_encoder(
    encoder: Encoder, model: TransferClassifier, saved: dict[str, Path], heart: dict[str, Cohort]
) -> None:
    clf = TransferClassifier(**{**model.get_params(), "encoder": saved["encoder"]})
    target = heart["target"]
    np.testing.assert_array_equal(
        clf.fit(target).predict_proba(target), model.predict_proba(target)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_model_round_trip_gives_identical_predictions(
    model: TransferClassifier, heart: dict[str, Cohort], tmp_path: Path, fmt: str
) -> None:
    loaded = load_model(model.save(tmp_path / fmt))
    target = heart["target"]
    np.testing.assert_array_equal(loaded.predict_proba(target), model.predict_proba(target))
    np.testing.assert_array_equal(loaded.predict(target.X), model.predict(target.X))
    assert list(loaded.feature_names_in_) == list(model.feature_names_in_)
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.alignment_report_ == model.alignment_report_
    assert loaded.training_summary_ == model.training_summary_
    assert loaded.transfer_check_ is None and loaded.ledger_ is None
    assert loaded.get_params()["strategy"] == model.strategy
    assert loaded.model_card() == model.model_card()


# ----------------------------------------------------------------------------- contents
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what", ["encoder", "model"])
def test_files_are_safetensors_and_json_never_pickle(
    encoder: Encoder, model: TransferClassifier, tmp_path: Path, fmt: str, what: str
) -> None:
    obj = encoder if what == "encoder" else model
    files = _files(obj.save(tmp_path / fmt))
    assert set(files) == {"weights.safetensors", "meta.json"}
    for name, data in files.items():
        # pickle streams (protocol 2+) start with PROTO; torch.save writes a zip with data.pkl
        assert not (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
        assert b"data.pkl" not in data, name
    meta = json.loads(files["meta.json"].decode("utf-8"))
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["kind"] == what
    assert meta["weights_sha256"] == hashlib.sha256(files["weights.safetensors"]).hexdigest()
    assert {"torch", "numpy", "graphxfer"} <= set(meta["package_versions"])
    # safetensors: an 8-byte little-endian header length, a JSON header, raw tensor bytes
    weights = files["weights.safetensors"]
    header_len = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_len])
    tensors = load_safetensors(weights)
    assert set(tensors) == set(header) - {"__metadata__"}
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    enc_meta = meta if what == "encoder" else meta["encoder_meta"]
    assert enc_meta["encoder"]["name"] == encoder.name
    assert enc_meta["encoder"]["kind"] == encoder.kind
    assert enc_meta["schema"] == encoder.schema.to_dict()
    if what == "model":
        assert meta["estimator"] == "TransferClassifier"
        assert meta["params"]["encoder"] is None
        assert meta["feature_schema"]["columns"]
        assert meta["training_summary"]["n_rows"] == N_TARGET
        assert meta["ledger"] is None  # not private
        assert meta["fine_tune"]
        assert meta["alignment"] == model.alignment_report_.to_dict()


def _lists(value: Any, path: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _lists(item, f"{path}/{key}")
    elif isinstance(value, list):
        yield path, value
        for i, item in enumerate(value):
            yield from _lists(item, f"{path}[{i}]")


def test_source_summary_holds_no_record(
    encoder: Encoder, saved: dict[str, Path], heart: dict[str, Cohort]
) -> None:
    summary = encoder.source_summary
    assert summary["n_rows"] == N_SOURCE
    assert summary["sites"] == {"cleveland": 303, "hungarian": 294}
    assert set(summary["marginals"]) == set(heart["source"].schema.feature_names)
    for col, marginal in summary["marginals"].items():
        if marginal["kind"] == "numeric":
            assert len(marginal["quantiles"]) == 101, col
        else:
            assert sum(marginal["frequencies"].values()) == pytest.approx(1.0), col
    # no per-record list anywhere in the metadata (the summary, featurizer state, history...)
    for what in ("encoder", "model"):
        meta = _read_meta(saved[what])
        per_row = [p for p, v in _lists(meta) if len(v) in (N_SOURCE, N_TARGET)]
        assert not per_row, f"{what} meta.json holds per-record lists at {per_row}"
    ids = set(heart["source"].data["record_id"].astype(str))
    text = (saved["encoder"] / "meta.json").read_text(encoding="utf-8")
    assert not [i for i in list(ids)[:50] if f'"{i}"' in text]


# ----------------------------------------------------------------------------- refusals
def _tamper_hash(path: Path) -> None:
    raw = bytearray((path / "weights.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (path / "weights.safetensors").write_bytes(bytes(raw))


def _tamper_version(path: Path) -> None:
    meta = _read_meta(path)
    meta["format_version"] = FORMAT_VERSION + 1
    _write_meta(path, meta)


def _tamper_nan(path: Path) -> None:
    """NaN in the first float tensor, with a sha256 that matches the tampered weights."""
    tensors = load_safetensors((path / "weights.safetensors").read_bytes())
    name = next(k for k, t in sorted(tensors.items()) if t.is_floating_point() and t.numel())
    bad = tensors[name].clone()
    bad.view(-1)[0] = float("nan")
    tensors[name] = bad
    weights = save_safetensors(tensors)
    (path / "weights.safetensors").write_bytes(weights)
    meta = _read_meta(path)
    meta["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    _write_meta(path, meta)


def _tamper_encoder_name(path: Path) -> None:
    meta = _read_meta(path)
    enc_meta = meta["encoder_meta"] if "encoder_meta" in meta else meta
    enc_meta["encoder"]["name"] = "os.system"
    _write_meta(path, meta)


TAMPERING = {
    "hash": (_tamper_hash, "sha256"),
    "format-version": (_tamper_version, "format version"),
    "nan-tensor": (_tamper_nan, "NaN or inf"),
    "unknown-encoder": (_tamper_encoder_name, "unknown (tabular|graph) encoder 'os.system'"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
@pytest.mark.parametrize("what", ["encoder", "model"])
def test_tampered_files_are_refused(
    saved: dict[str, Path], tmp_path: Path, tamper: str, what: str
) -> None:
    path = Path(shutil.copytree(saved[what], tmp_path / what))
    _loader(what)(path)  # the untouched copy loads
    change, message = TAMPERING[tamper]
    change(path)
    with pytest.raises(ModelFileError, match=message):
        _loader(what)(path)


@pytest.mark.parametrize("what", ["encoder", "model"])
def test_tampered_zip_is_refused(saved: dict[str, Path], tmp_path: Path, what: str) -> None:
    files = _files(saved[what])
    raw = bytearray(files["weights.safetensors"])
    raw[len(raw) // 2] ^= 0x01
    files["weights.safetensors"] = bytes(raw)
    path = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    with pytest.raises(ModelFileError, match="sha256"):
        _loader(what)(path)


def test_pickles_and_kind_mixups_are_refused(saved: dict[str, Path], tmp_path: Path) -> None:
    import pickle

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(ModelFileError, match="never reads pickles"):
        load_model(pkl)
    folder = Path(shutil.copytree(saved["model"], tmp_path / "m"))
    (folder / "meta.json").write_bytes(pickle.dumps({"format_version": FORMAT_VERSION}))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(folder)
    with pytest.raises(ModelFileError, match="use load_model"):
        load_encoder(saved["model"])
    with pytest.raises(ModelFileError, match="use load_encoder"):
        load_model(saved["encoder"])


# ----------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_save_leaves_the_old_file_intact(
    encoder: Encoder,
    model: TransferClassifier,
    heart: dict[str, Cohort],
    tmp_path: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = heart["target"]
    model_path = model.save(tmp_path / fmt)
    encoder_path = encoder.save(tmp_path / f"encoder-{fmt}")
    before = {p.name for p in tmp_path.iterdir()}

    class Interrupted(Exception):
        pass

    # the crash comes after the weights are written, while meta.json is being written
    if fmt.endswith(".zip"):
        writestr = zipfile.ZipFile.writestr

        def crashing_writestr(self: zipfile.ZipFile, name: Any, *args: Any, **kw: Any) -> Any:
            if name == "meta.json":
                raise Interrupted("power cut while writing meta.json")
            return writestr(self, name, *args, **kw)

        monkeypatch.setattr(zipfile.ZipFile, "writestr", crashing_writestr)
    else:
        write_text = Path.write_text

        def crashing_write_text(self: Path, *args: Any, **kw: Any) -> Any:
            if self.name == "meta.json":
                raise Interrupted("power cut while writing meta.json")
            return write_text(self, *args, **kw)

        monkeypatch.setattr(Path, "write_text", crashing_write_text)

    refit = TransferClassifier(**{**model.get_params(), "random_state": 99}).fit(target)
    assert not np.array_equal(refit.predict_proba(target), model.predict_proba(target))
    with pytest.raises(Interrupted):
        refit.save(model_path)
    with pytest.raises(Interrupted):
        encoder.save(encoder_path)
    monkeypatch.undo()

    assert {p.name for p in tmp_path.iterdir()} == before, "temporary files were left behind"
    np.testing.assert_array_equal(
        load_model(model_path).predict_proba(target), model.predict_proba(target)
    )
    np.testing.assert_array_equal(load_encoder(encoder_path).embed(target), encoder.embed(target))
