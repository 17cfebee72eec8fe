"""``peftport transfer`` and ``peftport align``: thin shells around `transfer_module` and `compute_alignment`.

Their option flags are derived from `TransferOptions` (``cli.options``); only the paths and the output
format are declared here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from peftport.cli.common import Force, Out, console, errors, user_errors
from peftport.cli.options import field_flags, with_flags
from peftport.errors import PeftportError
from peftport.transfers.methods import PAPER_METHOD, align_method, probing_methods
from peftport.transfers.options import TransferOptions

Teacher = Annotated[str, typer.Option(help="Teacher model: hub name, local directory or zoo:NAME (offline zoo).")]
Student = Annotated[str, typer.Option(help="Student model: hub name, local directory or zoo:NAME (offline zoo).")]
ALIGN_FLAGS = ("layer_map", "probe_data", "probe_sentences", "token_match", "lora_b", "matcher", "device")


def _transfer(
    teacher: Teacher,
    student: Student,
    module: Annotated[
        list[Path],
        typer.Option(
            help="Teacher module directory (peft or AdapterHub). Repeat it, or give a folder of modules, to move "
            "several at once: probed once, each written to OUT/<module folder name>, with a summary table."
        ),
    ],
    out: Out,
    alignment: Annotated[Optional[Path], typer.Option(help="Reuse an alignment saved by `peftport align`.")] = None,
    format: Annotated[Optional[str], typer.Option(help="Output format: peft or adapterhub (default: input's).")] = None,
    force: Force = False,
    **flags: Any,
) -> None:
    """Initialise a student module from a teacher module; students of another width need --align."""
    from peftport.transfers.batch import module_dirs

    with user_errors():
        modules = module_dirs(module)
    if len(module) > 1 or modules != module:
        _transfer_many(teacher, student, modules, out, alignment, format, force, flags)
        return
    _transfer_one(teacher, student, modules[0], out, alignment, format, force, flags)


def _prepared(
    teacher: str, student: str, alignment: Path | None, format: str | None, flags: dict[str, Any]
) -> tuple[TransferOptions, Any]:
    """Every check before any work, for one module or many: the options (every value checked now, also those
    this call does not use), the output format against ``--head``, the saved alignment, and the zoo models
    (assembled, or refused, before anything else)."""
    from peftport.formats.alignment_files import load_alignment
    from peftport.transfers.options import transfer_options
    from peftport.zoo import resolve_model

    options = transfer_options(**flags)
    if options.head and format not in (None, "peft"):
        raise PeftportError("--head writes the head as peft modules_to_save: use --format peft")
    saved = load_alignment(alignment) if alignment is not None else None
    resolve_model(teacher), resolve_model(student)
    return options, saved


def _transfer_one(
    teacher: str,
    student: str,
    module: Path,
    out: Path,
    alignment: Path | None,
    format: str | None,
    force: bool,
    flags: dict[str, Any],
) -> None:
    from peftport.formats.atomic import check_writable
    from peftport.formats.loading import user_model_class
    from peftport.formats.registry import save_module
    from peftport.transfers.api import transfer_module

    with user_errors():
        check_writable(out, force)
        options, saved = _prepared(teacher, student, alignment, format, flags)
        result = transfer_module(module, teacher, student, options, alignment=saved, console=errors).module
        save_module(result, out, format=format, force=force)
    _summary(result.provenance, out, result.kind, len(result.layers), options)
    console.print(f"checked: loads on {student} as {user_model_class(result)} with every adapter key in place")


def _transfer_many(
    teacher: str,
    student: str,
    modules: list[Path],
    out: Path,
    alignment: Path | None,
    format: str | None,
    force: bool,
    flags: dict[str, Any],
) -> None:
    """Several modules for one pair: OUT/<module folder name> each, a summary table, exit 2 if any failed."""
    from rich.table import Table

    from peftport.formats.atomic import make_folder
    from peftport.transfers.batch import transfer_many

    with user_errors():
        options, saved = _prepared(teacher, student, alignment, format, flags)
        make_folder(out)
        rows = transfer_many(modules, teacher, student, options, out, format, force, errors, saved)
    table = Table(title=f"{len(modules)} modules -> {out}")
    for column in ("module", "slots", "quality", "verdict"):
        table.add_column(column, overflow="fold")
    for row in rows:
        quality = "" if row.quality is None else f"{row.quality:.3f}"
        table.add_row(row.module.name, ", ".join(row.slots), quality, row.verdict)
    console.print(table)
    failed = [row for row in rows if row.out is None]
    if failed:
        errors.print(f"error: {len(failed)} of {len(rows)} modules failed; the others were written", soft_wrap=True)
        raise typer.Exit(2)


def _summary(made: dict[str, Any], out: Path, kind: str, layers: int, options: TransferOptions) -> None:
    lmap = made["layer_map"]
    pairs = ", ".join(f"{i}<-{'+'.join(map(str, g))}" for i, g in enumerate(lmap["sources"]))
    console.print(f"wrote {out} ({kind}, {layers} layers, map {lmap['method']}: {pairs})")
    record = made.get("alignment")
    if record and "mean_r2_to_teacher" in record:  # fitted maps
        console.print(
            f"maps fitted on {record['shared_tokens']} shared tokens from {record['texts']} texts; held-out R^2 "
            f"student->teacher {record['mean_r2_to_teacher']:.3f}, teacher->student {record['mean_r2_to_student']:.3f}"
        )
    elif record and record.get("texts"):  # probed and matched
        console.print(
            f"aligned on {record['shared_tokens']} shared tokens from {record['texts']} texts; "
            f"mean matched correlation {record['mean_matched_correlation']:.3f}"
        )
    if made["dropped"]:
        errors.print(
            f"note: not transferred (outside the layers; --head moves a peft task head): {', '.join(made['dropped'])}"
        )
    fallback = made.get("layers") or {}
    if "warning" in fallback:
        errors.print(f"warning: {fallback['warning']}", soft_wrap=True)
    if options.recover_steps:
        done = made["recovery"]
        console.print(
            f"recovered {done['steps']} steps on {done['target']} in {done['seconds']:.1f} s "
            f"(loss {done['first_loss']:.4f} -> {done['last_loss']:.4f})"
        )
        if line := fidelity_line(done):
            console.print(line)
        if "fresh_control" in done:
            console.print(control_line(done["fresh_control"]))
        if "best_step" in done:
            console.print(
                f"early stopping: {done['steps_done']} of {done['steps']} steps run; kept the module of step "
                f"{done['best_step']} (held-out fidelity {done['best_fidelity']:.3f})"
            )
        if "warning" in done:
            errors.print(f"warning: {done['warning']}", soft_wrap=True)
    if options.head:
        moved = made["head"]
        quality = moved.get("mean_matched_correlation")
        measure = align_method(moved["alignment"]).quality_words() if "alignment" in moved else ""
        known = isinstance(quality, float) and not math.isnan(quality)
        console.print(f"task head {moved['method']}" + (f" (final-layer {measure} {quality:.3f})" if known else ""))


def control_line(control: dict[str, Any]) -> str:
    """``fresh control (a fresh module distilled alike): held-out agreement 0.655``."""
    from peftport.transfers.fidelity import fidelity_figure

    name, value = fidelity_figure(control["fidelity"])
    return f"fresh control (a fresh module distilled alike): held-out {name} {value:.3f}"


def fidelity_line(recovery: dict[str, Any]) -> str:
    """``held-out fidelity on 200 texts: agreement 0.412 after the transfer -> 0.801 after recovery (KL ...)``."""
    from peftport.transfers.fidelity import fidelity_figure

    fidelity = recovery.get("fidelity") or {}
    before, after = fidelity.get("transferred") or {}, fidelity.get("recovered") or {}
    name, value = fidelity_figure(after)
    if not after.get("texts") or name == "none":
        return ""
    line = (
        f"held-out fidelity on {after['texts']} texts: {name} {fidelity_figure(before)[1]:.3f} after the transfer "
        f"-> {value:.3f} after recovery"
    )
    if "kl" in after:
        line += f" (KL {before.get('kl', math.nan):.3f} -> {after['kl']:.3f})"
    return line


def _align(
    teacher: Teacher,
    student: Student,
    out: Out,
    method: Annotated[str, typer.Option(help=f"{' or '.join(probing_methods())}: a probing alignment.")] = PAPER_METHOD,
    force: Force = False,
    **flags: Any,
) -> None:
    """Compute an alignment for every slot once; reuse it with `transfer --alignment DIR`."""
    from peftport.formats.alignment_files import save_alignment
    from peftport.formats.atomic import check_writable
    from peftport.transfers.alignment import align_models
    from peftport.transfers.options import transfer_options
    from peftport.zoo import resolve_model

    with user_errors():
        check_writable(out, force)
        if method not in probing_methods():
            raise PeftportError(f"unknown alignment method '{method}': use {' or '.join(probing_methods())}")
        options = transfer_options(**flags, align=method)
        result = align_models(resolve_model(teacher), resolve_model(student), options, console=errors)
        save_alignment(result, out, force=force)
    details = result.details
    console.print(
        f"wrote {out}: {len(result.points)} index maps from {details['shared_tokens']} shared tokens "
        f"({details['shared_tokens_per_text']} per text)"
    )


transfer = with_flags(_transfer, field_flags(TransferOptions))
align = with_flags(_align, field_flags(TransferOptions, ALIGN_FLAGS, required=("probe_data",)))
transfer.__name__, align.__name__ = "transfer", "align"
