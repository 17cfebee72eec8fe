"""The check every command runs on every module it reads, before anything is written: the config and the
tensors must agree (rank, targets, shapes per slot, every expected tensor present, floating-point and
finite values; for AdapterHub bottlenecks also the reduction factor, the non-linearity and the
Houlsby/Pfeiffer placement). A refusal names the file, the tensor and the two numbers that disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from peftport.architectures.registry import spec_by_name
from peftport.core.kinds import LORA
from peftport.core.module import LORA_A, LORA_B, PeftModule, bottleneck_settings, lora_settings
from peftport.errors import ModuleFormatError

BOTTLENECK_REQUIRED = ("down.weight", "down.bias", "up.weight", "up.bias")
PLACEMENT_FLAGS = {"attn_adapter": "mh_adapter", "ffn_adapter": "output_adapter"}
Widths = dict[tuple[str, str], dict[int, list[str]]]  # (slot, side) -> width -> tensors of that width


def validate_module(module: PeftModule, directory: Path, targets: list[str] | None = None) -> None:
    """Refuse a module whose files disagree. ``targets``: the short module names a peft config lists in
    ``target_modules`` (each must have tensors)."""
    _check_values(module, directory)
    if module.kind == LORA:
        _check_lora(module, directory)
        if targets is not None:
            _check_targets(module, directory, targets)
    else:
        _check_bottleneck(module, directory)


def _name(layer: int, slot: str, role: str) -> str:
    return f"layer {layer} {slot} {role}"


def _check_values(module: PeftModule, directory: Path) -> None:
    for layer, slots in sorted(module.layers.items()):
        for slot, roles in slots.items():
            for role, tensor in roles.items():
                if not tensor.is_floating_point():
                    raise ModuleFormatError(
                        f"{directory}: {_name(layer, slot, role)} has dtype {tensor.dtype}, not a float type"
                    )
                if not bool(torch.isfinite(tensor).all()):
                    raise ModuleFormatError(f"{directory}: {_name(layer, slot, role)} holds NaN or infinite values")


def _check_lora(module: PeftModule, directory: Path) -> None:
    """Both factors in every slot, with the config's rank, and one width per slot side across layers."""
    rank = lora_settings(module).rank
    widths: Widths = {}
    for layer, slots in sorted(module.layers.items()):
        for slot, roles in slots.items():
            for role in (LORA_A, LORA_B):
                if role not in roles:
                    other = LORA_B if role == LORA_A else LORA_A
                    raise ModuleFormatError(f"{directory}: {_name(layer, slot, other)} has no {role} beside it")
            a, b = roles[LORA_A], roles[LORA_B]
            if a.dim() != 2 or b.dim() != 2:
                raise ModuleFormatError(f"{directory}: {_name(layer, slot, 'lora_A/lora_B')} are not matrices")
            if a.shape[0] != rank or b.shape[1] != rank:
                found = a.shape[0] if a.shape[0] != rank else b.shape[1]
                role = LORA_A if a.shape[0] != rank else LORA_B
                raise ModuleFormatError(
                    f"{directory}: the config says r={rank}, {_name(layer, slot, role)} has rank {found} "
                    f"(shape {tuple((a if role == LORA_A else b).shape)})"
                )
            for side, width, role in (("in", a.shape[1], LORA_A), ("out", b.shape[0], LORA_B)):
                widths.setdefault((slot, side), {}).setdefault(width, []).append(_name(layer, slot, role))
    _one_width(directory, widths)


def _one_width(directory: Path, widths: Widths) -> None:
    """Each slot side has one width in every layer; a tensor of a rarer width is named as cut short."""
    for found in widths.values():
        if len(found) > 1:
            common = max(found, key=lambda w: len(found[w]))
            odd = next(w for w in found if w != common)
            raise ModuleFormatError(
                f"{directory}: {found[odd][0]} is {odd} wide where {found[common][0]} is {common}: "
                "a tensor is cut short or misplaced"
            )


def _check_targets(module: PeftModule, directory: Path, targets: list[str]) -> None:
    """Every module name the config targets has tensors (peft ``target_modules`` as a list)."""
    spec = spec_by_name(module.family)
    present = {spec.slots[slot].path.rsplit(".", 1)[-1] for slot in module.slots}
    known = {slot.path.rsplit(".", 1)[-1] for slot in spec.slots.values() if slot.kind == "linear"}
    missing = sorted(t for t in targets if t in known and t not in present)
    if missing:
        raise ModuleFormatError(
            f"{directory}: adapter_config.json targets {missing}, but the weights hold no tensors for "
            f"{'it' if len(missing) == 1 else 'them'} (found {sorted(present)})"
        )


def _check_bottleneck(module: PeftModule, directory: Path) -> None:
    """Every projection present, one bottleneck width, and the config's factor, activation and placement."""
    options = bottleneck_settings(module).options
    widths: Widths = {}
    for layer, slots in sorted(module.layers.items()):
        for slot, roles in slots.items():
            missing = [role for role in BOTTLENECK_REQUIRED if role not in roles]
            if missing:
                raise ModuleFormatError(f"{directory}: {_name(layer, slot, missing[0])} is missing")
            down, up = roles["down.weight"], roles["up.weight"]
            if down.dim() != 2 or up.dim() != 2 or down.shape[0] != up.shape[1] or down.shape[1] != up.shape[0]:
                raise ModuleFormatError(
                    f"{directory}: {_name(layer, slot, 'down/up')} do not fit together "
                    f"(down {tuple(down.shape)}, up {tuple(up.shape)})"
                )
            widths.setdefault((slot, "width"), {}).setdefault(down.shape[0], []).append(
                _name(layer, slot, "down.weight")
            )
    _one_width(directory, widths)
    _check_factor(module, directory, options, widths)
    _check_placement(module, directory, options)
    _check_activation(directory, options)


def _check_factor(module: PeftModule, directory: Path, options: dict[str, Any], widths: Widths) -> None:
    factor, hidden = options.get("reduction_factor"), module.hidden_size
    if not isinstance(factor, (int, float)) or not hidden:
        return  # per-layer factors, or no recorded hidden size: nothing to compare
    for found in widths.values():
        for width, names in found.items():
            if abs(hidden / width - factor) > 1e-6 * factor:
                raise ModuleFormatError(
                    f"{directory}: {names[0]} is {width} wide: reduction_factor {factor:g} on hidden size "
                    f"{hidden} means {hidden / factor:g}"
                )


def _check_placement(module: PeftModule, directory: Path, options: dict[str, Any]) -> None:
    for slot, flag in PLACEMENT_FLAGS.items():
        has = slot in module.slots
        if has != bool(options.get(flag)):
            state = "hold" if has else "hold no"
            raise ModuleFormatError(
                f"{directory}: the config sets {flag}={bool(options.get(flag))}, but the weights {state} {slot} tensors"
            )


def _check_activation(directory: Path, options: dict[str, Any]) -> None:
    from transformers.activations import ACT2FN

    name = options.get("non_linearity")
    if name is not None and str(name).lower() != "leakyrelu" and str(name).lower() not in ACT2FN:
        raise ModuleFormatError(f"{directory}: unknown non_linearity '{name}' in adapter_config.json")
