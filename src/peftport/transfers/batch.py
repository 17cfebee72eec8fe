"""Many modules, one teacher/student pair: the models are probed once for all of them (unless a moved head or
recovery needs each module's own final-layer pass), each module is transferred and written on its own, and a
module that fails is reported while the others go through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from peftport.core.alignment import Alignment
from peftport.core.layer_maps import LayerMap
from peftport.errors import PeftportError
from peftport.formats.codecs import detect_format
from peftport.formats.registry import save_module
from peftport.probing.session import CKA_MAP
from peftport.transfers.alignment import align_models
from peftport.transfers.api import transfer_module
from peftport.transfers.options import TransferOptions
from peftport.zoo import resolve_model


@dataclass(frozen=True)
class BatchRow:
    """One module's outcome: where it was written (None when it failed), what it holds, how well it aligned."""

    module: Path
    out: Path | None
    slots: list[str]
    quality: float | None
    verdict: str


def module_dirs(given: list[Path]) -> list[Path]:
    """The module directories named: each given path, or, for a folder that is no module itself but holds
    some, the module folders inside it (sorted). Two modules that would write to the same output name are refused."""
    found: list[Path] = []
    for path in given:
        inside = []
        if path.is_dir() and not (path / "adapter_config.json").is_file():
            inside = sorted(p for p in path.iterdir() if (p / "adapter_config.json").is_file())
        found += inside or [path]  # a folder holding no modules is refused as a module (detect_format)
    names = [p.name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PeftportError(f"two modules would be written to the same output folder '{twice[0]}': rename one")
    return found


def _shared_alignment(
    teacher: str, student: str, options: TransferOptions, console: Console | None
) -> tuple[Alignment | None, LayerMap | None]:
    """One alignment of every point (and the CKA map) for all modules, or nothing when each module needs its
    own pass (a moved head, recovery) or nothing needs probing."""
    if options.head or options.recover_steps or not options.method.probes:
        return None, None
    alignment = align_models(resolve_model(teacher), resolve_model(student), options, console)
    chosen = alignment.details.get("layer_map") if options.layer_map == CKA_MAP else None
    lmap = LayerMap(chosen["method"], tuple(tuple(g) for g in chosen["sources"])) if chosen else None
    return alignment, lmap


def _quality(record: dict | None) -> float | None:
    if not record:
        return None
    value = record.get("mean_r2_to_teacher", record.get("mean_matched_correlation"))
    return float(value) if isinstance(value, (int, float)) else None


def transfer_many(
    modules: list[Path],
    teacher: str,
    student: str,
    options: TransferOptions,
    out: Path,
    format: str | None = None,
    force: bool = False,
    console: Console | None = None,
    alignment: Alignment | None = None,
) -> list[BatchRow]:
    """Transfer every module in ``modules`` to ``out / <module folder name>`` (with ``alignment``: a saved one,
    else one probe pass for all); a failing module gets a row with its one-line reason and writes nothing."""
    lmap = None
    if alignment is None:
        alignment, lmap = _shared_alignment(teacher, student, options, console)
    rows = []
    for module in modules:
        try:
            detect_format(module)
            result = transfer_module(module, teacher, student, options, alignment=alignment, layer_map=lmap).module
            target = save_module(result, out / module.name, format=format, force=force)
        except PeftportError as exc:
            rows.append(BatchRow(module, None, [], None, f"failed: {exc}"))
            continue
        warning = (result.provenance.get("layers") or {}).get("warning")
        verdict = f"written; warning: {warning}" if warning else "written"
        quality = _quality(result.provenance.get("alignment"))
        rows.append(BatchRow(module, target, result.slots, quality, verdict))
    return rows
