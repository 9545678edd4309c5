"""The README's Python snippets, run as written.

Every fenced ``python`` block of README.md is executed in a temporary directory, in README
order, sharing one namespace where the README continues from earlier blocks (the alignment
example uses the cohorts of "Using it" and the imports of the schema example; the curve uses the
encoder of the whole job). Tracebacks point at README lines. The whole job (pretraining with
encoder selection, a private fit, an audit, SHAP explanations and a report) and the transfer
curve after it take minutes: they run in ``make test-slow``. Shell blocks are not run here
(the command line has its own tests).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graphxfer.cohort import KindCoercionWarning
from graphxfer.exceptions import GraphxferWarning

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Snippet:
    """One fenced ``python`` block: the README line of its first code line, and its code."""

    line: int
    code: str


def python_snippets(text: str) -> list[Snippet]:
    """The fenced ``python`` blocks of a Markdown text, in order."""
    snippets: list[Snippet] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if re.fullmatch(r"```python\s*", lines[i]):
            start = i + 1
            end = start
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise AssertionError(f"README.md:{i + 1}: a python block is never closed")
            snippets.append(Snippet(start + 1, "\n".join(lines[start:end]) + "\n"))
            i = end
        i += 1
    return snippets


SNIPPETS = python_snippets(README.read_text(encoding="utf-8"))

# each snippet is named by a line only it holds
USING_IT = "print(heart.summary())"
WHOLE_JOB = 'encoder = gx.pretrain(source, "auto"'
CURVE = "curve = transfer_curve("
SCHEMA = 'schema.to_json("schema.json")'
ALIGN = "aligned, report = target.align("
NAMED = (USING_IT, WHOLE_JOB, CURVE, SCHEMA, ALIGN)


def snippet(marker: str) -> Snippet:
    found = [s for s in SNIPPETS if marker in s.code]
    assert len(found) == 1, f"{len(found)} README python blocks hold {marker!r}"
    return found[0]


def run(
    markers: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], list[warnings.WarningMessage]]:
    """Execute the named snippets in order in one namespace, inside ``tmp_path``.

    Returns the namespace and the warnings raised (recorded, so that a snippet's expected
    warnings are checked by the test rather than failing it).
    """
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for marker in markers:
            block = snippet(marker)
            # pad with blank lines so that tracebacks give README line numbers
            code = compile("\n" * (block.line - 1) + block.code, str(README), "exec")
            exec(code, namespace)
    return namespace, list(caught)


def graphxfer_warnings(caught: list[warnings.WarningMessage]) -> list[type[Warning]]:
    return [w.category for w in caught if issubclass(w.category, GraphxferWarning)]


def test_every_python_snippet_is_run() -> None:
    assert SNIPPETS, "README.md has no python blocks"
    for block in SNIPPETS:
        names = [m for m in NAMED if m in block.code]
        assert len(names) == 1, f"README.md:{block.line}: not run by tests/test_readme.py"


def test_snippets_are_parsed_with_their_readme_lines() -> None:
    text = "intro\n```python\nx = 1\ny = 2\n```\n```bash\nls\n```\n```python\nz = 3\n```\n"
    assert python_snippets(text) == [Snippet(3, "x = 1\ny = 2\n"), Snippet(10, "z = 3\n")]
    lines = README.read_text(encoding="utf-8").splitlines()
    for block in SNIPPETS:
        assert lines[block.line - 1] == block.code.splitlines()[0]


def test_using_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphxfer import Cohort

    ns, caught = run((USING_IT,), tmp_path, monkeypatch)
    assert graphxfer_warnings(caught) == []
    assert "cleveland" in capsys.readouterr().out  # the per-site summary
    assert len(ns["source"]) == 303 + 294
    train, test = ns["train"], ns["test"]
    assert isinstance(train, Cohort) and len(train) + len(test) == 123


def test_cohorts_and_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns, caught = run((SCHEMA,), tmp_path, monkeypatch)
    assert graphxfer_warnings(caught) == []
    assert (tmp_path / "schema.json").is_file()
    cohort = ns["cohort"]
    assert len(cohort) == 920 and cohort.schema["age"].upper == 120.0
    assert cohort.schema["cp"].kind == "categorical"
    assert len(ns["train"]) + len(ns["test"]) == 920


def test_align(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ns, caught = run((USING_IT, SCHEMA, ALIGN), tmp_path, monkeypatch)
    # `ca` is binary at VA and numeric in the source: converted, with one warning
    assert graphxfer_warnings(caught) == [KindCoercionWarning]
    report, aligned = ns["report"], ns["aligned"]
    assert report.renamed == {"Age": "age", "ChestPain": "cp"}
    assert report.recoded == {"cp": 200} and report.converted == {"chol": (38.67, 0.0)}
    assert list(report.coerced) == ["ca"] and report.missing == [] and report.extra == []
    assert "coerced   (1): ca (binary -> numeric)" in capsys.readouterr().out
    # the aligned VA patients are the bundled ones, in the source's codes and units
    va = ns["heart"].select_groups("va").data
    assert aligned.data["cp"].tolist() == va["cp"].tolist()
    assert aligned.data["chol"].to_numpy() == pytest.approx(va["chol"].to_numpy(), nan_ok=True)


@pytest.mark.slow
def test_the_whole_job_and_the_transfer_curve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns, _ = run((WHOLE_JOB, CURVE), tmp_path, monkeypatch)
    model = ns["model"]
    assert model.ledger_ is not None
    for path in ("heart-encoder", "heart-va-model", "heart-va-evaluation.json", "curve.png"):
        assert (tmp_path / path).exists(), path
    assert (tmp_path / "reports" / "heart-va.html").is_file()
    summary = ns["curve"].summary
    assert {"label", "auroc_mean", "reason"} <= set(summary.columns)
