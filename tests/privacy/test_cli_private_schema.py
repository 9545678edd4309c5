"""``graphxfer finetune --epsilon --data FILE`` never infers the target's schema from its records.

Inferred on the fly (``--target`` instead of ``--schema``), the schema of a private target
came from its records: the vocabulary of a column the source lacks (down to a value only one
person holds) and the kinds of the columns (a column with two distinct values became binary,
then "coerced") were saved in the model file and printed, outside epsilon.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from graphxfer import datasets
from graphxfer.cli import main

SECRET = "pipe-zz-one-person"


@pytest.fixture(scope="module")
def target_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = datasets.load_heart_disease().select_groups("va").data.copy()
    data["smoking"] = "never"
    data.loc[data.index[0], "smoking"] = SECRET  # a value only one person holds
    path = tmp_path_factory.mktemp("private-cli") / "va.csv"
    data.to_csv(path, index=False)
    return path


def test_private_finetune_refuses_a_schema_inferred_from_the_records(
    target_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    status = main(["finetune", "--data", str(target_csv), "--target", "target",
                   "--encoder", str(tmp_path / "enc"), "--epsilon", "1", "--no-progress",
                   "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert status == 2
    captured = capsys.readouterr()
    assert "--epsilon with --data needs --schema" in captured.err
    assert SECRET not in captured.out + captured.err
    assert not out.exists()


def test_a_bundled_target_keeps_its_declared_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """The refusal is about inference from --data: a bundled cohort's schema is declared (the
    command goes on to look for the encoder)."""
    status = main(["finetune", "--dataset", "heart-disease", "--sites", "va",
                   "--encoder", "no-such-encoder", "--epsilon", "1", "--no-progress",
                   "--out", "unused"])  # fmt: skip
    assert status == 2
    assert "needs --schema" not in capsys.readouterr().err


def test_private_finetune_reads_the_records_without_naming_what_they_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warnings about the records (here an identifier-like column) name no column under DP,
    as in a fit of a DataFrame; without DP they keep their detail."""
    import json

    import numpy as np

    from graphxfer import Column

    heart = datasets.load_heart_disease()
    data = heart.select_groups("va").data.copy()
    data["visits_zz"] = np.arange(len(data)) + 1000.0  # a distinct number in every row
    schema = heart.schema.add(Column("visits_zz", "numeric", "feature", lower=0.0, upper=1e6))
    (tmp_path / "schema.json").write_text(json.dumps(schema.to_dict()))
    data.to_csv(tmp_path / "va.csv", index=False)
    argv = ["finetune", "--data", str(tmp_path / "va.csv"), "--schema",
            str(tmp_path / "schema.json"), "--encoder", str(tmp_path / "no-encoder"),
            "--no-progress", "--out", str(tmp_path / "m")]  # fmt: skip
    for private in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # the encoder is missing: the command fails after reading the records
            assert main([*argv, "--epsilon", "1"] if private else argv) == 2
        shown = "\n".join(str(w.message) for w in caught) + capsys.readouterr().err
        if private:
            assert "looks like an identifier" in shown and "visits_zz" not in shown
        else:
            assert "'visits_zz' has a distinct value in every row" in shown


def test_evaluate_says_its_measurements_are_outside_epsilon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["evaluate", "--source-dataset", "heart-disease",
                       "--source-sites", "cleveland", "--target-dataset", "heart-disease",
                       "--target-sites", "va", "--encoder", "mlp", "--pretrain-epochs", "1",
                       "--sizes", "40", "--strategies", "linear-probe", "--epsilons", "1",
                       "--baselines", "logistic", "--repeats", "1", "--no-progress",
                       "--device", "cpu", "--out", str(tmp_path / "curve")])  # fmt: skip
    assert status == 0
    assert "not covered by ε" in capsys.readouterr().out
