"""The file formats peftport reads and writes, one `Codec` each, and how a module directory's format is
recognised (``formats.registry`` loads and saves through them; ``formats.loading`` detects with them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftport.core.module import PeftModule
from peftport.errors import ModuleFormatError
from peftport.formats import adapterhub, peft_lora
from peftport.formats.tensor_files import read_json


@dataclass(frozen=True)
class Codec:
    """One file format: how to recognise, read, check and write it."""

    name: str
    sniff: Callable[[dict[str, Any]], bool]
    read: Callable[[Path, str | None], PeftModule]
    check_writable: Callable[[PeftModule], None]
    write: Callable[[PeftModule, Path], None]


CODECS: dict[str, Codec] = {
    peft_lora.NAME: Codec(peft_lora.NAME, peft_lora.sniff, peft_lora.read, peft_lora.check_writable, peft_lora.write),
    adapterhub.NAME: Codec(
        adapterhub.NAME, adapterhub.sniff, adapterhub.read, adapterhub.check_writable, adapterhub.write
    ),
}


def codec(name: str) -> Codec:
    """The codec registered under ``name``."""
    if name not in CODECS:
        raise ModuleFormatError(f"unknown format '{name}': use one of {', '.join(CODECS)}")
    return CODECS[name]


def detect_format(directory: str | Path) -> str:
    """Name of the format of a module directory (``peft`` or ``adapterhub``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModuleFormatError(f"module directory '{directory}' does not exist")
    config_file = directory / "adapter_config.json"
    if not config_file.is_file():
        raise ModuleFormatError(f"'{directory}' has no adapter_config.json: not a peft or AdapterHub module")
    config = read_json(config_file)
    for entry in CODECS.values():
        if entry.sniff(config):
            return entry.name
    raise ModuleFormatError(f"{config_file} is neither a peft nor an AdapterHub module config")
