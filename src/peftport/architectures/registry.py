"""The registry of architecture specs: an explicit dict built from the JSON files on first use."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from peftport.architectures.spec import ArchitectureSpec
from peftport.errors import ArchitectureError


@cache
def architectures() -> dict[str, ArchitectureSpec]:
    """All specs shipped in ``peftport/architectures/specs``, by family name."""
    folder = resources.files("peftport.architectures") / "specs"
    specs = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            spec = ArchitectureSpec.model_validate(json.loads(entry.read_text(encoding="utf-8")))
            specs[spec.name] = spec
    return specs


def spec_by_name(name: str) -> ArchitectureSpec:
    """The spec of a family, by its peftport name (``bert``, ``distilbert`` ...)."""
    specs = architectures()
    if name not in specs:
        raise ArchitectureError(f"unknown model family '{name}': supported are {', '.join(specs)}")
    return specs[name]


def spec_for_model_type(model_type: str) -> ArchitectureSpec:
    """The spec for a Hugging Face ``model_type`` (``config.json``'s ``model_type``)."""
    for spec in architectures().values():
        if model_type in spec.model_types:
            return spec
    supported = sorted(t for s in architectures().values() for t in s.model_types)
    raise ArchitectureError(f"unknown model type '{model_type}': supported are {', '.join(supported)}")
