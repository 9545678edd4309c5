"""The analyst's path on the command line: a raw CSV with an id and a site column, through
``schema infer``, ``pretrain``, ``finetune --test-size``, ``explain``, ``predict`` and ``report``;
every per-record output is keyed by the id."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from graphxfer import Schema
from graphxfer.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``graphxfer argv`` in-process; fail with its stderr unless it exits 0."""
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def test_raw_csv_to_report_keyed_by_id(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema, enc, model = tmp_path / "schema.json", tmp_path / "enc", tmp_path / "model"
    fast = ["--no-progress", "--device", "cpu"]
    data = ["--data", str(raw_csv), "--schema", str(schema)]

    run(["schema", "infer", "--data", str(raw_csv), "--target", "disease",
         "--id", "patient_id", "--group", "site", "--out", str(schema)], capsys)  # fmt: skip
    inferred = Schema.from_json(schema)
    assert inferred.id is not None and inferred.id.name == "patient_id"
    assert inferred.group is not None and inferred.group.name == "site"
    assert "patient_id" not in inferred.feature_names and "site" not in inferred.feature_names

    out = run(["pretrain", *data, "--sites", "cleveland,hungarian", "--encoder", "linear",
               "--epochs", "2", *fast, "--out", str(enc)], capsys)  # fmt: skip
    assert "on 80 records" in out and "early stopping" not in out  # both epochs ran

    out = run(["finetune", *data, "--sites", "va", "--encoder", str(enc),
               "--strategy", "linear-probe", "--epochs", "3", "--test-size", "0.3",
               "--random-state", "1", "--n-boot", "50", *fast, "--out", str(model)],
              capsys)  # fmt: skip
    test_csv = tmp_path / "model-test.csv"
    evaluation = tmp_path / "model-evaluation.json"
    raw = pd.read_csv(raw_csv)
    held_out = pd.read_csv(test_csv)
    va = raw[raw["site"] == "va"]
    # 30 % of the 40 va persons, stratified by outcome, every column as in the raw file
    assert len(held_out) == 12 and list(held_out.columns) == list(raw.columns)
    assert set(held_out["patient_id"]) <= set(va["patient_id"])
    assert held_out["disease"].mean() == pytest.approx(va["disease"].mean(), abs=0.1)
    assert "fine-tuned (linear-probe) on 28 records" in out
    assert "held-out metrics on 12 records" in out and "auroc" in out
    record = json.loads(evaluation.read_text())
    assert {m["on"] for m in record["metrics"]} == {"held-out"}
    assert {m["n"] for m in record["metrics"]} == {12}

    # the held-out file is read again with the same schema, the id column travels along
    test_data = ["--data", str(test_csv), "--schema", str(schema)]
    run(["explain", *test_data, "--model", str(model), "--method", "gradient",
         "--n-background", "5", *fast, "--out", str(tmp_path / "ex")], capsys)  # fmt: skip
    explained = pd.read_csv(tmp_path / "ex.csv")
    assert explained["id"].tolist() == held_out["patient_id"].tolist()
    records = json.loads((tmp_path / "ex.json").read_text())["records"]
    assert [r["id"] for r in records] == held_out["patient_id"].tolist()

    run(["predict", *test_data, "--model", str(model), *fast,
         "--out", str(tmp_path / "p.csv")], capsys)  # fmt: skip
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["patient_id", "prediction"]
    assert predictions["patient_id"].tolist() == held_out["patient_id"].tolist()
    assert predictions["prediction"].to_numpy() == pytest.approx(explained["prediction"])

    chosen = held_out["patient_id"].iloc[[0, 5]].tolist()
    html = tmp_path / "report.html"
    run(["report", *test_data, "--id", "patient_id", "--model", str(model),
         "--records", ",".join(chosen), "--evaluation", str(evaluation),
         "--method", "gradient", "--n-background", "5", *fast, "--out", str(html)],
        capsys)  # fmt: skip
    text = html.read_text(encoding="utf-8")
    assert all(f"patient_id {pid}" in text for pid in chosen)
    assert "held-out" in text
    exported = pd.read_csv(tmp_path / "report-explanations.csv")
    assert set(exported["id"]) == set(held_out["patient_id"])
