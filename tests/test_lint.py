"""The code base passes ruff (lint and format), so style is checked by the one test command."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    return [found]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    done = subprocess.run([*_ruff(), *command, "src", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contract():
    """The layers of pyproject.toml's [tool.importlinter]: imports point downward only, core stays pure."""
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if found is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    done = subprocess.run([found, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_doctests_are_collected_by_the_test_command():
    """The worked examples in docstrings run with the suite (the plain ``pytest`` the README names)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "src/peftport/core/selection.py::peftport.core.selection.uniform_index" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize(
    "module", ["peftport.experiments.config", "peftport.transfers.options", "peftport.core.points"]
)
def test_reading_options_imports_no_model_library(module):
    """Validating an experiment file or transfer options stays fast: no torch, transformers or peft."""
    code = f"import sys, {module}; print(sorted({{'torch', 'transformers', 'peft'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
