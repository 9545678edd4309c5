"""DP hyper-parameters chosen by simulating small targets on held-out source sites."""

from __future__ import annotations

import json

import pytest

import graphxfer as gx
from graphxfer import datasets
from graphxfer.tuning import lookup_presets, tune_private

# a simulation pretrains per held-out site and runs a dozen DP fits: tens of seconds
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def presets():
    heart = datasets.load_heart_disease()
    source = heart.select_groups(["cleveland", "hungarian"])
    enc = gx.pretrain(source, "linear", "supervised", progress=False, random_state=0)
    result = tune_private(
        source,
        enc,
        sizes=(60,),
        epsilons=(3.0, None),
        repeats=1,
        grid=((0.05, 5, 1.0), (0.2, 5, 0.3)),
        progress=False,
    )
    return source, enc, result


def test_the_simulation_holds_out_each_source_site_and_never_reads_a_target(presets) -> None:
    _, _, result = presets
    held = sorted(h for fold in result["folds"] for h in fold["held_out"])
    assert held == ["cleveland", "hungarian"]
    assert result["method"].startswith("leave-one-site-out")
    json.dumps(result, allow_nan=False)  # stored with the encoder: plain JSON


def test_each_preset_keeps_the_best_simulated_setting(presets) -> None:
    _, _, result = presets
    private = [e for e in result["entries"] if e["epsilon"] == 3.0]
    public = [e for e in result["entries"] if e["epsilon"] is None]
    assert len(private) == 1 and len(public) == 1
    entry = private[0]
    best = max(entry["table"], key=lambda k: entry["table"][k])
    hp = entry["hyperparameters"]
    assert best == f"lr={hp['learning_rate']} epochs={hp['epochs']} alpha={hp['alpha']}"
    assert entry["simulated"]["fine-tuned"] == entry["table"][best]
    assert set(entry["prior"]) == {"fine-tuned", "zero-shot", "target-only"}
    assert max(entry["prior"].values()) == pytest.approx(1.0)
    assert public[0]["hyperparameters"]["alpha"] in (1.0, 3.0)


def test_presets_reach_the_fit_and_its_model_card(presets) -> None:
    from privacy import PrivacyConfig

    _, enc, result = presets
    enc = gx.encoder.copy_encoder(enc)
    enc.metadata["dp_presets"] = result
    assert lookup_presets(result, 55, 3.0)["n"] == 60
    target = datasets.load_heart_disease().select_groups("va")
    train, _ = target.split(test_size=140 / 200, random_state=0)
    config = PrivacyConfig(epsilon=3.0, accountant="rdp")
    clf = gx.TransferClassifier(enc, privacy=config, check_transfer=False, random_state=0)
    clf.fit(train)
    hp = lookup_presets(result, 60, 3.0)["hyperparameters"]
    assert clf.hyperparameters_["learning_rate"] == hp["learning_rate"]
    assert clf.hyperparameters_["epochs"] == hp["epochs"]
    assert clf.hyperparameters_["alpha"] == hp["alpha"]
    assert "simulated on held-out source sites" in clf.hyperparameters_["source"]
    assert clf.model_card()["hyperparameters"]["source"] == clf.hyperparameters_["source"]
