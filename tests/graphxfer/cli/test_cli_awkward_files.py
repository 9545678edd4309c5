"""Awkward data and output files on the command line: repeated header names, words such as
``None`` or ``NULL`` that a schema declares as values, outcomes of one class in records that
are only predicted, malformed ``--mapping`` files and outputs under a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphxfer import Column, Schema
from graphxfer._cli_cohorts import UserError, read_table
from graphxfer._io import atomic_write_text
from graphxfer.adapt import TargetAdapter
from graphxfer.cli import main
from graphxfer.exceptions import AlignmentError, GraphxferWarning


def error_line(status: int, capsys: pytest.CaptureFixture[str]) -> str:
    """The single ``graphxfer: error:`` line of a run that exited with status 2."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("graphxfer: warning:")]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("graphxfer: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def fitted(raw_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A linear encoder pretrained on two sites and a model fine-tuned at a third."""
    folder = tmp_path_factory.mktemp("fitted")
    enc, model = folder / "enc", folder / "model"
    data = ["--data", str(raw_csv), "--target", "disease", "--id", "patient_id",
            "--group", "site", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(["pretrain", *data, "--sites", "cleveland,hungarian", "--encoder", "linear",
                 "--epochs", "2", "--out", str(enc)]) == 0  # fmt: skip
    assert main(["finetune", *data, "--sites", "va", "--encoder", str(enc), "--epochs", "2",
                 "--out", str(model)]) == 0  # fmt: skip
    return enc, model


def test_repeated_header_name_is_refused(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = raw_csv.read_text().splitlines()
    names = lines[0].split(",")
    names[3] = "age"  # a second 'age' column, which pandas would rename 'age.1'
    path = tmp_path / "dup.csv"
    path.write_text("\n".join([",".join(names), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match=r"repeats the column name.*'age'"):
        read_table(path)
    status = main(["schema", "infer", "--data", str(path), "--target", "disease"])
    assert "'age'" in error_line(status, capsys)


@pytest.mark.parametrize(("sep", "called"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_separated_by_semicolons_or_tabs_is_named_so(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sep: str, called: str
) -> None:
    frame = pd.read_csv(raw_csv)
    path = tmp_path / "excel.csv"
    frame.to_csv(path, sep=sep, index=False, decimal=",")
    status = main(["schema", "infer", "--data", str(path), "--target", "disease"])
    assert f"separates its values by {called}, not commas" in error_line(status, capsys)


def test_words_the_schema_declares_are_values_not_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.DataFrame(
        {
            "pid": ["NA", "p2", "p3", "p4"],
            "site": ["NULL", "NULL", "ER", "ER"],
            "glu": ["None", "Norm", "None", "NA"],  # 'NA': missing, not a declared category
            "age": ["NA", "61", "45", "70"],  # an R export's missing number
            "y": [0, 1, 0, 1],
        }
    )
    path = tmp_path / "words.csv"
    frame.to_csv(path, index=False)
    schema = Schema(
        [
            Column("pid", "categorical", "id"),
            Column("site", "categorical", "group"),
            Column("glu", "categorical", categories=["None", "Norm"]),
            Column("age"),
            Column("y", "binary", "target"),
        ]
    )
    read = read_table(path, schema=schema)
    assert read["pid"].tolist() == ["NA", "p2", "p3", "p4"]
    assert read["site"].tolist() == ["NULL", "NULL", "ER", "ER"]
    assert read["glu"].tolist()[:3] == ["None", "Norm", "None"] and pd.isna(read["glu"].iloc[3])
    assert np.isnan(read["age"].iloc[0]) and read["age"].iloc[1] == 61
    # without a schema pandas' usual markers stay missing
    assert read_table(path)["glu"].isna().sum() == 3

    schema.to_json(tmp_path / "schema.json")
    status = main(["schema", "check", "--schema", str(tmp_path / "schema.json"),
                   "--data", str(path)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert "4 records" in capsys.readouterr().out


def test_records_of_one_class_are_still_predicted(
    raw_csv: Path,
    fitted: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, model = fitted
    data = pd.read_csv(raw_csv)
    path = tmp_path / "positives.csv"
    data[data["disease"] == 1].to_csv(path, index=False)
    out = tmp_path / "pred.csv"
    with pytest.warns(GraphxferWarning, match="single class"):
        status = main(["predict", "--data", str(path), "--target", "disease",
                       "--id", "patient_id", "--group", "site", "--model", str(model),
                       "--out", str(out)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert len(pd.read_csv(out)) == int((data["disease"] == 1).sum())


@pytest.mark.parametrize(
    "text",
    ['{"mapping": "age"}', '{"recode": "x"}', '{"recode": {"cp": "x"}}', '{"convert": [1]}'],
)
def test_malformed_mapping_file_is_one_line(
    text: str,
    raw_csv: Path,
    fitted: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    enc, _ = fitted
    mapping = tmp_path / "mapping.json"
    mapping.write_text(text)
    status = main(["finetune", "--data", str(raw_csv), "--target", "disease", "--group", "site",
                   "--id", "patient_id", "--sites", "va", "--encoder", str(enc),
                   "--mapping", str(mapping), "--out", str(tmp_path / "m"),
                   "--no-progress"])  # fmt: skip
    assert "must be a dict" in error_line(status, capsys)
    assert not (tmp_path / "m").exists()


def test_target_adapter_checks_argument_types() -> None:
    source = Schema([Column("age"), Column("y", "binary", "target")])
    with pytest.raises(AlignmentError, match="mapping must be a dict"):
        TargetAdapter(source, mapping="age")  # type: ignore[arg-type]
    with pytest.raises(AlignmentError, match=r"recode\['age'\]"):
        TargetAdapter(source, recode={"age": [1, 2]})  # type: ignore[dict-item]


def test_output_under_a_file_or_onto_a_folder_is_one_line(
    raw_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        atomic_write_text(blocker / "out.json", "{}")
    assert info.value.filename == str(blocker / "out.json")

    infer = ["schema", "infer", "--data", str(raw_csv), "--target", "disease", "--out"]
    line = error_line(main([*infer, str(blocker / "schema.json")]), capsys)
    assert "a-file/schema.json" in line and ".tmp" not in line
    folder = tmp_path / "a-folder"
    folder.mkdir()
    line = error_line(main([*infer, str(folder)]), capsys)
    assert "a-folder" in line and "folder" in line and ".tmp" not in line
    assert [p.name for p in folder.iterdir()] == []
