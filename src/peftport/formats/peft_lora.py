"""Codec for Hugging Face ``peft`` LoRA modules (``adapter_config.json`` + ``adapter_model.*``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from peftport.architectures.registry import spec_by_name
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.kinds import LORA
from peftport.core.module import LORA_A, LayerTensors, LoraSettings, PeftModule, lora_settings
from peftport.errors import ModuleFormatError
from peftport.formats.families import locate_all, named_model_type, resolve_spec
from peftport.formats.tensor_files import first_existing, read_json, read_tensors, write_safetensors
from peftport.formats.validation import validate_module

NAME = "peft"
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
WRAPPER = "base_model.model."
LORA_KEY = re.compile(r"^(?P<path>.+)\.(?P<role>lora_[AB])(?:\.[^.]+)?\.weight$")
KEPT_OPTIONS = ("task_type", "modules_to_save", "revision")
# options that change what the module computes, which peftport cannot carry (docs/formats.md lists every field)
REFUSED_OPTIONS = (
    "use_dora", "rank_pattern", "alpha_pattern", "lora_bias", "trainable_token_indices", "layer_replication",
    "target_parameters", "alora_invocation_tokens", "use_qalora", "use_bdlora", "arrow_config", "velora_config",
    "monteclora_config", "kasa_config",
)  # fmt: skip
BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq")


def saved_module(key: str, saved: list[str]) -> bool:
    """Whether the tensor ``key`` (keyed as in the task model) lies in a module peft saves for
    ``modules_to_save``: peft wraps every module whose name *ends with* a listed name (``classifier`` also
    wraps DistilBERT's ``pre_classifier``) and saves all that module holds (``classifier.dense.weight``)."""
    parts = key.split(".")[:-1]
    names = [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(name.endswith(listed) for name in names for listed in saved)


def task_head(module: PeftModule) -> dict[str, torch.Tensor]:
    """The task head a peft module was saved with (its ``modules_to_save``, matched as peft matches it),
    keyed as in the task model (``classifier.weight``); empty when it has none."""
    saved = module.format_options.get("modules_to_save") or []
    bare = {key.removeprefix(WRAPPER): tensor for key, tensor in module.extras.items()}
    return {key: tensor for key, tensor in bare.items() if saved_module(key, saved)}


def head_extras(head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Task-head tensors keyed as in the task model, keyed as a peft module's extras."""
    return {WRAPPER + key: tensor for key, tensor in head.items()}


def sniff(config: dict[str, Any]) -> bool:
    """Whether an ``adapter_config.json`` was written by peft."""
    return "peft_type" in config


def _check_supported(config: dict[str, Any], directory: Path) -> None:
    """Refuse, by name, the peft options whose effect peftport cannot carry. ``fan_in_fan_out`` is accepted:
    every supported family's layers are ``nn.Linear``, on which peft ignores it (and so does the writer)."""
    if config.get("peft_type") != "LORA":
        raise ModuleFormatError(f"{directory}: peft type {config.get('peft_type')} is not supported (only LORA)")
    bias = config.get("bias") or "none"
    if bias != "none":
        raise ModuleFormatError(
            f"{directory}: peft LoRA option bias='{bias}' is not supported: the module also trains the base "
            "model's biases, which peftport cannot carry (only bias='none' modules)"
        )
    used = [name for name in REFUSED_OPTIONS if config.get(name)]
    init = str(config.get("init_lora_weights", True)).lower()
    if init.startswith(BASE_CHANGING_INITS):
        used.append(f"init_lora_weights='{config['init_lora_weights']}' (it changes the base model's weights)")
    if used:
        raise ModuleFormatError(f"{directory}: peft LoRA option(s) {', '.join(used)} are not supported")


def _split_keys(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, tuple[str, str]], dict[str, torch.Tensor]]:
    """LoRA keys as ``key -> (module path, role)``; everything else is an extra."""
    lora, extras = {}, {}
    for key, tensor in tensors.items():
        bare = key[len(WRAPPER) :] if key.startswith(WRAPPER) else key
        match = LORA_KEY.match(bare)
        if match:
            lora[key] = (match["path"], match["role"])
        else:
            extras[key] = tensor
    return lora, extras


def _listed_layers(config: dict[str, Any], layers: LayerTensors, directory: Path) -> list[int] | None:
    """The config's ``layers_to_transform`` as a list (None when the module is on every layer); tensors on a
    layer it does not list contradict it."""
    listed = config.get("layers_to_transform")
    if listed is None:
        return None
    listed = [listed] if isinstance(listed, int) else listed
    if not isinstance(listed, list) or not all(isinstance(i, int) for i in listed):
        raise ModuleFormatError(f"{directory}: layers_to_transform must be a layer index or a list of them")
    outside = sorted(set(layers) - set(listed))
    if outside:
        raise ModuleFormatError(
            f"{directory}: adapter_config.json lists layers_to_transform {listed}, but the weights hold "
            f"tensors on layer {outside[0]}"
        )
    return sorted(listed)


def _hidden_size(spec: ArchitectureSpec, layers: LayerTensors) -> int | None:
    for layer in layers.values():
        for slot, roles in layer.items():
            if spec.slots[slot].in_dim == "hidden":
                return int(roles[LORA_A].shape[1])
    return None


def read(directory: Path, family: str | None = None) -> PeftModule:
    """Load a peft LoRA directory into a `PeftModule`."""
    config = read_json(directory / CONFIG_FILE)
    _check_supported(config, directory)
    tensors = read_tensors(first_existing(directory, WEIGHT_FILES))
    lora_keys, extras = _split_keys(tensors)
    if not lora_keys:
        raise ModuleFormatError(f"{directory}: the weights file holds no LoRA tensors")
    named = named_model_type(config.get("base_model_name_or_path"))
    spec = resolve_spec(sorted({path for path, _ in lora_keys.values()}), family, named)
    where = locate_all(spec, [path for path, _ in lora_keys.values()])
    layers: LayerTensors = {}
    for key, (path, role) in lora_keys.items():
        if path not in where:
            extras[key] = tensors[key]
            continue
        loc = where[path]
        layers.setdefault(loc.layer, {}).setdefault(loc.slot, {})[role] = tensors[key]
    settings = LoraSettings(
        rank=int(config["r"]),
        alpha=float(config.get("lora_alpha", config["r"])),
        use_rslora=bool(config.get("use_rslora", False)),
        dropout=float(config.get("lora_dropout", 0.0)),
    )
    module = PeftModule(
        kind=LORA,
        settings=settings,
        family=spec.name,
        layers=layers,
        task_model=any(loc.task_model for loc in where.values()),
        base_model=config.get("base_model_name_or_path"),
        hidden_size=_hidden_size(spec, layers),
        extras=extras,
        format_options={
            "source_format": NAME,
            **{k: config.get(k) for k in KEPT_OPTIONS},
            "layers_to_transform": _listed_layers(config, layers, directory),
        },
    )
    targets = config.get("target_modules")
    validate_module(module, directory, targets if isinstance(targets, list) else None)
    return module


def _target_modules(spec: ArchitectureSpec, module: PeftModule) -> list[str] | str:
    """peft ``target_modules``: short names when unambiguous and all layers are used, else a regex naming the
    layers (a module read with ``layers_to_transform`` is not on every layer of its model)."""
    slots = module.slots
    short = [spec.slots[s].path.rsplit(".", 1)[-1] for s in slots]
    all_short = [slot.path.rsplit(".", 1)[-1] for slot in spec.slots.values() if slot.kind == "linear"]
    some_layers = module.num_layers is None and module.format_options.get("layers_to_transform") is not None
    every_layer = not some_layers and module.layer_indices == list(range(module.num_layers or max(module.layers) + 1))
    if every_layer and all(all_short.count(name) == 1 for name in short):
        return sorted(short)
    layer = "(?:" + "|".join(str(i) for i in module.layer_indices) + ")"
    template = re.escape(spec.layer_template).replace(re.escape("{layer}"), layer)
    paths = "|".join(re.escape(spec.slots[s].path) for s in slots)
    return rf"^(?:.*\.)?{template}\.(?:{paths})$"


def _state_dict(spec: ArchitectureSpec, module: PeftModule) -> dict[str, torch.Tensor]:
    prefix = WRAPPER + (spec.base_prefix + "." if module.task_model else "")
    out = {}
    for layer, slots in sorted(module.layers.items()):
        for slot, roles in slots.items():
            for role, tensor in roles.items():
                out[f"{prefix}{spec.module_path(slot, layer)}.{role}.weight"] = tensor
    if module.format_options.get("source_format") == NAME:
        out.update(module.extras)
    return out


def check_writable(module: PeftModule) -> None:
    """Raise if peft cannot represent the module."""
    if module.kind != LORA:
        raise ModuleFormatError(f"peft has no {module.kind} adapters: write this module in AdapterHub format")
    spec = spec_by_name(module.family)
    bad = [s for s in module.slots if spec.slots[s].kind != "linear"]
    if bad:
        raise ModuleFormatError(f"peft LoRA cannot target slot(s) {bad}")


def write(module: PeftModule, directory: Path) -> None:
    """Write ``module`` as a peft LoRA directory that ``PeftModel.from_pretrained`` loads."""
    from peft import LoraConfig

    check_writable(module)
    spec = spec_by_name(module.family)
    settings = lora_settings(module)
    options = module.format_options if module.format_options.get("source_format") == NAME else {}
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        use_rslora=settings.use_rslora,
        lora_dropout=settings.dropout,
        target_modules=_target_modules(spec, module),
        task_type=options.get("task_type") or module.format_options.get("task_type"),
        modules_to_save=options.get("modules_to_save"),
        base_model_name_or_path=module.base_model,
        revision=options.get("revision"),
    )
    config.save_pretrained(str(directory))
    write_safetensors(_state_dict(spec, module), directory / WEIGHT_FILES[0])
