"""Session fixtures: tiny random models of every family, saved once per test session."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import transformers

from grid_setup import make_grid_setting
from tiny_models import save_tiny_model

os.environ.pop("COLUMNS", None)  # the CLI's tables are laid out for 200 columns here, whatever the shell says
transformers.logging.set_verbosity_error()
logging.getLogger("adapters").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model(family, layers, hidden=32)`` -> directory of a saved random model (cached)."""
    cache: dict[tuple[str, int, int], Path] = {}

    def build(family: str, layers: int, hidden: int = 32) -> Path:
        key = (family, layers, hidden)
        if key not in cache:
            cache[key] = save_tiny_model(family, layers, tmp_path_factory.mktemp(f"{family}-{layers}x{hidden}"), hidden)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def cli() -> Callable[..., object]:
    """``cli(*args)`` runs the ``peftport`` command in-process and returns click's result."""
    from typer.testing import CliRunner

    from peftport.cli.main import app

    runner = CliRunner()

    def invoke(*args: object) -> object:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The tiny experiment setting of the grid tests: ``(root, models)`` (see ``grid_setup``)."""
    return make_grid_setting(tmp_path_factory)
