"""Bad input on the command line: one line on stderr naming the problem, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from graphxfer.cli import main

ROOT = Path(__file__).resolve().parents[3]


def one_error_line(err: str) -> str:
    """The single line of ``err``, asserting that it is one ``graphxfer: error:`` line."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("graphxfer: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _empty(folder: Path, raw: Path) -> Path:
    path = folder / "empty.csv"
    path.write_bytes(b"")
    return path


def _header_only(folder: Path, raw: Path) -> Path:
    path = folder / "header.csv"
    path.write_text(raw.read_text().splitlines()[0] + "\n")
    return path


def _binary(folder: Path, raw: Path) -> Path:
    path = folder / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _not_utf8(folder: Path, raw: Path) -> Path:
    path = folder / "latin1.csv"
    path.write_bytes("name,disease\nJos\xe9,1\n".encode("latin-1"))
    return path


def _folder(folder: Path, raw: Path) -> Path:
    path = folder / "a-folder.csv"
    path.mkdir()
    return path


def _missing(folder: Path, raw: Path) -> Path:
    return folder / "no-such-file.csv"


def _text_in_numeric(folder: Path, raw: Path) -> Path:
    frame = pd.read_csv(raw)
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "sixty"  # the fifth line of the file (the header is line 1)
    path = folder / "text.csv"
    frame.to_csv(path, index=False)
    return path


def _no_target(folder: Path, raw: Path) -> Path:
    path = folder / "no-target.csv"
    pd.read_csv(raw).drop(columns=["disease"]).to_csv(path, index=False)
    return path


CASES: list[tuple[str, Callable[[Path, Path], Path], tuple[str, ...]]] = [
    ("empty file", _empty, ("empty.csv", "is empty")),
    ("header only", _header_only, ("header.csv", "no records")),
    ("binary garbage", _binary, ("garbage.csv", "binary data")),
    ("not UTF-8", _not_utf8, ("latin1.csv", "not UTF-8")),
    ("a folder", _folder, ("a-folder.csv", "is a folder")),
    ("missing file", _missing, ("no-such-file.csv", "does not exist")),
    ("text in a numeric column", _text_in_numeric, ("text.csv", "'age'", "'sixty'", "rows 5",
                                                    "line numbers")),
    ("missing target column", _no_target, ("no-target.csv", "no target column 'disease'")),
]  # fmt: skip


@pytest.fixture(scope="module")
def schema(raw_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The schema inferred from the good file (``age`` numeric, ``disease`` the target)."""
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    assert main(["schema", "infer", "--data", str(raw_csv), "--target", "disease",
                 "--id", "patient_id", "--group", "site", "--out", str(path)]) == 0  # fmt: skip
    return path


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["pretrain", "schema check"])
def test_bad_data_file_is_one_line_and_status_2(
    command: str,
    make: Callable[[Path, Path], Path],
    expected: tuple[str, ...],
    raw_csv: Path,
    schema: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    data = make(tmp_path, raw_csv)
    argv = [*command.split(), "--data", str(data), "--schema", str(schema)]
    if command == "pretrain":
        argv += ["--encoder", "linear", "--no-progress", "--out", str(tmp_path / "enc")]
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    for part in expected:
        assert part in line
    assert not (tmp_path / "enc").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--target", "outcome"], ("no target column 'outcome'", "'disease'")),
        (["--target", "disease", "--id", "person"], ("no id column 'person'", "--id")),
        (["--target", "disease", "--group", "hospital"], ("no group column 'hospital'",)),
        (["--target", "age"], ("target column 'age'", "binary")),
    ],
)
def test_bad_columns_without_a_schema(
    extra: list[str],
    expected: tuple[str, ...],
    raw_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["pretrain", "--data", str(raw_csv), *extra, "--no-progress",
            "--out", str(tmp_path / "enc")]  # fmt: skip
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "heart.csv" in line
    for part in expected:
        assert part in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pretrain", "--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
        (["pretrain", "--epochs", "many"], "argument --epochs: must be a positive integer"),
        (["finetune", "--test-size", "1.5"], "argument --test-size: must be a share"),
        (["finetune", "--test-size", "0"], "argument --test-size: must be a share"),
        (["finetune", "--epsilon", "-1"], "argument --epsilon: must be a positive number"),
        (["pretrain", "--encoder", "nope"], "argument --encoder: invalid choice: 'nope'"),
        (["pretrain", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["evaluate", "--sizes", "10,x", "--source-dataset", "heart-disease",
          "--target-dataset", "heart-disease"], "--sizes takes comma-separated positive integers"),
        (["report", "--dataset", "heart-disease", "--model", "m", "--records", "first"],
         "--records takes comma-separated row positions"),
        (["finetune", "--dataset", "heart-disease", "--encoder", "e", "--out", "m",
          "--test-out", "t.csv"], "--test-out needs --test-size"),
        (["schema", "infer", "--data", "x.csv"], "the following arguments are required: --target"),
    ],
)  # fmt: skip
def test_bad_parameter_values(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expected in line


def test_bad_config_value_is_checked_like_a_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[pretrain]\nepochs = -3\n")
    assert main(["pretrain", "--dataset", "heart-disease", "--out", "x", "--config",
                 str(config)]) == 2  # fmt: skip
    line = one_error_line(capsys.readouterr().err)
    assert "config key 'epochs': must be a positive integer" in line


def test_debug_shows_the_traceback(raw_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no target column 'outcome'"):
        main(["pretrain", "--data", str(raw_csv), "--target", "outcome", "--debug",
              "--out", str(tmp_path / "enc")])  # fmt: skip


def test_console_script_exit_status(tmp_path: Path) -> None:
    """The installed ``graphxfer`` script (else ``python -m graphxfer``) exits 2 in one line."""
    script = Path(sys.executable).with_name("graphxfer")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "graphxfer"]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*launcher, "schema", "infer", "--data", str(empty), "--target", "y"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    line = one_error_line(done.stderr)
    assert "empty.csv" in line and "is empty" in line


def test_warnings_are_one_line_each(tmp_path: Path) -> None:
    """A warning (here: an id column left as a feature) prints one ``graphxfer: warning:`` line."""
    data = tmp_path / "ids.csv"
    pd.DataFrame(
        {"pid": [f"p{i:03d}" for i in range(60)], "x": [i % 7 for i in range(60)], "y": [0, 1] * 30}
    ).to_csv(data, index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    schema = tmp_path / "schema.json"
    command = [sys.executable, "-m", "graphxfer", "schema"]
    infer = [*command, "infer", "--data", str(data), "--target", "y", "--out", str(schema)]
    check = [*command, "check", "--schema", str(schema), "--data", str(data)]
    for argv in (infer, check):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "graphxfer: warning: feature column 'pid' has a distinct value in every row: it is "
        "probably an identifier; give it role='id' or role='ignore'"
    ]


def test_errors_give_command_line_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphxfer import datasets

    # a folder that is not a model file: refused with the flag that replaces it
    out = tmp_path / "notes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["pretrain", "--dataset", "heart-disease", "--sites", "cleveland", "--encoder",
            "linear", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it" in err and "overwrite=True" not in err
    assert (out / "keep.txt").read_text() == "mine"
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "meta.json").is_file() and not (out / "keep.txt").exists()
    # repeated ids: the flag, not the keyword argument
    data = datasets.load_heart_disease().select_groups("va").data
    data = pd.concat([data, data.iloc[:3]])
    data.to_csv(tmp_path / "repeats.csv", index=False)
    assert main(["pretrain", "--data", str(tmp_path / "repeats.csv"), "--target", "target",
                 "--id", "record_id", "--encoder", "linear", "--no-progress",
                 "--out", str(tmp_path / "enc")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "pass --repeated-ids allow" in err and "repeated_ids=" not in err


def test_library_advice_is_translated_for_the_command_line() -> None:
    from graphxfer.cli import message
    from graphxfer.exceptions import OutOfBoundsError, UnknownCategoryError

    unknown = UnknownCategoryError(
        "column 'cp' holds categories ['x'] that are not in its vocabulary ['a'] (rows 2); add "
        "them to the schema, recode them (Cohort.align(recode=...)), or build the cohort with "
        "unknown='map'"
    )
    assert message(unknown).endswith(
        'add them to the schema, or recode them (a --mapping file with "recode")'
    )
    bounds = OutOfBoundsError(
        "... widen the declared bounds, or convert units (Cohort.align(convert=...))"
    )
    assert message(bounds).endswith('convert units (a --mapping file with "convert")')
