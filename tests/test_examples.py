"""Smoke tests of the example scripts in ``examples/``: each runs with ``--quick`` and writes
its HTML reports.

Only the heart-disease example runs in the default suite (about 30-40 s on 2 CPU cores); the
others are marked slow (``make test-slow``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, out: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--no-progress", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{name} failed with exit status {result.returncode}\n"
        f"--- stdout (end) ---\n{result.stdout[-3000:]}\n"
        f"--- stderr (end) ---\n{result.stderr[-3000:]}"
    )
    return result


def check_reports(out: Path, names: list[str]) -> None:
    for name in names:
        path = out / name
        assert path.is_file(), (
            f"{name} was not written; found {sorted(p.name for p in out.iterdir())}"
        )
        text = path.read_text(encoding="utf-8")
        assert text.lstrip().lower().startswith("<!doctype html")
        assert "Model card" in text
        assert "<img" in text  # the SHAP and calibration plots are embedded
        assert (out / f"{path.stem}-explanations.csv").is_file()


def check_printed(stdout: str) -> None:
    assert "AUROC" in stdout
    assert "95% CI" in stdout
    # the yardstick beside the transfer rows
    for row in (
        "logistic regression, source only",
        "logistic regression, target only",
        "XGBoost, target only",
        "logistic regression, pooled",
    ):
        assert row in stdout, row
    assert "Private transfer guard" in stdout  # the default guard of a private fit ran
    assert "transfer-guard:selection" in stdout  # and is charged to the ledger
    assert "PrivacyLedger" in stdout  # the ledger of the private fit is printed
    assert "Done in" in stdout


@pytest.mark.slow  # encoder selection and private fits: 15-35 s on 2 cores
def test_heart_disease_sites_quick(tmp_path: Path) -> None:
    result = run_example("heart_disease_sites.py", tmp_path)
    check_printed(result.stdout)
    check_reports(tmp_path, ["heart-va-report.html", "heart-switzerland-report.html"])
    assert "positive rate" in result.stdout and "noisy" in result.stdout  # the Switzerland note
    assert (tmp_path / "heart-va-model" / "meta.json").is_file()
    assert (tmp_path / "heart-encoder" / "weights.safetensors").is_file()


@pytest.mark.slow
def test_student_performance_quick(tmp_path: Path) -> None:
    result = run_example("student_performance.py", tmp_path)
    check_printed(result.stdout)
    check_reports(tmp_path, ["student-subject-report.html", "student-school-report.html"])


@pytest.mark.slow
def test_oulad_modules_quick(tmp_path: Path) -> None:
    result = run_example("oulad_modules.py", tmp_path)
    check_printed(result.stdout)
    check_reports(tmp_path, ["oulad-aaa-report.html"])
    assert "dp-sgd-person" in result.stdout  # students, not registrations, are the unit


@pytest.mark.slow
def test_diabetes_codes_graph_quick(tmp_path: Path) -> None:
    result = run_example("diabetes_codes_graph.py", tmp_path)
    check_printed(result.stdout)
    check_reports(tmp_path, ["diabetes-transfer-report.html"])
    assert "dp-sgd-person" in result.stdout  # patients with repeat encounters are one unit


def test_examples_share_their_options() -> None:
    """Every example script takes --out, --seed, --quick and --no-progress."""
    scripts = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert [p.name for p in scripts] == [
        "diabetes_codes_graph.py",
        "heart_disease_sites.py",
        "oulad_modules.py",
        "student_performance.py",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for script in scripts:
        result = subprocess.run(
            [sys.executable, str(script), "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        for option in ("--out", "--seed", "--quick", "--no-progress"):
            assert option in result.stdout, f"{script.name} --help lacks {option}"
