"""Make student models from teachers (layer-reduced copies, as in the paper's XLM-R students)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from peftport.architectures.registry import spec_for_model_type
from peftport.errors import LayerMapError
from peftport.formats.atomic import atomic_directory

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "merges.txt",
    "vocab.json",
)


def _layer_list(model: torch.nn.Module, layer_template: str) -> torch.nn.ModuleList:
    container = layer_template.split(".{layer}")[0]
    layers = model.get_submodule(container)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{container} is not a ModuleList")
    return layers


def make_layer_reduced(teacher_dir: str | Path, keep: list[int], out_dir: str | Path, force: bool = False) -> Path:
    """Save a copy of a model that keeps only the transformer layers ``keep`` (in order).

    >>> make_layer_reduced("minilm-l6/", [0, 2, 4], "minilm-l3/")  # doctest: +SKIP
    """
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(teacher_dir))
    spec = spec_for_model_type(model.config.model_type)
    layers = _layer_list(model, spec.layer_template)
    if not keep or any(not 0 <= i < len(layers) for i in keep):
        raise LayerMapError(f"cannot keep layers {keep} of a {len(layers)}-layer model")
    kept = torch.nn.ModuleList([layers[i] for i in keep])
    container = spec.layer_template.split(".{layer}")[0]
    parent_name, _, attr = container.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, kept)
    setattr(model.config, spec.config_keys.num_layers, len(keep))
    with atomic_directory(Path(out_dir), force=force) as staging:
        model.save_pretrained(str(staging))
        for name in TOKENIZER_FILES:
            if (Path(teacher_dir) / name).is_file():
                shutil.copy(Path(teacher_dir) / name, staging / name)
    return Path(out_dir)
