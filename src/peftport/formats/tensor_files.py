"""Read and write weight files (safetensors, PyTorch pickles), turning failures into clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from peftport.errors import ModuleFormatError
from peftport.lfs import is_lfs_pointer, lfs_pointer_message


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or a `ModuleFormatError` naming the file."""
    if is_lfs_pointer(path):
        raise ModuleFormatError(lfs_pointer_message(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModuleFormatError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModuleFormatError(f"{path} does not hold a JSON object")
    return data


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` or ``.bin`` file; corrupt files raise `ModuleFormatError`."""
    if is_lfs_pointer(path):
        raise ModuleFormatError(lfs_pointer_message(path))
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # both loaders raise assorted types for truncated or foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModuleFormatError(f"corrupt weights file {path}: {reason}") from None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise ModuleFormatError(f"weights file {path} does not hold a flat dict of tensors")
    return tensors


def first_existing(directory: Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` that exists in ``directory``, else a `ModuleFormatError`."""
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise ModuleFormatError(f"no weights file in {directory}: expected one of {', '.join(names)}")


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors as safetensors (contiguous copies, ``format=pt`` metadata like peft)."""
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def write_torch(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors as a PyTorch pickle (AdapterHub's default ``pytorch_adapter.bin``)."""
    torch.save({k: v.detach().contiguous() for k, v in tensors.items()}, path)
