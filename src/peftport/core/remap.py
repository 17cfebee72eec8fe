"""Apply a layer map to module tensors (pure tensor function)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from peftport.core.layer_maps import LayerMap
from peftport.core.module import LayerTensors
from peftport.errors import LayerMapError

# (student layer, teacher layer, slot, teacher tensors) -> tensors for the student
SlotTransform = Callable[[int, int, str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
# the tensors of one slot from every teacher layer of a group -> the student's tensors
Merge = Callable[[list[dict[str, torch.Tensor]]], dict[str, torch.Tensor]]


def mean_roles(sources: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The paper's merge: each tensor is the element-wise mean over the group."""
    return {role: mean_tensors([s[role] for s in sources]) for role in sources[0]}


def mean_tensors(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean, computed in float64 and cast back to the inputs' dtype.

    >>> mean_tensors([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])])
    tensor([2.0000, 3.5000])
    """
    if len(tensors) == 1:
        return tensors[0].clone()
    stacked = torch.stack([t.to(torch.float64) for t in tensors])
    return stacked.mean(dim=0).to(tensors[0].dtype)


def _slot_sources(layers: LayerTensors, group: tuple[int, ...], slot: str) -> list[dict[str, torch.Tensor]]:
    missing = [t for t in group if slot not in layers.get(t, {})]
    if missing:
        raise LayerMapError(f"teacher layer(s) {missing} carry no '{slot}' module, but the layer map uses them")
    return [layers[t][slot] for t in group]


def remap_layers(
    layers: LayerTensors, layer_map: LayerMap, transform: SlotTransform | None = None, merge: Merge = mean_roles
) -> LayerTensors:
    """Student tensors: for student layer ``i``, the mean over ``layer_map.sources[i]``.

    Slots come from the teacher's layers in the group; a group with no module at all
    yields no student module for that layer (teacher modules left out of some layers).
    ``transform`` (e.g. pruning with that pair's alignment) is applied to each teacher
    layer's tensors before averaging; ``merge`` combines a group (default: the mean of each tensor).
    """
    student: LayerTensors = {}
    for index, group in enumerate(layer_map.sources):
        slots = sorted({slot for t in group for slot in layers.get(t, {})})
        if not slots:
            continue
        student[index] = {}
        for slot in slots:
            sources = _slot_sources(layers, group, slot)
            if transform is not None:
                sources = [transform(index, t, slot, roles) for t, roles in zip(group, sources, strict=True)]
            student[index][slot] = merge(sources)
    return student
