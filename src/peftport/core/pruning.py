"""Prune module tensors to the student's widths with index maps (pure tensor functions).

Each role lists the axes that live in the slot's input space ("in") or output space ("out").
A bottleneck adapter reads and writes the same space, so its "in" and "out" maps are the same.
"""

from __future__ import annotations

import torch

from peftport.core.kinds import KINDS

# role -> {axis: space} of every kind (core.kinds); roles not listed (down.bias, gate.bias) live in the
# bottleneck or are scalars
ROLE_AXES: dict[str, dict[int, str]] = {role: axes for kind in KINDS.values() for role, axes in kind.role_axes.items()}


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


# Element-wise gains: a projection mixes them with squared weights, so a unit gain stays a unit gain
GAIN_ROLES = frozenset({"norm_before.weight", "norm_after.weight"})


def _apply(tensor: torch.Tensor, axis: int, matrix: torch.Tensor, gain: bool) -> torch.Tensor:
    matrix = matrix.to(device=tensor.device, dtype=torch.float64)
    if gain:
        squared = matrix * matrix
        matrix = squared / squared.sum(1, keepdim=True).clamp_min(1e-12)
    moved = tensor.to(torch.float64).movedim(axis, 0)
    mixed = (matrix @ moved.reshape(moved.shape[0], -1)).reshape(matrix.shape[0], *moved.shape[1:])
    return mixed.movedim(0, axis).to(tensor.dtype).contiguous()


def project_roles(
    roles: dict[str, torch.Tensor], matrix_in: torch.Tensor, matrix_out: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Map each role's input/output axes with ``(d_s, d_t)`` projections (rotations, soft assignments).

    With selection matrices (one 1 per row) this equals :func:`prune_roles`.

    >>> a = torch.tensor([[1.0, 2.0, 3.0]])
    >>> project_roles({"lora_A": a}, torch.tensor([[0.5, 0.5, 0.0]]), torch.eye(1))["lora_A"]
    tensor([[1.5000]])
    """
    matrices = {"in": matrix_in, "out": matrix_out}
    projected = {}
    for role, tensor in roles.items():
        for axis, space in ROLE_AXES.get(role, {}).items():
            tensor = _apply(tensor, axis, matrices[space], role in GAIN_ROLES)
        projected[role] = tensor.clone()
    return projected


def project_head(head: dict[str, torch.Tensor], matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """A task head for the student: every axis as wide as the teacher's hidden size is mapped by ``matrix``.

    ``matrix`` is the ``(d_s, d_t)`` map of the final hidden states (a selection for permutations).

    >>> project_head({"classifier.weight": torch.tensor([[1.0, 2.0, 3.0]])}, torch.tensor([[0.0, 0.0, 1.0]]))
    {'classifier.weight': tensor([[3.]])}
    """
    teacher_width = matrix.shape[1]
    projected = {}
    for name, tensor in head.items():
        for axis, size in enumerate(tensor.shape):
            if size == teacher_width:
                tensor = _apply(tensor, axis, matrix, gain=False)
        projected[name] = tensor.clone()
    return projected
