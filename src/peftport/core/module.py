"""The neutral in-memory representation of a PEFT module.

A module is a table ``layers[layer_index][slot][role] -> tensor``:

- *slot* is a family-independent place in a transformer layer (``attn_q``, ``ffn_out``,
  ``ffn_adapter`` ...); architecture specs say where each slot lives in a given family.
- *role* names a tensor inside the slot's module: LoRA ``lora_A`` ``(r, in)`` and
  ``lora_B`` ``(out, r)``; bottleneck ``down.weight`` ``(b, d)``, ``down.bias`` ``(b,)``,
  ``up.weight`` ``(d, b)``, ``up.bias`` ``(d,)``, ``norm_before.*``, ``norm_after.*``
  ``(d,)`` and ``gate.weight`` ``(1, d)`` / ``gate.bias`` ``(1,)``.

Formats (peft, AdapterHub) are thin codecs to and from this representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from peftport.core.kinds import BOTTLENECK_ROLES, KINDS, LORA_A, LORA_B, LORA_ROLES, KindSpec, ModuleKind
from peftport.core.settings import BottleneckSettings, LoraSettings

__all__ = [
    "BOTTLENECK_ROLES", "LORA_A", "LORA_B", "LORA_ROLES", "BottleneckSettings", "LoraSettings", "ModuleKind",
    "PeftModule",
]  # fmt: skip
LayerTensors = dict[int, dict[str, dict[str, torch.Tensor]]]


@dataclass
class PeftModule:
    """One PEFT module for one model, independent of the file format it came from."""

    kind: ModuleKind
    settings: LoraSettings | BottleneckSettings
    family: str
    layers: LayerTensors
    name: str = "default"
    task_model: bool = False
    base_model: str | None = None
    model_type: str | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    format_options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown module kind '{self.kind}': use one of {', '.join(KINDS)}")
        expected = self.spec.settings
        if not isinstance(self.settings, expected):
            raise ValueError(f"a {self.kind} module needs {expected.__name__}, got {type(self.settings).__name__}")

    @property
    def spec(self) -> KindSpec:
        """The definition of the module's kind (``core.kinds``)."""
        return KINDS[self.kind]

    @property
    def layer_indices(self) -> list[int]:
        """Sorted indices of the layers that carry the module."""
        return sorted(self.layers)

    @property
    def slots(self) -> list[str]:
        """Sorted slot names used in any layer."""
        return sorted({slot for layer in self.layers.values() for slot in layer})

    def num_parameters(self) -> int:
        """Number of scalars in the per-layer tensors."""
        return sum(t.numel() for layer in self.layers.values() for slot in layer.values() for t in slot.values())

    def with_layers(self, layers: LayerTensors, **changes: Any) -> PeftModule:
        """A copy with other layer tensors (and optionally other metadata)."""
        return replace(self, layers=layers, **changes)


def lora_rank(module: PeftModule) -> int:
    """The LoRA rank read from the tensors (first ``lora_A`` found)."""
    for layer in module.layers.values():
        for roles in layer.values():
            if LORA_A in roles:
                return int(roles[LORA_A].shape[0])
    raise ValueError("module has no lora_A tensor")


def bottleneck_width(module: PeftModule) -> int:
    """The bottleneck width read from the tensors (first ``down.weight`` found)."""
    for layer in module.layers.values():
        for roles in layer.values():
            if "down.weight" in roles:
                return int(roles["down.weight"].shape[0])
    raise ValueError("module has no down.weight tensor")


def lora_settings(module: PeftModule) -> LoraSettings:
    """The module's LoRA settings, or a `ValueError` for a bottleneck module."""
    if not isinstance(module.settings, LoraSettings):
        raise ValueError(f"expected a LoRA module, got a {module.kind} module")
    return module.settings


def bottleneck_settings(module: PeftModule) -> BottleneckSettings:
    """The module's bottleneck settings, or a `ValueError` for a LoRA module."""
    if not isinstance(module.settings, BottleneckSettings):
        raise ValueError(f"expected a bottleneck module, got a {module.kind} module")
    return module.settings
