"""The demo's console and its report tell the same story: one function builds the facts."""

from __future__ import annotations

import copy
import html
import re
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from graphxfer import TransferClassifier, datasets, pretrain
from graphxfer.demo import print_checks, print_fit
from graphxfer.exceptions import GraphxferWarning
from graphxfer.explain import explain
from graphxfer.report import report
from privacy import PrivacyConfig

pytestmark = [
    pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning"),
    pytest.mark.filterwarnings(
        "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
    ),
]


@pytest.fixture(scope="module")
def demo_fit() -> tuple[TransferClassifier, Any]:
    """What the demo fits, smaller: a linear encoder pretrained on the Cleveland and Hungarian
    hospitals, fine-tuned at VA with differential privacy and the private transfer guard."""
    heart = datasets.load_heart_disease()
    train, test = heart.select_groups("va").split(test_size=0.3, random_state=0)
    with torch.random.fork_rng(devices=[]):
        encoder = pretrain(
            heart.select_groups(["cleveland", "hungarian"]),
            "linear",
            progress=False,
            random_state=0,
        )
    model = TransferClassifier(
        encoder, privacy=PrivacyConfig(epsilon=3.0), random_state=0, progress=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        model.fit(train)
    return model, test.subset(np.arange(12))


def _report_text(model: TransferClassifier, records: Any, path: Any) -> str:
    explanation = explain(model, records, "deep", n_background=10, progress=False)
    written = report(model, records, path, explanation=explanation, records=[0], progress=False)
    return html.unescape(written.read_text(encoding="utf-8"))


def test_the_report_states_what_the_console_prints(demo_fit, tmp_path, capsys):
    model, records = demo_fit
    print_fit(model)
    print_checks(model, records)
    console = capsys.readouterr().out.splitlines()
    text = _report_text(model, records, tmp_path / "report.html")
    guard = [line for line in console if line.startswith("Negative-transfer check:")]
    assert len(guard) == 1 and "the private guard shipped the" in guard[0]
    assert "transfer-guard:selection" in guard[0]  # its epsilon, read from the ledger
    for line in console[:4]:  # fine-tuning, privacy, guard, reference data
        assert line in text, line
    verdict = "passed" if ": passed:" in guard[0] else "failed"
    assert re.search(rf'Negative-transfer check <span class="badge[^"]*">{verdict}</span>', text)
    calibration = next(line for line in console if line.startswith("Calibration on"))
    assert calibration in text
    shift = next(line for line in console if line.startswith("Shift from the source:"))
    for column in re.findall(r"(\w+) \(missing for", shift):
        assert f"{column}: missing for" in text
    assert "Reference data: not recorded" not in text


def test_a_failed_guard_reads_failed_in_both(demo_fit, tmp_path, capsys):
    model, records = demo_fit
    shipped = copy.copy(model)  # the same fit, as if the guard had kept the source model
    shipped.transfer_check_ = {
        **model.transfer_check_,
        "chosen": "zero-shot",
        "passed": False,
        "action": "shipped zero-shot",
    }
    print_fit(shipped)
    guard = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("Negative-transfer check:")
    )
    assert guard.startswith(
        "Negative-transfer check: FAILED: the private guard shipped the "
        "zero-shot model instead of the fine-tuned one"
    )
    text = _report_text(shipped, records, tmp_path / "report.html")
    checks = text[text.index('<section id="section-checks">') :]
    assert f"<strong>Warning:</strong> {guard}." in checks[: checks.index("</section>")]
    assert re.search(r'Negative-transfer check <span class="badge[^"]*">failed</span>', text)


@pytest.mark.slow
def test_the_demo_report_matches_its_console(tmp_path, capsys):
    """``graphxfer demo --quick`` end to end (about two minutes on 2 busy cores)."""
    from graphxfer.demo import run_demo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphxferWarning)
        assert run_demo(tmp_path, progress=False, quick=True) == 0
    console = capsys.readouterr().out.splitlines()
    text = html.unescape((tmp_path / "heart-va-report.html").read_text(encoding="utf-8"))
    for prefix in (
        "Fine-tuning:",
        "Differential privacy:",
        "Negative-transfer check:",
        "Reference data of the explanations:",
        "Calibration on",
    ):
        line = next(line for line in console if line.startswith(prefix))
        assert line in text, line
    shift = next(line for line in console if line.startswith("Shift from the source:"))
    for column in re.findall(r"(\w+) \((?:missing for|\d+% of the observed)", shift):
        assert f"{column}: " in text and "possible site artefact" in text
