"""Codec for AdapterHub ``adapters`` modules: bottleneck adapters (seq_bn, double_seq_bn) and LoRA."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from peftport.architectures.registry import spec_by_name
from peftport.architectures.spec import ArchitectureSpec
from peftport.core.kinds import BOTTLENECK, LORA
from peftport.core.module import (
    BottleneckSettings,
    LayerTensors,
    LoraSettings,
    PeftModule,
    bottleneck_settings,
    bottleneck_width,
    lora_settings,
)
from peftport.errors import ModuleFormatError
from peftport.formats.families import locate_all, named_model_type, resolve_spec
from peftport.formats.tensor_files import first_existing, read_json, read_tensors, write_torch
from peftport.formats.validation import validate_module

ADAPTERHUB_BOTTLENECK = "bottleneck"  # AdapterHub's own name of the bottleneck architecture (its config files)

NAME = "adapterhub"
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("pytorch_adapter.bin", "adapter.safetensors")
LORA_KEY = re.compile(r"^(?P<path>.+)\.loras\.(?P<name>[^.]+)\.(?P<role>lora_[AB])$")
BOTTLENECK_KEY = re.compile(r"^(?P<path>.+)\.adapters\.(?P<name>[^.]+)\.(?P<param>.+)$")
BOTTLENECK_SLOT_FLAGS = {"attn_adapter": "mh_adapter", "ffn_adapter": "output_adapter"}
LORA_ATTN_MATRICES = {"attn_q": "q", "attn_k": "k", "attn_v": "v"}
LORA_FLAGS = {"ffn_in": "intermediate_lora", "ffn_out": "output_lora"}
UNSUPPORTED_BOTTLENECK = ("phm_layer", "inv_adapter")
# a prediction head saved beside the adapter (``save_adapter(..., with_head=True)``), carried as extras under
# HEAD_KEY and the head config under format_options["head_config"]: rewritten as saved by an AdapterHub output
HEAD_CONFIG_FILE = "head_config.json"
HEAD_WEIGHT_FILES = ("pytorch_model_head.bin", "model_head.safetensors")
HEAD_KEY = "adapterhub_head:"


def sniff(config: dict[str, Any]) -> bool:
    """Whether an ``adapter_config.json`` was written by AdapterHub (``adapters``)."""
    return isinstance(config.get("config"), dict) and ("model_type" in config or "version" in config)


def _param_roles(ln_before: bool) -> dict[str, str | None]:
    """AdapterHub parameter name -> neutral role (None: a duplicate to skip)."""
    down = 1 if ln_before else 0
    roles: dict[str, str | None] = {}
    for p in ("weight", "bias"):
        roles[f"adapter_down.{down}.{p}"] = f"down.{p}"
        roles[f"adapter_up.{p}"] = f"up.{p}"
        roles[f"adapter_norm_before.{p}"] = f"norm_before.{p}"
        roles[f"adapter_norm_after.{p}"] = f"norm_after.{p}"
        roles[f"gate.{p}"] = f"gate.{p}"
        if ln_before:
            roles[f"adapter_down.0.{p}"] = None  # AdapterHub stores the pre-norm twice
    return roles


def _settings(options: dict[str, Any], directory: Path) -> LoraSettings | BottleneckSettings:
    arch = options.get("architecture")
    if arch == "lora":
        variant = options.get("use_dora") or options.get("use_gating") or options.get("vera_b") or options.get("vera_d")
        if options.get("composition_mode", "add") != "add" or variant:
            raise ModuleFormatError(
                f"{directory}: only additive, ungated AdapterHub LoRA is supported (not composition_mode "
                f"'{options.get('composition_mode')}', use_dora, use_gating, VeRA's vera_b/vera_d)"
            )
        return LoraSettings(rank=int(options["r"]), alpha=float(options["alpha"]), dropout=float(options["dropout"]))
    if arch not in (None, ADAPTERHUB_BOTTLENECK):
        raise ModuleFormatError(f"{directory}: AdapterHub architecture '{arch}' is not supported")
    used = [name for name in UNSUPPORTED_BOTTLENECK if options.get(name)]
    if used:
        raise ModuleFormatError(f"{directory}: AdapterHub option(s) {', '.join(used)} are not supported")
    return BottleneckSettings(options=dict(options))


def _parse_key(key: str, is_lora: bool, roles: dict[str, str | None]) -> tuple[str, str, str | None] | None:
    """``(module path, adapter name, role)`` of one weight key, or None if it is not a module key."""
    if is_lora:
        match = LORA_KEY.match(key)
        return (match["path"], match["name"], match["role"]) if match else None
    match = BOTTLENECK_KEY.match(key)
    if match is None:
        return None
    if match["param"] not in roles:
        raise ModuleFormatError(f"unknown AdapterHub adapter parameter '{match['param']}' in '{key}'")
    return match["path"], match["name"], roles[match["param"]]


def _saved_head(directory: Path) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """The prediction head saved beside the adapter: its config and tensors (keyed ``HEAD_KEY + name``)."""
    if not (directory / HEAD_CONFIG_FILE).is_file():
        return None, {}
    config = read_json(directory / HEAD_CONFIG_FILE)
    tensors = read_tensors(first_existing(directory, HEAD_WEIGHT_FILES))
    return config, {HEAD_KEY + key: tensor for key, tensor in tensors.items()}


def read(directory: Path, family: str | None = None) -> PeftModule:
    """Load an AdapterHub module directory (with the prediction head saved beside it) into a `PeftModule`."""
    full = read_json(directory / CONFIG_FILE)
    settings = _settings(full["config"], directory)
    tensors = read_tensors(first_existing(directory, WEIGHT_FILES))
    roles = _param_roles(bool(full["config"].get("ln_before")))
    parsed = {k: _parse_key(k, isinstance(settings, LoraSettings), roles) for k in tensors}
    keys = {k: v for k, v in parsed.items() if v is not None}
    if not keys:
        raise ModuleFormatError(f"{directory}: the weights file holds no adapter tensors")
    named = full.get("model_type") or named_model_type(full.get("model_name"))
    spec = resolve_spec(sorted({p for p, _, _ in keys.values()}), family, named)
    where = locate_all(spec, [p for p, _, _ in keys.values()])
    layers: LayerTensors = {}
    head_config, head = _saved_head(directory)
    extras = {**{k: t for k, t in tensors.items() if parsed[k] is None}, **head}
    for key, (path, _, role) in keys.items():
        if path not in where:
            extras[key] = tensors[key]
        elif role is not None:
            loc = where[path]
            layers.setdefault(loc.layer, {}).setdefault(loc.slot, {})[role] = tensors[key]
    module = PeftModule(
        kind=LORA if isinstance(settings, LoraSettings) else BOTTLENECK,
        settings=settings,
        family=spec.name,
        layers=layers,
        name=str(full.get("name") or next(iter(keys.values()))[1]),
        task_model=any(loc.task_model for loc in where.values()),
        base_model=full.get("model_name") or None,
        model_type=full.get("model_type"),
        hidden_size=full.get("hidden_size"),
        extras=extras,
        format_options={"source_format": NAME, "model_class": full.get("model_class"), "head_config": head_config},
    )
    validate_module(module, directory)
    return module


def _uniform_slots(module: PeftModule) -> list[str]:
    """The slot set shared by every layer; AdapterHub cannot vary it per layer."""
    per_layer = {tuple(sorted(slots)) for slots in module.layers.values()}
    if len(per_layer) != 1:
        raise ModuleFormatError("AdapterHub needs the same slots in every layer; this module varies them")
    return list(next(iter(per_layer)))


def _num_layers(module: PeftModule) -> int:
    """The model's layer count, for ``leave_out``: recorded, else read from the base model's config when the
    module lists ``layers_to_transform`` (peft), else one past the module's last layer."""
    if module.num_layers:
        return module.num_layers
    listed = module.format_options.get("layers_to_transform")
    if listed is None:
        return max(module.layers) + 1
    from peftport.architectures.models import describe_model
    from peftport.errors import PeftportError

    try:
        return describe_model(str(module.base_model)).dims.num_layers
    except (PeftportError, KeyError) as exc:
        raise ModuleFormatError(
            f"the module is on layers {listed} (layers_to_transform) of a model whose layer count AdapterHub's "
            f"leave_out needs, and its base model '{module.base_model}' cannot be read ({exc}): set "
            "base_model_name_or_path in adapter_config.json to the model's folder"
        ) from None


def check_writable(module: PeftModule) -> None:
    """Raise if AdapterHub cannot represent the module on its family."""
    spec = spec_by_name(module.family)
    if not spec.adapterhub:
        raise ModuleFormatError(f"AdapterHub does not support {module.family} models: write peft format instead")
    slots = _uniform_slots(module)
    allowed = LORA_ATTN_MATRICES.keys() | LORA_FLAGS.keys() if module.kind == LORA else BOTTLENECK_SLOT_FLAGS.keys()
    bad = [s for s in slots if s not in allowed]
    if bad:
        raise ModuleFormatError(f"AdapterHub {module.kind} cannot target slot(s) {bad}: keep the peft format")
    _num_layers(module)
    if isinstance(module.provenance.get("head"), dict) and module.format_options.get("source_format") != NAME:
        raise ModuleFormatError(
            "the module carries a moved task head (peft modules_to_save), which an AdapterHub directory cannot "
            "hold: save it in peft format"
        )


def _lora_options(module: PeftModule, slots: list[str], leave_out: list[int]) -> Any:
    from adapters import LoRAConfig

    settings = lora_settings(module)
    return LoRAConfig(
        r=settings.rank,
        alpha=settings.scaling * settings.rank,  # AdapterHub always scales by alpha / r
        dropout=settings.dropout,
        attn_matrices=[m for s, m in LORA_ATTN_MATRICES.items() if s in slots],
        selfattn_lora=any(s in LORA_ATTN_MATRICES for s in slots),
        intermediate_lora="ffn_in" in slots,
        output_lora="ffn_out" in slots,
        leave_out=leave_out,
    )


def _bottleneck_options(module: PeftModule, slots: list[str], leave_out: list[int], hidden: int) -> Any:
    from adapters import AdapterConfig

    options = dict(bottleneck_settings(module).options)
    width = bottleneck_width(module)
    options["reduction_factor"] = hidden / width if hidden % width else hidden // width
    options["leave_out"] = leave_out
    options.update({flag: slot in slots for slot, flag in BOTTLENECK_SLOT_FLAGS.items()})
    return AdapterConfig.load(options)


def _state_dict(spec: ArchitectureSpec, module: PeftModule, ln_before: bool) -> dict[str, torch.Tensor]:
    prefix = spec.base_prefix + "." if module.task_model else ""
    params: dict[str, list[str]] = {}
    for param, role in _param_roles(ln_before).items():
        params.setdefault(role or f"norm_before.{param.rsplit('.', 1)[1]}", []).append(param)
    out = {}
    for layer, slots in sorted(module.layers.items()):
        for slot, roles in slots.items():
            base = f"{prefix}{spec.module_path(slot, layer)}"
            for role, tensor in roles.items():
                if module.kind == LORA:
                    out[f"{base}.loras.{module.name}.{role}"] = tensor
                else:
                    out.update({f"{base}.adapters.{module.name}.{p}": tensor for p in params[role]})
    if module.format_options.get("source_format") == NAME:
        out.update({k: t for k, t in module.extras.items() if not k.startswith(HEAD_KEY)})
    return out


def _write_head(module: PeftModule, directory: Path) -> None:
    """The prediction head an AdapterHub source was saved with, back beside the adapter, as it was."""
    head = {k.removeprefix(HEAD_KEY): t for k, t in module.extras.items() if k.startswith(HEAD_KEY)}
    config = module.format_options.get("head_config")
    if module.format_options.get("source_format") != NAME or not head or not config:
        return
    (directory / HEAD_CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_torch(head, directory / HEAD_WEIGHT_FILES[0])


def write(module: PeftModule, directory: Path) -> None:
    """Write ``module`` as an AdapterHub directory that ``model.load_adapter`` loads."""
    from adapters.configuration.model_adapters_config import build_full_config

    check_writable(module)
    spec = spec_by_name(module.family)
    slots = _uniform_slots(module)
    hidden = int(module.hidden_size or 0)
    if hidden <= 0:
        raise ModuleFormatError("AdapterHub needs the model's hidden size, and the module does not record it")
    num_layers = _num_layers(module)
    leave_out = [i for i in range(num_layers) if i not in module.layers]
    if module.kind == LORA:
        config = _lora_options(module, slots, leave_out)
    else:
        config = _bottleneck_options(module, slots, leave_out, hidden)
    model = SimpleNamespace(model_type=module.model_type or spec.model_types[0], hidden_size=hidden)
    model_class = module.format_options.get("model_class") or spec.base_model_class
    full = build_full_config(
        config, model, name=module.name, model_name=module.base_model or "", model_class=model_class
    )
    (directory / CONFIG_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_torch(_state_dict(spec, module, bool(config.to_dict().get("ln_before"))), directory / WEIGHT_FILES[0])
    _write_head(module, directory)
