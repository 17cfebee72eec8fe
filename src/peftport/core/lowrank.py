"""Low-rank updates: LoRA factors as a product, and back to factors by truncated SVD (pure functions)."""

from __future__ import annotations

import torch

from peftport.errors import ShapeMismatchError


def lora_update(lora_b: torch.Tensor, lora_a: torch.Tensor) -> torch.Tensor:
    """The update ``B @ A`` ``(out, in)`` in float64 (scaling left out: it is the same on both sides)."""
    if lora_b.shape[1] != lora_a.shape[0]:
        raise ShapeMismatchError(f"LoRA B {tuple(lora_b.shape)} and A {tuple(lora_a.shape)} do not multiply")
    return lora_b.double() @ lora_a.double()


def refactor(update: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``rank`` factors ``(B, A)`` of ``update`` (Eckart-Young), singular values split evenly.

    >>> b, a = refactor(torch.outer(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0, 4.0])), 1)
    >>> torch.allclose(b @ a, torch.tensor([[3.0, 0.0, 4.0], [6.0, 0.0, 8.0]], dtype=torch.float64))
    True
    """
    if rank < 1:
        raise ShapeMismatchError(f"rank must be positive, got {rank}")
    u, s, vh = torch.linalg.svd(update.double(), full_matrices=False)
    keep = min(rank, s.numel())
    root = s[:keep].sqrt()
    lora_b = torch.zeros(update.shape[0], rank, dtype=torch.float64)
    lora_a = torch.zeros(rank, update.shape[1], dtype=torch.float64)
    lora_b[:, :keep] = u[:, :keep] * root
    lora_a[:keep] = root[:, None] * vh[:keep]
    return lora_b, lora_a
