"""Capture inputs or outputs of named modules with forward hooks on stock ``transformers`` modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch

Direction = Literal["input", "output"]
Target = tuple[str, Direction]  # (module path in the base model, which side)


def _first_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


@contextmanager
def capture(model: torch.nn.Module, targets: set[Target]) -> Iterator[dict[Target, torch.Tensor]]:
    """Yield a dict that each forward pass fills with ``target -> tensor``; hooks are removed on exit."""
    captured: dict[Target, torch.Tensor] = {}
    handles = []
    for path, direction in sorted(targets):
        module = model.get_submodule(path)

        def hook(_module: torch.nn.Module, args: Any, output: Any, key: Target = (path, direction)) -> None:
            captured[key] = _first_tensor(args if key[1] == "input" else output).detach()

        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
