"""One architecture spec per model family, loaded from a JSON file in ``specs/``.

A spec names the family's layer path template, the config keys for depth and widths,
and for every *slot* the module path relative to a layer. Adding a family is adding a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Dimension = Literal["hidden", "intermediate", "query", "kv"]
# attention spaces made of heads: all query heads, or the key/value heads (fewer with grouped-query attention)
HEAD_DIMENSIONS = ("query", "kv")


class SlotSpec(BaseModel):
    """Where one slot lives inside a layer, and the widths of its input and output."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    path: str
    kind: Literal["linear", "bottleneck"]
    in_dim: Dimension = Field("hidden", alias="in")
    out_dim: Dimension = Field("hidden", alias="out")
    probe: str | None = None  # bottleneck: module whose output is the adapter's input (before the norm)
    probe_normed: str | None = None  # bottleneck: the sub-layer norm, whose output is the input of
    # adapters placed after it (AdapterHub ``original_ln_before``, e.g. seq_bn)

    @property
    def probe_path(self) -> str:
        """Module (relative to the layer) whose input/output the alignment probes for this slot."""
        return self.probe or self.path


class ConfigKeys(BaseModel):
    """Names of the Hugging Face config attributes giving depth and widths."""

    model_config = ConfigDict(frozen=True)

    num_layers: str
    hidden_size: str
    intermediate_size: str
    num_heads: str | None = None
    num_kv_heads: str | None = None  # grouped-query attention; default: num_heads
    head_dim: str | None = None  # default: hidden_size // num_heads


@dataclass(frozen=True)
class ModelDims:
    """Depth and widths of one model."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None

    def width(self, dim: Dimension) -> int:
        """Width of a named dimension: ``hidden``, ``intermediate``, ``query`` (all heads) or ``kv``."""
        if dim == "intermediate":
            return self.intermediate_size
        if dim in HEAD_DIMENSIONS and self.head_dim is not None:
            heads = self.num_heads if dim == "query" else self.num_kv_heads
            return int(heads) * self.head_dim
        return self.hidden_size


@dataclass(frozen=True)
class Location:
    """A module path resolved against a spec."""

    layer: int
    slot: str
    task_model: bool


class ArchitectureSpec(BaseModel):
    """Everything peftport knows about one model family."""

    model_config = ConfigDict(frozen=True)

    name: str
    model_types: tuple[str, ...]
    base_prefix: str
    base_model_class: str
    layer_template: str
    config_keys: ConfigKeys
    adapterhub: bool
    slots: dict[str, SlotSpec]

    @field_validator("layer_template")
    @classmethod
    def _has_layer_placeholder(cls, value: str) -> str:
        if "{layer}" not in value:
            raise ValueError("layer_template must contain '{layer}'")
        return value

    def module_path(self, slot: str, layer: int) -> str:
        """Path of a slot's module in the base model, e.g. ``encoder.layer.3.attention.self.query``."""
        return f"{self.layer_template.format(layer=layer)}.{self.slots[slot].path}"

    def slots_of_kind(self, kind: str) -> list[str]:
        """Slot names of one kind (``linear`` or ``bottleneck``), in spec order."""
        return [name for name, slot in self.slots.items() if slot.kind == kind]

    @cached_property
    def _path_pattern(self) -> re.Pattern[str]:
        layer = re.escape(self.layer_template).replace(re.escape("{layer}"), r"(?P<layer>\d+)")
        prefix = re.escape(self.base_prefix + ".")
        return re.compile(rf"^(?P<prefix>{prefix})?{layer}\.(?P<rest>.+)$")

    def locate(self, module_path: str) -> Location | None:
        """Resolve a module path (optionally with the task model's base prefix) to layer and slot."""
        match = self._path_pattern.match(module_path)
        if match is None:
            return None
        for name, slot in self.slots.items():
            if slot.path == match["rest"]:
                return Location(int(match["layer"]), name, match["prefix"] is not None)
        return None

    def in_layers(self, module_path: str) -> bool:
        """Whether a module path lies inside one of the family's transformer layers."""
        return self._path_pattern.match(module_path) is not None

    def dims(self, config: Any) -> ModelDims:
        """Depth and widths read from a Hugging Face config (object or dict)."""
        values = config if isinstance(config, dict) else config.to_dict()
        keys = self.config_keys
        missing = [k for k in (keys.num_layers, keys.hidden_size, keys.intermediate_size) if k not in values]
        if missing:
            raise KeyError(f"config of a {self.name} model lacks {missing}")
        hidden = int(values[keys.hidden_size])
        heads = values.get(keys.num_heads) if keys.num_heads else None
        if heads is None:
            return ModelDims(int(values[keys.num_layers]), hidden, int(values[keys.intermediate_size]))
        kv_heads = values.get(keys.num_kv_heads) if keys.num_kv_heads else None
        head_dim = values.get(keys.head_dim) if keys.head_dim else None
        return ModelDims(
            int(values[keys.num_layers]),
            hidden,
            int(values[keys.intermediate_size]),
            int(heads),
            int(kv_heads or heads),
            int(head_dim or hidden // int(heads)),
        )
