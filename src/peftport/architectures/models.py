"""Resolve a model reference (hub name or local directory) to its spec and dimensions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftport.architectures.registry import architectures, spec_for_model_type
from peftport.architectures.spec import ArchitectureSpec, ModelDims
from peftport.errors import ArchitectureError
from peftport.lfs import is_lfs_pointer, lfs_pointer_message

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ModelInfo:
    """What a transfer needs to know about a model: its family spec and its dimensions."""

    reference: str
    spec: ArchitectureSpec
    dims: ModelDims
    config: Any


def type_from_architectures(classes: Any) -> str | None:
    """The supported model type a config's ``architectures`` entry names (``Qwen2ForCausalLM`` -> ``qwen2``;
    the longest match wins, so ``DistilBertModel`` is distilbert, not bert).

    >>> type_from_architectures(["XLMRobertaForMaskedLM"])
    'xlm-roberta'
    """
    names = [str(c).lower() for c in classes] if isinstance(classes, list) else []
    types = [t for spec in architectures().values() for t in spec.model_types]
    found = [t for t in types for name in names if name.startswith(t.replace("-", ""))]
    return max(found, key=len) if found else None


def _local_config(path: Path) -> Any:
    """A local folder's config: LFS pointers named as such, and a ``model_type`` the file leaves out read
    from its ``architectures`` (transformers would otherwise guess from the folder's name)."""
    import json

    from transformers import CONFIG_MAPPING

    config_file = path / "config.json"
    for file in [config_file, *(f for f in sorted(path.iterdir()) if f.suffix in WEIGHT_SUFFIXES)]:
        if is_lfs_pointer(file):
            raise ArchitectureError(lfs_pointer_message(file))
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchitectureError(f"cannot read {config_file}: {exc}") from None
    model_type = data.get("model_type") if isinstance(data, dict) else None
    model_type = model_type or type_from_architectures(data.get("architectures") if isinstance(data, dict) else None)
    if not model_type:
        raise ArchitectureError(
            f"{config_file} has no model_type, and its architectures name no supported family: add "
            '"model_type" (e.g. "bert") to it'
        )
    spec_for_model_type(model_type)  # an unsupported type is refused with the supported ones
    try:
        return CONFIG_MAPPING[model_type].from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ArchitectureError(f"cannot read {config_file} as a {model_type} config: {exc}") from None


def load_model_config(reference: str) -> Any:
    """The Hugging Face config of a hub name or local model directory, with a clear error."""
    from transformers import AutoConfig

    path = Path(reference).expanduser()
    if not path.exists() and reference.startswith(("/", "./", "../", "~", ".\\")):
        raise ArchitectureError(f"model directory '{reference}' does not exist")
    if path.exists() and not (path / "config.json").is_file():
        raise ArchitectureError(f"model directory '{reference}' has no config.json")
    if path.is_dir():
        return _local_config(path)
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
