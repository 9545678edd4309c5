"""Choosing the encoder on the source: folds, scores, the leaderboard and zero-shot predictions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import graphxfer
from graphxfer import Cohort, Schema, TransferClassifier, datasets, load_encoder
from graphxfer.cli import main
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError, ModelFileError
from graphxfer.finetune import module_proba
from graphxfer.selection import (
    CANDIDATE_GRIDS,
    Candidate,
    Leaderboard,
    default_candidates,
    evaluate_candidates,
    registered_encoders,
    select_encoder,
    source_folds,
)
from tabular.registry import ENCODERS

SOURCE_SITES = ["cleveland", "hungarian"]
HAS_LINEAR = "linear" in registered_encoders()

# tiny candidates: these tests are about the selection, not about skill
LINEAR = {"encoder": "linear", "params": {"epochs": 3, "lr": 1e-2, "batch_size": 64}}
MLP = {"encoder": "mlp", "params": {"epochs": 2, "encoder_params": {"width": 8, "n_blocks": 1}}}
MLP_B = {
    "encoder": "mlp",
    "params": {"epochs": 2, "weight_decay": 0.1, "encoder_params": {"width": 8, "n_blocks": 1}},
}
SAGE = {"encoder": "graphsage", "params": {"epochs": 1, "hidden": 8, "k": 5}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def heart() -> Cohort:
    return datasets.load_heart_disease()


@pytest.fixture(scope="module")
def source(heart: Cohort) -> Cohort:
    return heart.select_groups(SOURCE_SITES)


@pytest.fixture(scope="module")
def selected(source: Cohort) -> Encoder:
    """An encoder chosen among two small candidates (one clearly weaker)."""
    tiny = {"width": 4, "n_blocks": 1}
    weak = {"encoder": "mlp", "params": {"epochs": 1, "lr": 1e-6, "validation_fraction": 0.0,
                                         "encoder_params": tiny}}  # fmt: skip
    small = {"width": 16, "n_blocks": 1}
    strong = {"encoder": "mlp", "params": {"epochs": 10, "lr": 3e-3, "batch_size": 64,
                                           "encoder_params": small}}  # fmt: skip
    return graphxfer.pretrain(
        source, "auto", candidates=[weak, strong], random_state=0, progress=False, device="cpu",
        dp_presets=False,
    )  # fmt: skip


def _board(encoder: Encoder) -> Leaderboard:
    return Leaderboard.from_dict(encoder.metadata["selection"])


# ----------------------------------------------------------------------------- folds
def test_loso_holds_out_every_source_site_once_and_never_the_target(heart: Cohort) -> None:
    source = heart.select_groups(["cleveland", "hungarian", "switzerland"])
    method, folds = source_folds(source)
    assert method == "leave-one-site-out"
    held = [site for f in folds for site in f.held_out]
    assert sorted(held) == ["cleveland", "hungarian", "switzerland"]  # each exactly once
    assert "va" not in held
    sites = source.groups.astype(str).to_numpy()
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(len(source)))  # the test parts partition it
    for f in folds:
        assert set(sites[f.test]) == set(f.held_out)
        assert not set(sites[f.train]) & set(f.held_out)
        assert len(f.train) + len(f.test) == len(source)


def test_more_sites_than_folds_still_hold_each_site_out_once(heart: Cohort) -> None:
    method, folds = source_folds(heart, max_folds=2)
    assert method == "leave-sites-out (2 folds)" and len(folds) == 2
    held = [site for f in folds for site in f.held_out]
    assert sorted(held) == sorted(set(heart.groups.astype(str)))
    sites = heart.groups.astype(str).to_numpy()
    for f in folds:
        assert set(sites[f.test]) == set(f.held_out)
        assert not set(sites[f.train]) & set(f.held_out)


def test_single_site_falls_back_to_stratified_kfold(heart: Cohort) -> None:
    cleveland = heart.select_groups("cleveland")
    method, folds = source_folds(cleveland, random_state=0)
    assert method == "stratified 5-fold" and len(folds) == 5
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(cleveland)))
    rate = cleveland.y.mean()
    for f in folds:
        assert abs(cleveland.y[f.test].mean() - rate) < 0.05  # stratified
    board = evaluate_candidates(cleveland, [MLP], cv=3, random_state=0, progress=False)
    assert board.method == "stratified 3-fold"
    assert [u["name"] for u in board.units] == ["fold 1", "fold 2", "fold 3"]
    assert all(v is not None for v in board.results[0]["auroc"].values())


def test_repeated_person_ids_give_grouped_kfold() -> None:
    rng = np.random.default_rng(0)
    n_persons = 60
    person = np.repeat(np.arange(n_persons), 2)
    x = rng.normal(size=len(person))
    y = (x + rng.normal(scale=0.5, size=len(person)) > 0).astype(int)
    df = pd.DataFrame({"pid": [f"p{p}" for p in person], "x": x, "y": y})
    cohort = Cohort(df, Schema.infer(df, target="y", id="pid"), repeated_ids="allow")
    method, folds = source_folds(cohort, cv=3, random_state=0)
    assert method == "grouped 3-fold by person"
    for f in folds:
        assert not set(person[f.train]) & set(person[f.test])  # a person never straddles


def test_too_few_of_an_outcome_for_kfold_is_a_clear_error(heart: Cohort) -> None:
    small = heart.select_groups("cleveland").subset(np.arange(12))
    with pytest.raises(GraphxferError, match="persons of each outcome"):
        source_folds(small, cv=10)


# ----------------------------------------------------------------------------- candidates
def test_default_candidates_come_from_the_registry() -> None:
    registered = registered_encoders()
    fast = default_candidates("fast")
    names = {c.encoder for c in fast}
    assert {"mlp", "graphsage"} <= names
    assert ("linear" in names) == HAS_LINEAR
    assert "ft-transformer" not in names  # too slow on CPU for the fast set
    assert all(c.objective in ("supervised", "supervised+masked") for c in fast)
    thorough = {c.encoder for c in default_candidates("thorough")}
    assert thorough == set(registered)  # every registered encoder takes part
    with pytest.raises(GraphxferError, match="choose one of"):
        default_candidates("quick")


def test_a_newly_registered_encoder_is_a_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    mlp_cls = ENCODERS.get("mlp")

    class Widened(mlp_cls):  # type: ignore[misc, valid-type]
        name = "widened-mlp"

    monkeypatch.setitem(ENCODERS._items, "widened-mlp", Widened)
    assert registered_encoders()["widened-mlp"] == "tabular"
    assert "widened-mlp" in {c.encoder for c in default_candidates("thorough")}
    assert "widened-mlp" not in CANDIDATE_GRIDS


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"encoder": "nope"}, "unknown encoder 'nope'"),
        ({"encoder": "mlp", "objective": "masked"}, "trains no outcome head"),
        ({"encoder": "graphsage", "objective": "dgi"}, "trains no outcome head"),
        ({"encoder": "mlp", "params": {"widht": 3}}, r"unknown parameters \['widht'\]"),
        ({"encoder": "mlp", "params": {"random_state": 3}}, "set by the selection"),
        ({"encoder": "mlp", "params": {"lr": float("nan")}}, "JSON-ready"),
        ({"model": "mlp"}, "unknown keys"),
    ],
)
def test_bad_candidates_are_refused(source: Cohort, spec: dict[str, Any], match: str) -> None:
    with pytest.raises(GraphxferError, match=match):
        evaluate_candidates(source, [spec], progress=False)


def test_candidate_round_trips_and_labels(source: Cohort) -> None:
    cand = Candidate.from_dict(MLP_B)
    assert Candidate.from_dict(cand.to_dict()) == cand
    assert cand.label == "mlp/supervised epochs=2 weight_decay=0.1 width=8 n_blocks=1"
    with pytest.raises(GraphxferError, match="repeat"):
        evaluate_candidates(source, [MLP, MLP], progress=False)


# ----------------------------------------------------------------------------- scores
def test_leaderboard_scores_are_the_held_out_aurocs(source: Cohort) -> None:
    cands = [LINEAR, MLP] if HAS_LINEAR else [MLP, MLP_B]
    board = evaluate_candidates(source, cands, random_state=0, progress=False, device="cpu")
    assert board.method == "leave-one-site-out"
    assert [u["name"] for u in board.units] == SOURCE_SITES
    assert all(u["scored"] for u in board.units)
    for row in board.results:
        values = list(row["auroc"].values())
        assert row["mean"] == pytest.approx(np.mean(values))
        assert row["worst"] == pytest.approx(min(values))
        assert row["score"] == pytest.approx((row["mean"] + row["worst"]) / 2)
        assert row["seconds"] > 0
    # recompute one held-out AUROC by hand: pretrain on cleveland, predict hungarian
    cand = Candidate.from_dict(cands[0])
    enc = graphxfer.pretrain(
        source.select_groups("cleveland"), cand.encoder, cand.objective,
        random_state=board.random_state, progress=False, device="cpu", **cand.params,
    )  # fmt: skip
    held = source.select_groups("hungarian")
    expected = roc_auc_score(held.y, enc.predict_proba(held))
    assert board.results[0]["auroc"]["hungarian"] == pytest.approx(expected, abs=1e-9)


def test_winner_is_the_best_scoring_candidate_pretrained_on_all(
    selected: Encoder, source: Cohort
) -> None:
    board = _board(selected)
    scores = [r["score"] for r in board.results]
    assert board.winner["score"] == max(scores)
    assert board.winner is board.results[int(np.argmax(scores))]
    assert board.best.params["epochs"] == 10  # the deliberately weak candidate lost
    assert selected.name == board.best.encoder
    assert selected.source_summary["n_rows"] == len(source)  # the winner saw the whole source
    again = graphxfer.pretrain(
        source, board.best.encoder, board.best.objective, random_state=board.random_state,
        progress=False, device="cpu", **board.best.params,
    )  # fmt: skip
    np.testing.assert_allclose(selected.predict_proba(source), again.predict_proba(source))
    assert board.to_frame().index.tolist() == [1, 2]
    text = board.format()
    assert "cleveland" in text and "hungarian" in text and "score" in text


def test_leaderboard_is_saved_and_reloaded_with_the_encoder(
    selected: Encoder, tmp_path: Path
) -> None:
    selected.metadata["note"] = {"kept": [1, 2]}  # other entries travel too
    try:
        path = selected.save(tmp_path / "enc.zip")
        loaded = load_encoder(path)
    finally:
        del selected.metadata["note"]
    assert loaded.metadata["note"] == {"kept": [1, 2]}
    assert loaded.metadata["selection"] == selected.metadata["selection"]
    board = _board(loaded)
    assert board.results == _board(selected).results
    assert "final_fit_seconds" in loaded.metadata["selection"]
    np.testing.assert_allclose(
        loaded.predict_proba(datasets.load_heart_disease(sites=["va"])),
        selected.predict_proba(datasets.load_heart_disease(sites=["va"])),
    )


def test_files_without_metadata_still_load(selected: Encoder) -> None:
    from graphxfer.encoder._encoder import PRECISION_TENSOR

    tensors, meta = selected.to_state()
    del meta["metadata"]
    with pytest.raises(ModelFileError, match="declares no head precision"):
        Encoder.from_state(tensors, meta)
    del tensors[PRECISION_TENSOR]  # as a file written before the metadata existed
    assert Encoder.from_state(tensors, meta).metadata == {}
    meta["metadata"] = ["not", "a", "dict"]
    with pytest.raises(ModelFileError, match="metadata"):
        Encoder.from_state(tensors, meta)
    selected.metadata["bad"] = float("nan")
    try:
        with pytest.raises(GraphxferError, match="JSON-ready"):
            selected.to_state()
    finally:
        del selected.metadata["bad"]


def test_large_sources_are_subsampled_for_the_selection_only(source: Cohort) -> None:
    board = evaluate_candidates(source, [MLP], max_rows=300, random_state=0, progress=False)
    assert board.n_source == len(source)
    assert 280 <= board.n_used <= 320
    sizes = {u["name"]: u["n"] for u in board.units}
    assert set(sizes) == set(SOURCE_SITES)  # both sites kept, in proportion
    assert abs(sizes["cleveland"] / board.n_used - 303 / 597) < 0.05


# ----------------------------------------------------------------------------- predict_proba
def test_predict_proba_is_the_zero_shot_classifier_output(source: Cohort, heart: Cohort) -> None:
    target = heart.select_groups("va")
    for spec in (MLP, SAGE):
        enc = graphxfer.pretrain(
            source, spec["encoder"], random_state=0, progress=False, device="cpu",
            **spec["params"],
        )  # fmt: skip
        proba = enc.predict_proba(target)
        assert proba.shape == (len(target),) and proba.dtype == np.float64
        assert ((proba >= 0) & (proba <= 1)).all()
        module, make_inputs, _ = enc.fine_tunable(enc.schema.features, random_state=0)
        np.testing.assert_allclose(proba, module_proba(module, make_inputs(target.X)), atol=1e-6)
        np.testing.assert_allclose(enc.predict_proba(target.X), proba)


def test_predict_proba_of_a_self_supervised_encoder_is_a_clear_error(source: Cohort) -> None:
    enc = graphxfer.pretrain(
        source, "mlp", "masked", epochs=1, encoder_params={"width": 8, "n_blocks": 1},
        random_state=0, progress=False, device="cpu",
    )  # fmt: skip
    with pytest.raises(GraphxferError, match="self-supervised objective 'masked'"):
        enc.predict_proba(source)


# ----------------------------------------------------------------------------- pretrain/CLI
def test_auto_rejects_options_that_belong_to_candidates(source: Cohort) -> None:
    with pytest.raises(GraphxferError, match=r"\['epochs'\] are not options"):
        graphxfer.pretrain(source, "auto", epochs=3)
    with pytest.raises(GraphxferError, match="objective is chosen among the candidates"):
        graphxfer.pretrain(source, "auto", "masked")


def test_selected_heart_encoder_fine_tunes(source: Cohort, heart: Cohort) -> None:
    cands = [LINEAR, MLP] if HAS_LINEAR else [MLP]
    enc = select_encoder(source, cands, random_state=0, progress=False, device="cpu")
    assert enc.name in {c["encoder"] for c in cands}
    train, test = heart.select_groups("va").split(test_size=0.3, random_state=0)
    clf = TransferClassifier(enc, strategy="linear-probe", epochs=2, random_state=0)
    clf.fit(train)
    assert clf.predict_proba(test).shape == (len(test), 2)


def test_cli_auto_prints_the_leaderboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "candidates.json"
    spec.write_text(json.dumps([MLP, MLP_B]))
    out = tmp_path / "enc"
    assert main(["pretrain", "--dataset", "heart-disease", "--sites", "cleveland,hungarian",
                 "--encoder", "auto", "--candidates", str(spec), "--no-progress", "--no-dp-presets",
                 "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "leave-one-site-out" in printed and "score" in printed and "hungarian" in printed
    assert len(_board(load_encoder(out)).results) == 2
    assert main(["pretrain", "--dataset", "heart-disease", "--encoder", "auto",
                 "--epochs", "3", "--out", str(out)]) == 2  # fmt: skip
    assert "--epochs cannot be combined with --encoder auto" in capsys.readouterr().err
    assert main(["pretrain", "--dataset", "heart-disease", "--encoder", "auto",
                 "--candidates", "nothing.json", "--out", str(out)]) == 2  # fmt: skip
    assert "neither" in capsys.readouterr().err


@pytest.mark.slow
def test_default_selection_on_heart(source: Cohort) -> None:
    enc = graphxfer.pretrain(
        source, "auto", random_state=0, progress=False, device="cpu", dp_presets=False
    )
    board = _board(enc)
    assert {r["candidate"]["encoder"] for r in board.results} == {
        c.encoder for c in default_candidates("fast")
    }
    assert board.winner["score"] > 0.8
    assert board.seconds < 180


@pytest.mark.parametrize("name", ["graphxfer.selection", "graphxfer.candidates"])
def test_docstring_examples_run(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_parts_of_the_selection_import_from_graphxfer_selection() -> None:
    import graphxfer.candidates
    import graphxfer.folds
    import graphxfer.leaderboard
    import graphxfer.selection

    for part in (graphxfer.candidates, graphxfer.folds, graphxfer.leaderboard):
        for name in part.__all__:
            if name in graphxfer.selection.__all__:
                assert getattr(graphxfer.selection, name) is getattr(part, name), name
    assert set(graphxfer.selection.__all__) <= set(dir(graphxfer.selection))
