"""Resolve a model reference (hub name or local directory) to its spec and dimensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftport.architectures.registry import spec_for_model_type
from peftport.architectures.spec import ArchitectureSpec, ModelDims
from peftport.errors import ArchitectureError


@dataclass(frozen=True)
class ModelInfo:
    """What a transfer needs to know about a model: its family spec and its dimensions."""

    reference: str
    spec: ArchitectureSpec
    dims: ModelDims
    config: Any


def load_model_config(reference: str) -> Any:
    """The Hugging Face config of a hub name or local model directory, with a clear error."""
    from transformers import AutoConfig

    path = Path(reference).expanduser()
    if not path.exists() and reference.startswith(("/", "./", "../", "~", ".\\")):
        raise ArchitectureError(f"model directory '{reference}' does not exist")
    if path.exists() and not (path / "config.json").is_file():
        raise ArchitectureError(f"model directory '{reference}' has no config.json")
    try:
        return AutoConfig.from_pretrained(str(path) if path.exists() else reference)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArchitectureError(
            f"cannot load the config of model '{reference}' (not a local model directory, and the hub "
            f"could not be reached or has no such model): {reason}"
        ) from None


def describe_model(reference: str) -> ModelInfo:
    """Spec and dimensions of a model given by hub name or local directory."""
    config = load_model_config(reference)
    spec = spec_for_model_type(config.model_type)
    return ModelInfo(reference=reference, spec=spec, dims=spec.dims(config), config=config)
