"""The codec registry, format detection, and the public `load_module` / `save_module`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftport import __version__
from peftport.core.module import PeftModule
from peftport.errors import ModuleFormatError
from peftport.formats import adapterhub, peft_lora
from peftport.formats.atomic import atomic_directory
from peftport.formats.tensor_files import read_json

MANIFEST_FILE = "peftport_manifest.json"


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


def load_module(directory: str | Path, family: str | None = None) -> PeftModule:
    """Load a module directory in any supported format; ``family`` checks the weights fit it."""
    directory = Path(directory)
    return codec(detect_format(directory)).read(directory, family)


def save_module(
    module: PeftModule,
    directory: str | Path,
    format: str | None = None,
    force: bool = False,
    check_load: bool = True,
) -> Path:
    """Write ``module`` atomically (default format: the one it was read from).

    A module made by peftport (non-empty ``provenance``) gets a ``peftport_manifest.json``
    next to its weights, recording where it came from and how. A transferred module (its provenance
    names the student) is then loaded onto the student, built on the meta device as the class a user
    loads it on (``loads_on`` in the manifest); if any adapter key is missing or unexpected, nothing is
    written (``check_load=False`` skips this).
    """
    from peftport.formats.loading import user_model_class

    chosen = codec(format or module.format_options.get("source_format") or peft_lora.NAME)
    chosen.check_writable(module)
    student = (module.provenance.get("student") or {}).get("model") if check_load else None
    target = Path(directory)
    with atomic_directory(target, force=force) as staging:
        chosen.write(module, staging)
        if module.provenance:
            manifest = {"peftport_version": __version__, **module.provenance, "format": chosen.name}
            if student:
                manifest["loads_on"] = {"model_class": user_model_class(module), "model": student}
            manifest_text = json.dumps(manifest, indent=2, sort_keys=True)
            (staging / MANIFEST_FILE).write_text(manifest_text + "\n", encoding="utf-8")
        if student:
            _check_loads(module, staging, student)
    return target


def _check_loads(module: PeftModule, staging: Path, student: str) -> None:
    from peftport.formats.loading import load_check

    name, report = load_check(module, staging, student)
    if not report.clean:
        keys = report.missing or report.unexpected
        raise ModuleFormatError(
            f"the written module does not load on {student} as {name}: {len(report.missing)} adapter keys "
            f"missing, {len(report.unexpected)} unexpected (e.g. {keys[0]}); nothing was written"
        )


def convert_module(directory: str | Path, to: str, out: str | Path, force: bool = False) -> Path:
    """Rewrite a module directory in format ``to``; the output's manifest records the conversion (and keeps
    the source's own manifest, if peftport made it)."""
    from datetime import datetime, timezone

    module = load_module(directory)
    earlier = {k: v for k, v in (read_manifest(directory) or {}).items() if k not in ("peftport_version", "format")}
    conversion = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_module": str(directory),
        "source_format": detect_format(Path(directory)),
        "format": to,
    }
    module.provenance = {**earlier, "conversion": conversion}
    return save_module(module, out, format=to, force=force)


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The ``peftport_manifest.json`` of a module directory, if it has one."""
    path = Path(directory) / MANIFEST_FILE
    return read_json(path) if path.is_file() else None
