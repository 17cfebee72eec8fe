"""Prune module tensors to the student's widths with index maps (pure tensor functions).

Each role lists the axes that live in the slot's input space ("in") or output space ("out").
A bottleneck adapter reads and writes the same space, so its "in" and "out" maps are the same.
"""

from __future__ import annotations

import torch

# role -> {axis: space}; roles not listed (down.bias, gate.bias) live in the bottleneck or are scalars
ROLE_AXES: dict[str, dict[int, str]] = {
    "lora_A": {1: "in"},
    "lora_B": {0: "out"},
    "down.weight": {1: "in"},
    "up.weight": {0: "out"},
    "up.bias": {0: "out"},
    "norm_before.weight": {0: "in"},
    "norm_before.bias": {0: "in"},
    "norm_after.weight": {0: "out"},
    "norm_after.bias": {0: "out"},
    "gate.weight": {1: "in"},
}


def prune_roles(
    roles: dict[str, torch.Tensor], index_in: torch.Tensor, index_out: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Keep, along each role's input/output axes, the teacher entries ``index_in`` / ``index_out``.

    >>> a = torch.arange(6.0).reshape(1, 6)
    >>> prune_roles({"lora_A": a}, torch.tensor([4, 1]), torch.tensor([0]))["lora_A"]
    tensor([[4., 1.]])
    """
    indices = {"in": index_in, "out": index_out}
    pruned = {}
    for role, tensor in roles.items():
        for axis, space in ROLE_AXES.get(role, {}).items():
            tensor = tensor.index_select(axis, indices[space].to(tensor.device))
        pruned[role] = tensor.clone()
    return pruned
