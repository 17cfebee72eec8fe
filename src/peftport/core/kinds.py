"""The module kinds, one `KindSpec` each: the only place a kind is named. A kind says which architecture slots
it sits on, its tensors' roles and which of their axes live in the slot's input or output space, its settings
class, the probe points its tensors are aligned at, and which transfer options apply to it (LoRA B alignment,
SVD merging and calibration need a low-rank update ``B @ A``). Codecs, validation, training and the transfer
read these entries (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from peftport.core.points import ProbePoint
from peftport.core.settings import BottleneckSettings, LoraSettings

ModuleKind = Literal["lora", "bottleneck"]
LORA: ModuleKind = "lora"
BOTTLENECK: ModuleKind = "bottleneck"

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
class KindSpec:
    """One module kind and everything the rest of peftport asks of it."""

    name: str
    slot_kind: str  # the architecture spec's slot kind it sits on ("linear", "bottleneck")
    roles: tuple[str, ...]
    role_axes: dict[str, dict[int, str]]  # role -> {axis: "in" | "out"}; unlisted roles have no model-width axis
    settings: type
    # (settings, slot, lora_b) -> the points its tensors are aligned at: what it reads first, then what it writes
    probe_points: Callable[[Any, str, str], list[ProbePoint]]
    candidate_points: Callable[[str, str], list[ProbePoint]]  # (slot, lora_b) -> every point a module may need
    low_rank: bool = False  # a ``B @ A`` update: lora_b, SVD merging and calibration apply
    library: str = "peft"  # the library training builds it with: peft or adapters (AdapterHub)
    record: Callable[[Any], dict[str, Any]] = lambda settings: {}  # what a manifest says of its settings
    summary_keys: tuple[str, ...] = ()  # the settings `inspect` shows

    def reads_and_writes(self, settings: Any, slot: str, lora_b: str) -> tuple[ProbePoint, ProbePoint]:
        """The point its reading axes are aligned at and the point its writing axes are (often the same)."""
        reads, *writes = self.probe_points(settings, slot, lora_b)
        return reads, writes[0] if writes else reads


def _lora_candidates(slot: str, lora_b: str) -> list[ProbePoint]:
    """A LoRA slot's input, and its output when LoRA B is aligned there: the same for every LoRA."""
    return [ProbePoint(side, slot) for side in (("in", "out") if lora_b == "output" else ("in",))]


def _lora_points(settings: LoraSettings, slot: str, lora_b: str) -> list[ProbePoint]:
    return _lora_candidates(slot, lora_b)


def _bottleneck_points(settings: BottleneckSettings, slot: str, lora_b: str) -> list[ProbePoint]:
    """The adapter's input: after the sub-layer norm (``adapter_ln:``) or the sub-layer's output (``adapter:``)."""
    return [ProbePoint("adapter_ln" if settings.reads_normed_input else "adapter", slot)]


def _bottleneck_candidates(slot: str, lora_b: str) -> list[ProbePoint]:
    return [ProbePoint("adapter", slot), ProbePoint("adapter_ln", slot)]


def _lora_record(settings: LoraSettings) -> dict[str, Any]:
    return {"rank": settings.rank, "alpha": settings.alpha, "use_rslora": settings.use_rslora}


KINDS: dict[str, KindSpec] = {
    LORA: KindSpec(
        LORA,
        slot_kind="linear",
        roles=LORA_ROLES,
        role_axes={LORA_A: {1: "in"}, LORA_B: {0: "out"}},
        settings=LoraSettings,
        probe_points=_lora_points,
        candidate_points=_lora_candidates,
        low_rank=True,
        record=_lora_record,
        summary_keys=("rank", "alpha", "scaling"),
    ),
    BOTTLENECK: KindSpec(
        BOTTLENECK,
        slot_kind=BOTTLENECK,
        roles=BOTTLENECK_ROLES,
        role_axes={  # an adapter reads and writes the same space, so "in" and "out" maps are the same
            "down.weight": {1: "in"},
            "up.weight": {0: "out"},
            "up.bias": {0: "out"},
            "norm_before.weight": {0: "in"},
            "norm_before.bias": {0: "in"},
            "norm_after.weight": {0: "out"},
            "norm_after.bias": {0: "out"},
            "gate.weight": {1: "in"},
        },
        settings=BottleneckSettings,
        probe_points=_bottleneck_points,
        candidate_points=_bottleneck_candidates,
        library="adapters",
        summary_keys=("architecture", "non_linearity"),
    ),
}
