"""Load a module directory onto a model with the module's own library, reporting key mismatches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from peftport.formats.registry import detect_format


@dataclass(frozen=True)
class LoadReport:
    """Adapter keys the library could not place (both lists empty on a clean load)."""

    missing: list[str]
    unexpected: list[str]

    @property
    def clean(self) -> bool:
        """True when every adapter key was loaded and none was missing."""
        return not self.missing and not self.unexpected


def _with_peft(model: torch.nn.Module, module_dir: Path) -> tuple[torch.nn.Module, LoadReport]:
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(module_dir), adapter_name="probe")
    result = wrapped.load_adapter(str(module_dir), adapter_name="check")
    wrapped.delete_adapter("check")
    wrapped.set_adapter("probe")
    missing = [k for k in result.missing_keys if "lora_" in k and ".check." in k]
    return wrapped, LoadReport(missing, list(result.unexpected_keys))


def _with_adapters(model: torch.nn.Module, module_dir: Path) -> tuple[torch.nn.Module, LoadReport]:
    import adapters

    adapters.init(model)
    info: dict[str, Any] = {}
    name = model.load_adapter(str(module_dir), loading_info=info, set_active=True)
    missing = [k for k in info.get("missing_keys", []) if f".{name}." in k]
    return model, LoadReport(missing, list(info.get("unexpected_keys", [])))


def apply_module(model: torch.nn.Module, module_dir: str | Path) -> tuple[torch.nn.Module, LoadReport]:
    """``model`` with the module loaded by peft or AdapterHub (whichever wrote it), in eval mode."""
    module_dir = Path(module_dir)
    loader = _with_peft if detect_format(module_dir) == "peft" else _with_adapters
    loaded, report = loader(model, module_dir)
    return loaded.eval(), report
