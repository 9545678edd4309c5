"""Package hygiene: ``tabular`` stands alone and ``import tabular`` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_tabular_never_imports_graphxfer_or_privacy() -> None:
    code = (
        "import sys, pkgutil, importlib, tabular\n"
        "for m in pkgutil.walk_packages(tabular.__path__, 'tabular.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('graphxfer', 'privacy')))"
    )
    assert _run(code) == "[]"


def test_import_is_light_and_names_load_lazily() -> None:
    code = (
        "import sys, tabular\n"
        "heavy = ('torch', 'xgboost', 'pytorch_tabnet', 'sklearn')\n"
        "light = [m for m in heavy if m in sys.modules]\n"
        "tabular.pretrain, tabular.TabularEncoder\n"
        "print(light, 'torch' in sys.modules, 'xgboost' in sys.modules,"
        " tabular.ENCODERS.names())"
    )
    assert _run(code) == "[] True False ['ft-transformer', 'linear', 'mlp', 'tabnet']"
