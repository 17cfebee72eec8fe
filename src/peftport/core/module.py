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

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

ModuleKind = Literal["lora", "bottleneck"]
LayerTensors = dict[int, dict[str, dict[str, torch.Tensor]]]

LORA_A = "lora_A"
LORA_B = "lora_B"
LORA_ROLES = (LORA_A, LORA_B)
BOTTLENECK_ROLES = (
    "down.weight",
    "down.bias",
    "up.weight",
    "up.bias",
    "norm_before.weight",
    "norm_before.bias",
    "norm_after.weight",
    "norm_after.bias",
    "gate.weight",
    "gate.bias",
)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters. The update is ``scaling * B @ A`` applied to the layer input.

    >>> LoraSettings(rank=8, alpha=16).scaling
    2.0
    """

    rank: int
    alpha: float
    use_rslora: bool = False
    dropout: float = 0.0

    @property
    def scaling(self) -> float:
        """Effective multiplier of ``B @ A`` (peft: alpha/r, or alpha/sqrt(r) with rsLoRA)."""
        return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)


@dataclass(frozen=True)
class BottleneckSettings:
    """Bottleneck adapter settings, kept as AdapterHub's own config dictionary.

    ``options`` is the AdapterHub ``config`` block (placement, non-linearity, layer norms);
    the bottleneck width is read from the tensors, not from ``reduction_factor``.
    """

    options: dict[str, Any]

    @property
    def architecture(self) -> str:
        """``double_seq_bn`` (Houlsby) when adapters sit after attention and FFN, else ``seq_bn``."""
        both = self.options.get("mh_adapter") and self.options.get("output_adapter")
        return "double_seq_bn" if both else "seq_bn"

    @property
    def reads_normed_input(self) -> bool:
        """Whether the adapter's input is the sub-layer's normed residual sum (``original_ln_before``, seq_bn)
        rather than the sub-layer's output before the residual (double_seq_bn)."""
        return bool(self.options.get("original_ln_before", False))

    @property
    def non_linearity(self) -> str:
        """Activation between the down- and up-projection."""
        return str(self.options.get("non_linearity", "relu"))


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
        expected = LoraSettings if self.kind == "lora" else BottleneckSettings
        if not isinstance(self.settings, expected):
            raise ValueError(f"a {self.kind} module needs {expected.__name__}, got {type(self.settings).__name__}")

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
