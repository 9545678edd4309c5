"""``graphxfer pretrain`` says when early stopping ended it; ``graphxfer schema infer`` and
``schema check``; the command line's modules import no one in a circle."""

from __future__ import annotations

import ast
import doctest
import json
from pathlib import Path

import pandas as pd
import pytest

import graphxfer.cli._train
from graphxfer import Schema, load_encoder
from graphxfer.cli import early_stopping_note, main

ROOT = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------------------ early stopping
def test_early_stopping_is_reported_from_the_encoder_history(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc = tmp_path / "enc"
    assert main(["pretrain", "--data", str(raw_csv), "--target", "disease", "--id", "patient_id",
                 "--group", "site", "--sites", "cleveland,hungarian", "--encoder", "mlp",
                 "--epochs", "40", "--patience", "2", "--no-progress", "--device", "cpu",
                 "--out", str(enc)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    history = load_encoder(enc).history
    stopped = history[-1]["epoch"]
    best = min(history, key=lambda row: row["val_loss"])
    assert stopped < 40
    assert lines[0] == (
        f"early stopping: stopped at epoch {stopped} of 40, best validation loss "
        f"{best['val_loss']:.4g} at epoch {best['epoch']}"
    )


def test_early_stopping_note() -> None:
    rows = [{"epoch": e, "val_loss": v} for e, v in enumerate([0.7, 0.6, 0.6, 0.65], start=1)]
    assert early_stopping_note(rows, 4) is None  # every requested epoch ran
    assert early_stopping_note(rows, 10) == (
        "early stopping: stopped at epoch 4 of 10, best validation loss 0.6 at epoch 2"
    )
    no_validation = [{"epoch": 1, "val_loss": None}]
    assert early_stopping_note(no_validation, 3) == "early stopping: stopped at epoch 1 of 3"
    assert early_stopping_note([], 3) is None
    failed, _ = doctest.testmod(graphxfer.cli._train, verbose=False)
    assert failed == 0


# ------------------------------------------------------------------------ schema infer / check
def test_schema_infer_prints_or_writes_the_inferred_schema(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["schema", "infer", "--data", str(raw_csv), "--target", "disease",
            "--id", "patient_id", "--group", "site", "--ignore", "fbs"]  # fmt: skip
    assert main(argv) == 0
    printed = Schema.from_dict(json.loads(capsys.readouterr().out))
    expected = Schema.infer(
        pd.read_csv(raw_csv), target="disease", id="patient_id", group="site", ignore=["fbs"],
        name="heart",
    )  # fmt: skip
    assert printed == expected
    assert printed["fbs"].role == "ignore" and "fbs" not in printed.feature_names

    out = tmp_path / "sub" / "schema.json"
    assert main([*argv, "--out", str(out)]) == 0
    assert Schema.from_json(out) == expected
    assert not [p for p in out.parent.iterdir() if p.name != "schema.json"]  # no temp file left
    assert f"wrote {out}" in capsys.readouterr().out


def test_schema_infer_refuses_one_column_in_two_roles(
    raw_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "infer", "--data", str(raw_csv), "--target", "disease",
                 "--id", "site", "--group", "site"]) == 2  # fmt: skip
    assert "'site' is given two roles" in capsys.readouterr().err


def test_schema_check(raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = tmp_path / "schema.json"
    assert main(["schema", "infer", "--data", str(raw_csv), "--target", "disease",
                 "--group", "site", "--out", str(schema)]) == 0  # fmt: skip
    capsys.readouterr()
    check = ["schema", "check", "--schema", str(schema), "--data", str(raw_csv)]
    assert main([*check, "--id", "patient_id"]) == 0  # the schema had no id column
    assert "fits schema" in capsys.readouterr().out

    inferred = Schema.from_json(schema)
    inferred.replace("age", lower=40, upper=120).to_json(schema)
    assert main([*check, "--id", "patient_id"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'age'" in err and "below its lower bound 40" in err

    inferred.to_json(schema)
    frame = pd.read_csv(raw_csv)
    frame.loc[0, "patient_id"] = frame.loc[1, "patient_id"]
    repeated = tmp_path / "repeated.csv"
    frame.to_csv(repeated, index=False)
    check = ["schema", "check", "--schema", str(schema), "--data", str(repeated),
             "--id", "patient_id"]  # fmt: skip
    assert main(check) == 2
    assert "repeats ids" in capsys.readouterr().err
    assert main([*check, "--repeated-ids", "allow"]) == 0


# ------------------------------------------------------------------------ import circles
MODULES = ("graphxfer.cli", "graphxfer.distributed", "graphxfer.demo", "graphxfer._cli_cohorts")


def _graph() -> dict[str, set[str]]:
    """Every import between graphxfer modules, function-level ones included."""
    files = {}
    for file in (ROOT / "graphxfer").rglob("*.py"):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = file

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in files}
    for module, file in files.items():
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                found = resolve(name) if name.startswith("graphxfer") else None
                if found is not None and found != module:
                    edges[module].add(found)
    return edges


def test_command_line_modules_import_no_one_in_a_circle() -> None:
    edges = _graph()
    ours = [m for m in edges if m.startswith(MODULES)]
    assert "graphxfer.cli._train" in ours
    for start in ours:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                assert nxt != start, f"{start} imports itself through {nxt}"
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
