"""The ``peftport`` command. Each subcommand is a thin shell around one library call."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from peftport import __version__
from peftport.errors import PeftportError

app = typer.Typer(
    help="Move PEFT modules (LoRA, bottleneck adapters) from a teacher model to a smaller student.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# wide tables stay readable when the output is a file or a pipe (rich assumes 80 columns there)
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)

Force = Annotated[bool, typer.Option("--force", help="Replace an existing output directory.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output directory (written atomically).")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `PeftportError` into a one-line message on stderr and exit code 2."""
    try:
        yield
    except PeftportError as exc:
        errors.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _version(value: bool) -> None:
    if value:
        console.print(f"peftport {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    """Move PEFT modules (LoRA, bottleneck adapters) from a teacher model to a smaller student."""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings of peftport's own read one line, like its errors."""
    return f"warning: {message}\n"


@app.command()
def inspect(
    module_dir: Annotated[Path, typer.Argument(help="A peft or AdapterHub module directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    plot: Annotated[
        Optional[Path], typer.Option(help="Write the layer-similarity heatmap (a 'cka' map's manifest) to this PNG.")
    ] = None,
) -> None:
    """Show a module's format, type, slots, layers, shapes, settings and peftport manifest."""
    from peftport.formats.registry import detect_format, load_module, read_manifest
    from peftport.reports.inspection import render, summarize

    with user_errors():
        manifest = read_manifest(module_dir)
        summary = summarize(load_module(module_dir), detect_format(module_dir), manifest)
        if plot is not None:
            from peftport.reports.plots import similarity_heatmap

            layer_map = (manifest or {}).get("layer_map") or {}
            if "similarity" not in layer_map:
                raise PeftportError(f"{module_dir} has no layer similarity to plot (made with --layer-map cka?)")
            similarity_heatmap(layer_map, plot)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        console.print(render(summary))
    if plot is not None:
        errors.print(f"wrote {plot}")


ProbeData = Annotated[Optional[str], typer.Option(help="Probe texts: text/CoNLL/TSV file (.gz ok) or hub dataset.")]
ProbeSentences = Annotated[int, typer.Option(help="Number of probe texts to use.")]
TokenMatch = Annotated[str, typer.Option(help="Shared tokens by character 'offsets' or reference 'strings'.")]
LoraB = Annotated[str, typer.Option(help="LoRA B rows: reuse the 'input' alignment or align the layer 'output'.")]
LayerMapOption = Annotated[
    str,
    typer.Option(
        help="skip, skip-last, skip-uniform, avg, identity, cka (best monotone map by CKA on --probe-data), "
        "or a list like '0,2,4' ('+' averages)."
    ),
]
Matcher = Annotated[
    str, typer.Option(help="hungarian (permutation, the paper's), procrustes (rotation) or sinkhorn (soft).")
]
Device = Annotated[Optional[str], typer.Option(help="Device for probing (default: cuda if available, else cpu).")]


def _align_options(
    probe_data: Optional[str],
    sentences: int,
    token_match: str,
    lora_b: str,
    device: Optional[str],
    matcher: str = "hungarian",
    method: str = "correlation",
):
    from peftport.pipelines.alignment import AlignOptions

    return AlignOptions(probe_data, sentences, token_match, lora_b, device=device, matcher=matcher, method=method)


@app.command()
def transfer(
    teacher: Annotated[str, typer.Option(help="Teacher model: hub name or local directory.")],
    student: Annotated[str, typer.Option(help="Student model: hub name or local directory.")],
    module: Annotated[Path, typer.Option(help="Teacher module directory (peft or AdapterHub).")],
    out: Out,
    layer_map: LayerMapOption = "skip",
    align: Annotated[
        str,
        typer.Option(
            help="'none' (equal widths), 'correlation' (the paper's prune and align), 'projection' (ridge maps "
            "between the hidden spaces; any widths) or 'uniform' (data-free evenly spaced selection)."
        ),
    ] = "none",
    alignment: Annotated[Optional[Path], typer.Option(help="Reuse an alignment saved by `peftport align`.")] = None,
    probe_data: ProbeData = None,
    probe_sentences: ProbeSentences = 1000,
    token_match: TokenMatch = "offsets",
    lora_b: LoraB = "input",
    matcher: Matcher = "hungarian",
    min_quality: Annotated[
        Optional[float],
        typer.Option(
            help="Student layers whose quality (matched correlation, held-out R^2 of projection, or CKA) is lower "
            "keep a fresh init."
        ),
    ] = None,
    lora_svd: Annotated[
        bool, typer.Option("--lora-svd", help="Merge LoRA layer groups through B@A, re-factored by truncated SVD.")
    ] = False,
    head: Annotated[
        bool,
        typer.Option(
            "--head", help="Move the task head too (peft modules_to_save): copied, or aligned by the last layers."
        ),
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(help="With --align projection: give each LoRA update the teacher's size relative to its slot."),
    ] = True,
    recover_steps: Annotated[
        int,
        typer.Option(
            help="Then train the student's module (and moved head) this many steps on the probe texts, without "
            "labels, towards the teacher's outputs (logits with --head, else mapped final hidden states).",
        ),
    ] = 0,
    recover_lr: Annotated[float, typer.Option(help="Learning rate of recovery.")] = 1e-3,
    device: Device = None,
    format: Annotated[Optional[str], typer.Option(help="Output format: peft or adapterhub (default: input's).")] = None,
    force: Force = False,
) -> None:
    """Initialise a student module from a teacher module; students of another width need --align."""
    from peftport.formats.atomic import check_writable
    from peftport.formats.registry import save_module
    from peftport.pipelines.alignment import ALIGN_METHODS, load_alignment
    from peftport.pipelines.recovery import RecoveryOptions
    from peftport.pipelines.transfer import transfer as run_transfer
    from peftport.zoo import resolve_model

    with user_errors():
        check_writable(out, force)
        if align not in ("none", *ALIGN_METHODS):
            raise PeftportError(f"unknown alignment '{align}': use none, {', '.join(ALIGN_METHODS)}")
        # every option value is checked now, also those that this call does not use
        _align_options(None, probe_sentences, token_match, lora_b, device, matcher, "uniform")
        if head and format not in (None, "peft"):
            raise PeftportError("--head writes the head as peft modules_to_save: use --format peft")
        how = None
        if alignment is not None:
            how = load_alignment(alignment)
        elif align != "none":
            how = _align_options(probe_data, probe_sentences, token_match, lora_b, device, matcher, align)
            how = replace(how, calibrate=calibrate)
        probe = None
        if (layer_map == "cka" or recover_steps) and probe_data:
            probe = _align_options(probe_data, probe_sentences, token_match, lora_b, device, matcher)
        teacher, student = resolve_model(teacher), resolve_model(student)
        result = run_transfer(
            module,
            teacher=teacher,
            student=student,
            layer_map=layer_map,
            align=how,
            probe=probe,
            min_quality=min_quality,
            lora_svd=lora_svd,
            head=head,
            recover=RecoveryOptions(recover_steps, recover_lr) if recover_steps else None,
        )
        save_module(result, out, format=format, force=force)
    lmap = result.provenance["layer_map"]
    pairs = ", ".join(f"{i}<-{'+'.join(map(str, g))}" for i, g in enumerate(lmap["sources"]))
    console.print(f"wrote {out} ({result.kind}, {len(result.layers)} layers, map {lmap['method']}: {pairs})")
    record = result.provenance.get("alignment")
    if record and record["method"] == "projection":
        console.print(
            f"maps fitted on {record['shared_tokens']} shared tokens from {record['texts']} texts; held-out R^2 "
            f"student->teacher {record['mean_r2_to_teacher']:.3f}, teacher->student {record['mean_r2_to_student']:.3f}"
        )
    elif record and record["method"] == "correlation":
        console.print(
            f"aligned on {record['shared_tokens']} shared tokens from {record['texts']} texts; "
            f"mean matched correlation {record['mean_matched_correlation']:.3f}"
        )
    if result.provenance["dropped"]:
        errors.print(
            f"note: not transferred (outside the layers; --head moves a peft task head): "
            f"{', '.join(result.provenance['dropped'])}"
        )
    fallback = result.provenance.get("layers") or {}
    if fallback and not fallback["transferred"]:
        best = max((q for q in fallback["quality"] if q == q), default=float("nan"))
        errors.print(
            f"warning: no student layer reached --min-quality {min_quality:g} (best {fallback['measure']} "
            f"{best:.3f}): every layer keeps the library's fresh initialisation"
        )
    if recover_steps:
        done = result.provenance["recovery"]
        console.print(
            f"recovered {done['steps']} steps on {done['target']} in {done['seconds']:.1f} s "
            f"(loss {done['first_loss']:.4f} -> {done['last_loss']:.4f})"
        )
    if head:
        moved = result.provenance["head"]
        quality, measure = moved.get("mean_matched_correlation"), "held-out R^2" if moved.get("fit") else "correlation"
        known = isinstance(quality, float) and quality == quality
        console.print(f"task head {moved['method']}" + (f" (final-layer {measure} {quality:.3f})" if known else ""))


@app.command()
def align(
    teacher: Annotated[str, typer.Option(help="Teacher model: hub name or local directory.")],
    student: Annotated[str, typer.Option(help="Student model: hub name or local directory.")],
    probe_data: ProbeData,
    out: Out,
    layer_map: LayerMapOption = "skip",
    probe_sentences: ProbeSentences = 1000,
    token_match: TokenMatch = "offsets",
    lora_b: LoraB = "input",
    matcher: Matcher = "hungarian",
    method: Annotated[str, typer.Option(help="correlation (select dimensions) or projection (fit maps).")] = (
        "correlation"
    ),
    device: Device = None,
    force: Force = False,
) -> None:
    """Compute an alignment for every slot once; reuse it with `transfer --alignment DIR`."""
    from peftport.architectures.models import describe_model
    from peftport.core.layer_maps import build_layer_map
    from peftport.formats.atomic import check_writable
    from peftport.pipelines.alignment import all_points, compute_alignment, save_alignment
    from peftport.pipelines.layer_matching import cka_layer_map
    from peftport.zoo import resolve_model

    with user_errors():
        check_writable(out, force)
        if method not in ("correlation", "projection"):
            raise PeftportError(f"unknown alignment method '{method}': use correlation or projection")
        options = _align_options(probe_data, probe_sentences, token_match, lora_b, device, matcher, method)
        teacher, student = resolve_model(teacher), resolve_model(student)
        t_info, s_info = describe_model(teacher), describe_model(student)
        if layer_map == "cka":
            lmap, _ = cka_layer_map(teacher, student, options, console=errors)
        else:
            lmap = build_layer_map(layer_map, t_info.dims.num_layers, s_info.dims.num_layers)
        points = [p for p in all_points(t_info.spec, options.lora_b) if p.split(":", 1)[1] in s_info.spec.slots]
        result = compute_alignment(teacher, student, lmap, points, options, console=errors)
        save_alignment(result, out, force=force)
    details = result.details
    console.print(
        f"wrote {out}: {len(result.points)} index maps from {details['shared_tokens']} shared tokens "
        f"({details['shared_tokens_per_text']} per text)"
    )


@app.command()
def convert(
    module_dir: Annotated[Path, typer.Argument(help="A peft or AdapterHub module directory.")],
    to: Annotated[str, typer.Option("--to", help="Target format: peft or adapterhub.")],
    out: Out,
    force: Force = False,
) -> None:
    """Rewrite a module in another format (LoRA between peft and AdapterHub; scaling preserved)."""
    from peftport.formats.atomic import check_writable
    from peftport.formats.registry import convert_module

    with user_errors():
        check_writable(out, force)
        convert_module(module_dir, to, out, force=force)
    console.print(f"wrote {out} ({to})")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment file (YAML): pairs, tasks, modules, transfers, seeds.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder (runs, results.jsonl, report).")],
) -> None:
    """Run an experiment grid; finished runs are skipped, so the same command resumes after a stop."""
    from peftport.experiments.config import load_config
    from peftport.experiments.runner import run_experiment

    with user_errors():
        done = run_experiment(load_config(config), out, console=errors)
    console.print(f"{len(done)} runs done now; results in {out / 'results.jsonl'}")
    _print_report(out)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="An experiment folder written by `peftport run`.")],
) -> None:
    """Write report.md, results.csv and PNG plots for an experiment folder and print the table."""
    _print_report(folder)


def _print_report(folder: Path) -> None:
    from peftport.reports.experiment import overall, rich_table
    from peftport.reports.report_files import write_report

    with user_errors():
        path, cells = write_report(folder)
    console.print(rich_table(cells))
    console.print(overall(cells))
    console.print(f"report: {path} (plots in {path.parent / 'plots'})")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's outputs.")] = Path("peftport-demo"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Skip training: transfer random modules and check they load (seconds).")
    ] = False,
) -> None:
    """Offline demo: train a NER LoRA on all-MiniLM-L6-v2, transfer it to paraphrase-MiniLM-L3-v2 (SKIP), train the
    student from it and from scratch, and report (about 10 minutes on a 2-core CPU; resumable)."""
    if quick:
        from peftport.pipelines.demo import run_demo

        with user_errors():
            run_demo(out, console)
        return
    from peftport.experiments.demo import run_demo_experiment
    from peftport.reports.experiment import overall, rich_table

    with user_errors():
        path, cells = run_demo_experiment(out, errors)
    console.print(rich_table(cells))
    console.print(overall(cells))
    console.print(f"report: {path}; plots: {path.parent / 'plots'}")


if __name__ == "__main__":  # pragma: no cover
    app()
