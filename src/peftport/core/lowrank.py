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


def merge_by_svd(sources: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Merge LoRA factors of a layer group through their updates: mean of ``B @ A``, re-factored to the rank.

    The mean of the factors (the paper's AVG) is not the factors of the mean update; this is.
    """
    rank, dtype = sources[0]["lora_A"].shape[0], sources[0]["lora_A"].dtype
    update = torch.stack([lora_update(s["lora_B"], s["lora_A"]) for s in sources]).mean(0)
    lora_b, lora_a = refactor(update, rank)
    return {"lora_A": lora_a.to(dtype), "lora_B": lora_b.to(dtype)}
