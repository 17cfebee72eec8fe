"""The public `load_module` / `save_module` / `convert_module` over the codecs of ``formats.codecs`` (whose
`codec`, `detect_format` and `CODECS` are re-exported here), and the manifest peftport writes beside a module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peftport import __version__
from peftport.core.module import PeftModule
from peftport.errors import ModuleFormatError
from peftport.formats import peft_lora
from peftport.formats.atomic import atomic_directory
from peftport.formats.card import write_card
from peftport.formats.codecs import CODECS, Codec, codec, detect_format
from peftport.formats.loading import head_labels, load_check, user_model_class
from peftport.formats.tensor_files import read_json

__all__ = ["CODECS", "Codec", "codec", "convert_module", "detect_format", "load_module", "read_manifest", "save_module"]

MANIFEST_FILE = "peftport_manifest.json"


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
    chosen = codec(format or module.format_options.get("source_format") or peft_lora.NAME)
    chosen.check_writable(module)
    student = (module.provenance.get("student") or {}).get("model") if check_load else None
    check_on = str(module.format_options.get("check_on") or student)  # a local folder where the record names a hub id
    target = Path(directory)
    with atomic_directory(target, force=force) as staging:
        chosen.write(module, staging)
        if module.provenance:
            manifest = {"peftport_version": __version__, **module.provenance, "format": chosen.name}
            if student:
                model_class = user_model_class(module)
                labels = (
                    {"num_labels": head_labels(module)} if module.extras and "Classification" in model_class else {}
                )
                manifest["loads_on"] = {"model_class": model_class, "model": student, **labels}
            manifest_text = json.dumps(manifest, indent=2, sort_keys=True)
            (staging / MANIFEST_FILE).write_text(manifest_text + "\n", encoding="utf-8")
            write_card(manifest, staging, target)
        if student:
            _check_loads(module, staging, check_on)
    return target


def _check_loads(module: PeftModule, staging: Path, student: str) -> None:
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
        # tensors outside the layers (task heads) only a module's own format carries
        "dropped": sorted(module.extras) if to != module.format_options.get("source_format") else [],
    }
    module.provenance = {**earlier, "conversion": conversion}
    return save_module(module, out, format=to, force=force)


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The ``peftport_manifest.json`` of a module directory, if it has one."""
    path = Path(directory) / MANIFEST_FILE
    return read_json(path) if path.is_file() else None
