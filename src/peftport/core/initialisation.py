"""The libraries' own initialisation of module tensors, for layers a transfer leaves to the student (pure)."""

from __future__ import annotations

import math

import torch


def default_roles(roles: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Fresh tensors shaped like ``roles``, initialised as peft and AdapterHub do for a new module.

    LoRA (peft): ``A`` Kaiming-uniform (``a = sqrt(5)``, bound ``1/sqrt(in)``), ``B`` zero, so the
    update starts at zero. Bottleneck (AdapterHub ``init_weights="bert"``): weights normal with std
    0.02, biases zero, layer-norm gains one.

    >>> fresh = default_roles({"lora_A": torch.ones(2, 4), "lora_B": torch.ones(4, 2)}, torch.Generator())
    >>> bool(fresh["lora_B"].eq(0).all()), bool(fresh["lora_A"].abs().le(0.5).all())
    (True, True)
    """
    fresh = {}
    for role, tensor in roles.items():
        shape, dtype = tensor.shape, tensor.dtype
        if role == "lora_A":
            bound = 1 / math.sqrt(shape[1])
            value = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        elif role.startswith("norm_") and role.endswith(".weight"):
            value = torch.ones(shape, dtype=torch.float64)
        elif role == "lora_B" or role.endswith(".bias"):
            value = torch.zeros(shape, dtype=torch.float64)
        else:
            value = torch.randn(shape, generator=generator, dtype=torch.float64) * 0.02
        fresh[role] = value.to(dtype)
    return fresh
