"""The command line: help, the whole job through files, clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graphxfer.cli import main

COMMANDS = ["schema infer", "schema check", "pretrain", "finetune", "predict", "explain",
            "report", "evaluate", "demo", "cohorts"]  # fmt: skip
DATA_COMMANDS = ["pretrain", "finetune", "predict", "explain", "report", "evaluate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"graphxfer {command}" in out and "--config" in out
    if command in DATA_COMMANDS:
        assert "--id COLUMN" in out


def test_help_lists_the_commands_in_the_order_of_the_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    positions = [out.index(f"    {name.split()[0]} ") for name in COMMANDS[1:]]
    assert positions == sorted(positions)


def test_pretrain_and_private_finetune_through_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc, model = tmp_path / "enc", tmp_path / "model.zip"
    common = ["--dataset", "heart-disease", "--no-progress"]
    assert main(["pretrain", *common, "--sites", "cleveland,hungarian", "--encoder", "mlp",
                 "--epochs", "2", "--out", str(enc)]) == 0  # fmt: skip
    assert (enc / "weights.safetensors").is_file() and (enc / "meta.json").is_file()
    config = tmp_path / "finetune.toml"
    config.write_text(
        '[finetune]\nstrategy = "linear-probe"\nepsilon = 3.0\ndp-epochs = 2\ndp-batch-size = 32\n'
    )
    assert main(["finetune", *common, "--sites", "va", "--encoder", str(enc),
                 "--config", str(config), "--out", str(model)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "PrivacyLedger" in out and "fine-tune:linear-probe" in out
    # a DP option given fixes the settings (the encoder's presets are not used)
    assert "DP hyper-parameters (the privacy config as given): epochs 2, expected batch 32" in out


def test_pretrain_linear_with_site_intercepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphxfer import load_encoder

    enc = tmp_path / "enc"
    assert main(["pretrain", "--dataset", "heart-disease", "--no-progress", "--sites",
                 "cleveland,hungarian,switzerland", "--encoder", "linear", "--site-intercepts",
                 "--epochs", "1", "--out", str(enc)]) == 0  # fmt: skip
    assert load_encoder(enc).inner.source_summary_["site_intercepts"] == 3
    mlp = tmp_path / "m"
    assert main(["pretrain", "--dataset", "heart-disease", "--no-progress", "--encoder", "mlp",
                 "--site-intercepts", "--epochs", "1", "--out", str(mlp)]) == 2  # fmt: skip
    assert "exact logistic fit of encoder='linear'" in capsys.readouterr().err
    assert main(["pretrain", "--dataset", "heart-disease", "--no-progress", "--encoder", "auto",
                 "--site-intercepts", "--out", str(tmp_path / "a")]) == 2  # fmt: skip
    assert "--site-intercepts cannot be combined with --encoder auto" in capsys.readouterr().err


@pytest.mark.slow
def test_explain_and_report_through_files(tmp_path: Path) -> None:
    enc, model = tmp_path / "enc", tmp_path / "model.zip"
    common = ["--dataset", "heart-disease", "--no-progress"]
    assert main(["pretrain", *common, "--sites", "cleveland,hungarian", "--encoder", "mlp",
                 "--epochs", "2", "--out", str(enc)]) == 0  # fmt: skip
    assert main(["finetune", *common, "--sites", "va", "--encoder", str(enc), "--epsilon", "3",
                 "--dp-epochs", "2", "--accountant", "rdp", "--out", str(model)]) == 0  # fmt: skip
    assert main(["explain", *common, "--sites", "switzerland", "--model", str(model),
                 "--method", "permutation", "--n-background", "5", "--max-evals", "30",
                 "--out", str(tmp_path / "ex")]) == 0  # fmt: skip
    assert (tmp_path / "ex-explanations.csv").is_file() or any(tmp_path.glob("ex*.csv"))
    html = tmp_path / "r.html"
    assert main(["report", *common, "--sites", "switzerland", "--model", str(model),
                 "--n-global", "20", "--n-background", "5", "--max-evals", "30",
                 "--out", str(html)]) == 0  # fmt: skip
    text = html.read_text()
    assert "Content-Security-Policy" in text
    assert "ε" in text or "epsilon" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["finetune", "--dataset", "heart-disease", "--encoder", "missing-dir", "--out", "x"],
         "does not exist"),
        (["pretrain", "--data", "no-such.csv", "--out", "x"], "does not exist"),
        (["pretrain", "--dataset", "heart-disease", "--sites", "mars", "--out", "x"], "mars"),
        (["pretrain", "--dataset", "heart-disease"], "--out is required"),
        (["report", "--dataset", "heart-disease", "--config", "absent.toml"], "absent.toml"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_with_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("graphxfer: error: ")
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0


def test_unknown_config_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[pretrain]\nencodr = "mlp"\n')
    assert main(["pretrain", "--dataset", "heart-disease", "--out", "x", "--config",
                 str(config)]) == 2  # fmt: skip
    assert "'encodr' is not an option" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["graphxfer.cli", "graphxfer"])
def test_console_script_entry_point_runs(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("graphxfer ")


def test_finetune_and_evaluate_default_to_what_the_python_api_does() -> None:
    import inspect

    from graphxfer import TransferClassifier
    from graphxfer.cli._base import build_parser
    from graphxfer.cli._outputs import CURVE_BASELINES
    from graphxfer.evaluate import transfer_curve

    parsers = build_parser()[1]
    fit = inspect.signature(TransferClassifier).parameters
    finetune = parsers["finetune"]
    assert finetune.get_default("strategy") == fit["strategy"].default == "anchored"
    # None: the private guard is on under --epsilon with anchored, as in the API
    assert finetune.get_default("check_transfer") is fit["check_transfer"].default is None
    curve = inspect.signature(transfer_curve).parameters
    evaluate = parsers["evaluate"]
    assert evaluate.get_default("encoder") == curve["encoder"].default
    assert tuple(evaluate.get_default("strategies").split(",")) == curve["strategies"].default
    assert tuple(evaluate.get_default("baselines").split(",")) == curve["baselines"].default
    assert CURVE_BASELINES[0] == "logistic-source"  # the yardstick's first row
