"""Decide which architecture spec a module's weight names belong to."""

from __future__ import annotations

import json
from pathlib import Path

from peftport.architectures.registry import architectures, spec_by_name, spec_for_model_type
from peftport.architectures.spec import ArchitectureSpec, Location
from peftport.errors import ModuleFormatError, PeftportError


def _fits(spec: ArchitectureSpec, paths: list[str]) -> bool:
    """Every path inside the spec's layers resolves to a slot, and at least one does."""
    located = 0
    for path in paths:
        if spec.locate(path) is not None:
            located += 1
        elif spec.in_layers(path):
            return False
    return located > 0


def named_model_type(base_model: str | None) -> str | None:
    """The model type a module's recorded base model names: a local model folder's ``config.json``
    ``model_type``; else the longest supported model type in the name (``Qwen/Qwen2.5-0.5B`` -> ``qwen2``,
    ``distilbert-base-uncased`` -> ``distilbert``, not ``bert``); None when neither says.

    >>> named_model_type("meta-llama/Llama-3.2-1B")
    'llama'
    """
    if not base_model:
        return None
    config = Path(base_model).expanduser() / "config.json"
    if config.is_file():
        try:
            recorded = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str):
            return recorded
    name = base_model.lower().replace("_", "-")
    found = [t for spec in architectures().values() for t in spec.model_types if t in name]
    return max(found, key=len) if found else None


def resolve_spec(paths: list[str], family: str | None = None, model_type: str | None = None) -> ArchitectureSpec:
    """The spec whose layer and slot paths explain ``paths`` (module paths of the module's tensors).

    ``family`` (e.g. from ``--teacher``) is checked, not guessed; ``model_type`` (recorded by
    AdapterHub, or named by the module's base model: `named_model_type`) narrows the guess. Families with
    identical layouts (bert, roberta, electra; llama, qwen2, gemma) cannot be told apart from weight names
    alone; the first in name order is taken then, which writes identical keys.
    """
    if family is not None:
        spec = spec_by_name(family)
        if not _fits(spec, paths):
            example = next((p for p in paths if spec.locate(p) is None), paths[0] if paths else "")
            raise ModuleFormatError(
                f"module weights do not fit a {family} model (e.g. '{example}'): is the teacher the model "
                "the module was trained on?"
            )
        return spec
    if model_type is not None:
        try:
            return resolve_spec(paths, spec_for_model_type(model_type).name)
        except PeftportError:  # an unknown or inconsistent recorded type: fall back to the weight names
            pass
    for spec in architectures().values():
        if _fits(spec, paths):
            return spec
    raise ModuleFormatError(f"cannot tell which model family the module is for: no spec explains '{paths[0]}'")


def locate_all(spec: ArchitectureSpec, paths: list[str]) -> dict[str, Location]:
    """Locations of the paths that fall on a slot (others are left out)."""
    found = {p: spec.locate(p) for p in paths}
    return {p: loc for p, loc in found.items() if loc is not None}
