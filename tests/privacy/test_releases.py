"""What a private fit releases: no replayable noise, nothing computed from the target's
records outside the ledger, budgets that compose across fits, evaluations kept apart."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import graphxfer
import privacy.noise as dp_noise
import privacy.training as training
from graphxfer import Cohort, Schema, TransferClassifier, datasets
from graphxfer.cli import main
from graphxfer.exceptions import GraphxferError
from graphxfer.release import (
    EVALUATION_TITLE,
    format_alignment,
    read_evaluation,
    released_alignment,
)
from privacy import (
    BudgetExceededError,
    LedgerEntry,
    LedgerFormatError,
    PrivacyConfig,
    PrivacyLedger,
    train_private,
)

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")

DP = {"epsilon": 1.0, "epochs": 2, "batch_size": 16}
FIT = {"strategy": "linear-probe", "random_state": 0, "device": "cpu"}
VARIANT = "thal-zz-variant"  # a category only the target has
N_VARIANT = 37  # records carrying it
N_TRAIN = 193  # the target's training records (a positive rate with many digits)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def heart() -> Cohort:
    return datasets.load_heart_disease()


@pytest.fixture(scope="module")
def encoder(heart: Cohort) -> Any:
    with torch.random.fork_rng(devices=[]):
        return graphxfer.pretrain(
            heart.select_groups(["cleveland", "hungarian"]),
            "mlp",
            epochs=1,
            progress=False,
            random_state=0,
            device="cpu",
        )


@pytest.fixture(scope="module")
def va(heart: Cohort) -> Cohort:
    return heart.select_groups("va")


def _marked_target(va: Cohort, *, variant: bool) -> tuple[pd.DataFrame, Schema]:
    """The VA records coded differently from the source: chest pain type 4 is 'asympt'
    (recoded at fit time) and, with ``variant``, a thal category the source lacks."""
    data = va.data.iloc[:N_TRAIN].copy()
    data["cp"] = data["cp"].replace({"4": "asympt"})
    columns = []
    for col in va.schema.columns:
        spec = col.to_dict()
        if col.name == "cp":
            spec["categories"] = ["1", "2", "3", "asympt"]
        if col.name == "thal" and variant:
            spec["categories"] = [*col.categories, VARIANT]
        columns.append(graphxfer.Column.from_dict(spec))
    if variant:
        rows = data.index[data["thal"].isna()][:N_VARIANT]
        data.loc[rows, "thal"] = VARIANT
    return data, Schema(columns, name="va-private")


RECODE = {"cp": {"asympt": "4"}}


@pytest.fixture(scope="module")
def target(va: Cohort) -> Cohort:
    data, schema = _marked_target(va, variant=True)
    return Cohort(data, schema, unknown="map", name="va-private")


# ----------------------------------------------------------------------------- 1. replay
def _weights(clf: TransferClassifier) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in clf.module_.parameters()])


def test_the_stored_seed_does_not_replay_a_private_fit(
    encoder: Any, va: Cohort, tmp_path: Path
) -> None:
    """Refitting with the random_state stored in the model file used to reproduce the
    released weights exactly (and differ on D minus one record): membership with certainty."""
    config = PrivacyConfig(**DP)
    released = TransferClassifier(encoder, privacy=config, **FIT).fit(va)
    meta = json.loads((released.save(tmp_path / "m") / "meta.json").read_text())
    seed = meta["params"]["random_state"]
    assert seed == 0  # still stored: it seeds only the non-private parts
    same = TransferClassifier(encoder, privacy=config, **{**FIT, "random_state": seed}).fit(va)
    minus_one = TransferClassifier(encoder, privacy=config, **{**FIT, "random_state": seed})
    minus_one.fit(va.subset(np.arange(1, len(va))))
    d_same = float((_weights(released) - _weights(same)).norm())
    d_minus_one = float((_weights(released) - _weights(minus_one)).norm())
    assert d_same > 0
    # the refit on D is as far from the release as a fit on D minus one record: the seed no
    # longer tells D from D minus one
    assert 0.2 < d_same / d_minus_one < 5.0


def test_sampling_and_noise_come_from_secure_generators(
    make_net: Callable[..., Any], make_data: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opacus import PrivacyEngine

    made: list[torch.Generator] = []
    secure = dp_noise.secure_generator

    def spy(device: Any = "cpu") -> torch.Generator:
        made.append(secure(device))
        return made[-1]

    monkeypatch.setattr(dp_noise, "secure_generator", spy)

    def seeded(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a private run seeded a generator from random_state")

    for module in [m for name, m in sys.modules.items() if name.startswith("privacy.")]:
        if hasattr(module, "torch_generator"):
            monkeypatch.setattr(module, "torch_generator", seeded)
    engines: list[tuple[Any, Any]] = []
    make_private = PrivacyEngine.make_private

    def capture(self: Any, **kwargs: Any) -> Any:
        out = make_private(self, **kwargs)
        engines.append((out[1], out[-1]))  # the DP optimizer and the DP data loader
        return out

    monkeypatch.setattr(PrivacyEngine, "make_private", capture)
    X, y = make_data(n=100)
    config = PrivacyConfig(epsilon=1.0, epochs=1, batch_size=10, accountant="rdp")
    train_private(make_net(), X, y, config=config, random_state=0, progress=False, device="cpu")
    ((optimizer, loader),) = engines
    assert len(made) == 2
    assert optimizer.generator is made[1]  # Gaussian noise
    assert loader.batch_sampler.generator is made[0]  # Poisson sampling
    # person-level DP-SGD draws its own noise and samples from the same kind of generators
    persons = np.repeat(np.arange(50), 2)
    train_private(make_net(), X, y, config=config, person_index=persons, progress=False,
                  device="cpu")  # fmt: skip
    assert len(made) == 4


@pytest.mark.parametrize("hardened", [False, True])
def test_gaussian_noise_has_the_calibrated_spread(hardened: bool) -> None:
    gen = dp_noise.secure_generator("cpu")
    like = torch.zeros(200_000)
    noise = dp_noise.gaussian_noise(2.5, like, gen, hardened=hardened)
    assert noise.shape == like.shape and noise.dtype == like.dtype
    assert abs(float(noise.mean())) < 0.03 and float(noise.std()) == pytest.approx(2.5, rel=0.01)
    assert torch.equal(dp_noise.gaussian_noise(0.0, like, gen, hardened=hardened), like)


# ----------------------------------------------------------------------------- 2. scanning
def _numbers(value: float) -> list[str]:
    """How artefacts print a float: JSON/repr, and 3 and 4 significant digits.

    A rounded form that keeps fewer than 3 significant digits (a loss of 0.60002 prints as
    ``0.6`` at 4 digits) is left out: it no longer identifies the value, and it matches
    public numbers such as a sampling rate of 0.6.
    """
    rounded = [f"{value:.4g}", f"{value:.3g}"]
    return [repr(float(value))] + [t for t in rounded if _significant(t) >= 3]


def _significant(token: str) -> int:
    """Significant digits of a printed number (``"0.6"`` -> 1, ``"0.593"`` -> 3)."""
    mantissa = token.lower().split("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0"))


def _found(token: str, text: str) -> bool:
    """``token`` as a whole number or word of ``text`` (not inside a longer number)."""
    return re.search(rf"(?<![\w.]){re.escape(token)}(?![\w])", text) is not None


class Secrets:
    """Values computed from the target's training records, and where they would show."""

    def __init__(self, model: TransferClassifier, target: Cohort, *, variant: bool) -> None:
        rate = float(target.y.mean())
        self.numbers = {"positive rate": [*_numbers(rate), f"{rate:.1%}"]}
        losses = [h["loss"] for p in model.fine_tune_["phases"] for h in p["history"]]
        assert losses, "the fit keeps its losses in memory, for debugging"
        for i, loss in enumerate(losses):
            self.numbers[f"loss {i}"] = _numbers(loss)
        recoded = model.alignment_report_.recoded["cp"]
        assert recoded == int((target.data["cp"] == "asympt").sum()) > 0
        self.phrases = {
            "recode count": [f'"cp": {recoded}', f"cp ({recoded} values)"],
        }
        if variant:
            assert model.alignment_report_.unknown_categories == {"thal": N_VARIANT}
            self.phrases["unknown count"] = [f'"thal": {N_VARIANT}', f"thal ({N_VARIANT})"]
            self.phrases["unknown count in a warning"] = [f"{N_VARIANT} value(s)"]
            self.phrases["unseen category"] = [VARIANT]

    def leaks(self, text: str) -> list[str]:
        found = [
            f"{what}: {token!r}"
            for what, tokens in self.numbers.items()
            for token in tokens
            if _found(token, text)
        ]
        found += [
            f"{what}: {token!r}"
            for what, tokens in self.phrases.items()
            for token in tokens
            if token in text
        ]
        return found


def _messages(caught: Iterable[warnings.WarningMessage]) -> str:
    return "\n".join(f"{w.category.__name__}: {w.message}" for w in caught)


@pytest.fixture(scope="module")
def private_fit(encoder: Any, target: Cohort) -> tuple[TransferClassifier, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), recode=RECODE, **FIT)
        clf.fit(target)
    return clf, _messages(caught)


def test_the_scan_finds_what_a_non_private_fit_records(
    encoder: Any, target: Cohort, tmp_path: Path
) -> None:
    """The scan is meaningful: formatted the way artefacts print them, the same values do
    show in a non-private fit's model file (which keeps its behaviour) and in its output."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = TransferClassifier(encoder, epochs=2, recode=RECODE, **FIT).fit(target)
    secrets = Secrets(clf, target, variant=True)
    meta = (clf.save(tmp_path / "open") / "meta.json").read_text()
    leaks = secrets.leaks(meta)
    for what in ("positive rate", "loss 0", "loss 1", "recode count", "unknown count"):
        assert any(leak.startswith(what) for leak in leaks), what
    shown = format_alignment(released_alignment(clf.alignment_report_, private=False))
    assert f"thal ({N_VARIANT})" in shown and "cp (" in shown
    assert VARIANT in _messages(caught) and f"{N_VARIANT} value(s)" in _messages(caught)


def test_a_private_fit_warns_without_counts_or_values(
    private_fit: tuple[TransferClassifier, str], target: Cohort
) -> None:
    clf, messages = private_fit
    assert "UnknownCategoryWarning" in messages  # the warning path was taken ...
    assert Secrets(clf, target, variant=True).leaks(messages) == []  # ... and stripped


def test_model_file_and_card_hold_nothing_from_the_records_outside_the_ledger(
    private_fit: tuple[TransferClassifier, str], target: Cohort, tmp_path: Path
) -> None:
    clf, _ = private_fit
    secrets = Secrets(clf, target, variant=True)
    path = clf.save(tmp_path / "private")
    meta_text = (path / "meta.json").read_text()
    assert secrets.leaks(meta_text) == []
    assert secrets.leaks(json.dumps(clf.model_card(), default=str)) == []
    meta = json.loads(meta_text)
    assert meta["alignment"]["recoded"] == {"cp": None}
    assert meta["alignment"]["unknown_categories"] is None
    assert meta["training_summary"]["positive_rate"] is None
    assert all("history" not in p and "seconds" not in p for p in meta["fine_tune"]["phases"])
    assert "metrics" not in meta and "audit" not in meta
    # what is released under DP: the calibration and its ledger entries, and public n
    assert meta["privacy"]["epsilon"] <= DP["epsilon"] + 1e-6
    assert meta["training_summary"]["n_persons"] == N_TRAIN
    loaded = graphxfer.load_model(path)
    assert loaded.model_card() == clf.model_card()
    assert secrets.leaks(json.dumps(loaded.model_card(), default=str)) == []


def test_a_target_only_vocabulary_is_never_inferred_under_dp(encoder: Any, va: Cohort) -> None:
    frame = va.data.drop(columns=["record_id", "site"]).assign(
        smoking=["pipe-zz", "never"] * (len(va) // 2)
    )
    clf = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), **FIT)
    with pytest.raises(GraphxferError, match="'smoking' is not a feature") as exc:
        clf.fit(frame)
    assert "pipe-zz" not in str(exc.value)
    # without DP the vocabulary is learned from the records (and travels with the model)
    open_fit = TransferClassifier(encoder, epochs=1, **FIT).fit(frame)
    assert "pipe-zz" in open_fit.feature_schema_["smoking"].categories


@pytest.fixture(scope="module")
def cli_fit(encoder: Any, va: Cohort, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``graphxfer finetune`` on a private target file, with its output and warnings."""
    folder = tmp_path_factory.mktemp("cli")
    data, schema = _marked_target(va, variant=False)  # the CLI reads unknown='error' cohorts
    data.to_csv(folder / "va.csv", index=False)
    (folder / "schema.json").write_text(json.dumps(schema.to_dict()))
    (folder / "mapping.json").write_text(json.dumps({"recode": RECODE}))
    encoder.save(folder / "enc")
    fitted: list[TransferClassifier] = []
    save = TransferClassifier.save

    def keep(self: TransferClassifier, *args: Any, **kwargs: Any) -> Path:
        fitted.append(self)  # the in-memory fit, to know its losses
        return save(self, *args, **kwargs)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        patch.setattr(TransferClassifier, "save", keep)
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out):
            status = main(["finetune", "--data", str(folder / "va.csv"),
                           "--schema", str(folder / "schema.json"),
                           "--mapping", str(folder / "mapping.json"),
                           "--encoder", str(folder / "enc"), "--strategy", "linear-probe",
                           "--epsilon", "1", "--dp-epochs", "2", "--dp-batch-size", "16",
                           "--ledger", str(folder / "ledger.json"), "--data-id", "va-site",
                           "--no-progress", "--device", "cpu",
                           "--out", str(folder / "model")])  # fmt: skip
    assert status == 0
    (clf,) = fitted
    secrets = Secrets(clf, Cohort(data, schema, name="va-private"), variant=False)
    return {"folder": folder, "out": out.getvalue(), "warnings": _messages(caught),
            "secrets": secrets}  # fmt: skip


def test_cli_finetune_prints_and_saves_nothing_from_the_records(cli_fit: dict[str, Any]) -> None:
    out, secrets, folder = cli_fit["out"], cli_fit["secrets"], cli_fit["folder"]
    assert "PrivacyLedger" in out and "va-site" in out
    assert "recoded   (1): cp" in out and "withheld" in out
    for where in ("out", "warnings"):
        assert secrets.leaks(cli_fit[where]) == [], where
    assert secrets.leaks((folder / "model" / "meta.json").read_text()) == []
    ledger = json.loads((folder / "ledger.json").read_text())
    assert [e["data_id"] for e in ledger["entries"]] == ["va-site"]


def test_cli_report_shows_nothing_from_the_training_records(
    cli_fit: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, secrets = cli_fit["folder"], cli_fit["secrets"]
    html = folder / "report.html"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", "--dataset", "heart-disease", "--sites", "switzerland",
                     "--model", str(folder / "model"), "--method", "gradient",
                     "--n-global", "10", "--n-background", "5", "--records", "0",
                     "--no-progress", "--device", "cpu", "--out", str(html)]) == 0  # fmt: skip
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html.read_text("utf-8"))
    assert "ε (epsilon)" in text and "va-site" in text
    for where, content in {
        "report output": capsys.readouterr().out,
        "warnings": _messages(caught),
        "report": text,
    }.items():
        assert secrets.leaks(content) == [], where


# ----------------------------------------------------------------------------- 3. evaluation
def test_metrics_and_audit_live_in_a_separate_evaluation_file(
    private_fit: tuple[TransferClassifier, str], heart: Cohort, target: Cohort, tmp_path: Path
) -> None:
    clf, _ = private_fit
    held_out = heart.select_groups("switzerland")
    metrics = clf.add_metrics(held_out, n_boot=50)
    audit = clf.audit(target, held_out)
    assert audit["claimed_epsilon"] == pytest.approx(clf.model_card()["privacy"]["epsilon"])
    meta_text = (clf.save(tmp_path / "m") / "meta.json").read_text()
    meta = json.loads(meta_text)
    assert "metrics" not in meta and "audit" not in meta
    assert repr(float(metrics[0]["value"])) not in meta_text
    assert repr(float(audit["attack_auc"])) not in meta_text
    card = clf.model_card()
    assert "metrics" not in card and "audit" not in card
    path = clf.save_evaluation(tmp_path / "evaluation.json")
    record = read_evaluation(path)
    assert record["covered_by_epsilon"] is False and "not covered" in record["note"]
    assert record["metrics"] == json.loads(json.dumps(metrics))
    assert record["audit"]["attack_auc"] == pytest.approx(audit["attack_auc"])
    assert record["model"]["data_id"] == clf.data_id_
    loaded = graphxfer.load_model(tmp_path / "m")
    assert loaded.evaluation() is None  # the model file carries no measurement
    html = graphxfer.report(
        loaded, held_out.subset(np.arange(30)), tmp_path / "r.html", evaluation=path,
        records=[0], method="gradient", n_global=10, n_background=5, progress=False,
    ).read_text(encoding="utf-8")  # fmt: skip
    start = html.index('<section id="section-evaluation">')
    section = html[start : html.index("</section>", start)]
    assert EVALUATION_TITLE in section and "Privacy audit" in section
    assert f"{metrics[0]['value']:.4g}" in section
    card_start = html.index('<section id="section-model_card">')
    assert "Privacy audit" not in html[card_start:start]


def test_an_evaluation_file_must_say_it_is_outside_epsilon(tmp_path: Path) -> None:
    bad = tmp_path / "e.json"
    bad.write_text(json.dumps({"format": "graphxfer.evaluation", "version": 1,
                               "covered_by_epsilon": True, "metrics": []}))  # fmt: skip
    with pytest.raises(GraphxferError, match="covered_by_epsilon=false"):
        read_evaluation(bad)


# ----------------------------------------------------------------------------- 4. the ledger
def _entry(eps: float, data_id: str = "A") -> LedgerEntry:
    return LedgerEntry(mechanism="exponential-quantile", epsilon=eps, delta=0.0,
                       data_id=data_id, purpose="quantile-bounds:age", n_records=100)  # fmt: skip


def test_ledger_files_round_trip_atomically(tmp_path: Path) -> None:
    ledger = PrivacyLedger([_entry(0.2), _entry(0.3, "B")], accountant="rdp")
    path = ledger.save(tmp_path / "sub" / "ledger.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["ledger.json"]  # no temp left
    loaded = PrivacyLedger.load(path)
    assert loaded == ledger and loaded.path == path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PrivacyLedger.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LedgerFormatError, match=r"bad\.json"):
        PrivacyLedger.load(tmp_path / "bad.json")


def test_the_budget_composes_across_fits_through_a_ledger_file(
    encoder: Any, va: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "va-ledger.json"
    common = {**FIT, "ledger": path, "data_id": "va-site"}
    first = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), **common).fit(va)
    spent_first = PrivacyLedger.load(path).total_spent("va-site").epsilon
    second = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), **common).fit(va)
    on_file = PrivacyLedger.load(path)
    assert len(on_file) == 2 and on_file.data_ids == ["va-site"]
    spent = on_file.total_spent("va-site").epsilon
    assert spent > spent_first >= first.fit_ledger_.total_spent().epsilon - 1e-9
    assert second.ledger_ == on_file and len(second.fit_ledger_) == 1
    card = second.model_card()["privacy"]
    assert card["epsilon"] == pytest.approx(second.fit_ledger_.total_spent().epsilon)
    assert card["spent_on_data"]["epsilon"] == pytest.approx(spent)
    assert card["data_id"] == "va-site" and len(card["ledger"]) == 1

    # a third fit would exceed the cap: refused before any training step, nothing recorded
    def no_step(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a training step ran")

    monkeypatch.setattr(training, "train_records", no_step)
    monkeypatch.setattr(training, "train_persons", no_step)
    before = path.read_bytes()
    capped = PrivacyConfig(**DP, total_budget=spent + 0.5)
    third = TransferClassifier(encoder, privacy=capped, **common)
    with pytest.raises(BudgetExceededError) as exc:
        third.fit(va)
    message = str(exc.value)
    assert "data_id='va-site'" in message and f"spent epsilon={spent:.4g}" in message
    assert "#0 fine-tune:linear-probe" in message and "#1 fine-tune:linear-probe" in message
    assert str(path) in message
    assert path.read_bytes() == before and not hasattr(third, "module_")


def test_a_ledger_object_is_charged_and_other_data_sets_stay_out_of_the_model(
    encoder: Any, va: Cohort
) -> None:
    ledger = PrivacyLedger([_entry(0.5, "another-site")])
    clf = TransferClassifier(encoder, privacy=PrivacyConfig(**DP), ledger=ledger, **FIT).fit(va)
    assert len(ledger) == 2 and ledger.data_ids == ["another-site", "target:va"]
    assert clf.data_id_ == "target:va" and clf.ledger_.data_ids == ["target:va"]
    with pytest.raises(GraphxferError, match="ledger must be"):
        TransferClassifier(encoder, privacy=PrivacyConfig(**DP), ledger=3, **FIT).fit(va)
