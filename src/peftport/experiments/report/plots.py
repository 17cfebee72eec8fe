"""PNG plots: an experiment's learning curves and delta bars, and a transfer's layer-similarity heatmap."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from peftport.experiments.report.cells import CellSummary, short_name


def pyplot():  # noqa: ANN201  (matplotlib.pyplot, imported on first use)
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_")


def _mean_curve(runs: list[dict[str, Any]], metric: str) -> tuple[list[float], list[float], list[float]]:
    """Steps, the mean score over runs at each (percent) and its standard deviation over runs."""
    import statistics

    by_step: dict[float, list[float]] = defaultdict(list)
    for run in runs:
        for point in run["curve"]:
            if metric in point:
                by_step[point["step"]].append(100 * point[metric])
    steps = sorted(by_step)
    spread = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    return steps, [statistics.fmean(by_step[s]) for s in steps], spread


def curve_groups(records: list[dict[str, Any]], cell: CellSummary) -> dict[str, list[dict[str, Any]]]:
    """The runs a cell's learning-curve plot averages: its baselines and its transferred students, both of the
    cell's training variant only (distilling students never mix with plain ones)."""
    transfer = cell.transfer.removesuffix(f"+{cell.variant}") if cell.variant else cell.transfer
    common = [
        r
        for r in records
        if r["task"] == cell.task
        and r["language"] == cell.language
        and r["module"] == cell.module
        and r["model"] == cell.student_model
        and r.get("variant") == cell.variant
    ]
    return {
        "baseline": [r for r in common if r["kind"] == "baseline"],
        f"transferred ({cell.transfer})": [
            r
            for r in common
            if r["kind"] == "transferred" and r["transfer"] == transfer and r["teacher"] == cell.teacher_model
        ],
    }


def step_axis_is_log(steps: list[float]) -> bool:
    """Whether evaluation steps double rather than grow evenly (``eval_log``): then the curve's step axis is
    logarithmic, so the early phase is not squeezed into the first pixels.

    >>> step_axis_is_log([0, 5, 10, 20, 39, 78, 156, 312, 625])
    True
    >>> step_axis_is_log([0, 25, 50, 75])
    False
    """
    positive = sorted({s for s in steps if s > 0})
    if len(positive) < 3:
        return False
    gaps = [b - a for a, b in zip(positive, positive[1:], strict=False)]
    return max(gaps) > 4 * min(gaps)


def tick_steps(steps: list[float]) -> list[float]:
    """The evaluated steps to label on a logarithmic step axis: step 0, the last step, and the evaluated step
    nearest to each halving of it (within a factor 1.3), so the doubling steps of ``eval_log`` are labelled and
    dense evaluations (``eval_every`` as well) do not crowd the axis with overlapping labels.

    >>> tick_steps([0, 5, 10, 20, 39, 78, 156, 312, 625])
    [0, 5, 10, 20, 39, 78, 156, 312, 625]
    >>> tick_steps([0, 5, 10, 20, 25, 39, 50, 75, 78, 100, 150, 156, 175, 300, 312, 325, 600, 625])
    [0, 5, 10, 20, 39, 78, 156, 312, 625]
    """
    positive = sorted({s for s in steps if s > 0})
    if not positive:
        return [0] if 0 in steps else []
    kept: set[float] = set()
    target = positive[-1]
    while target >= positive[0] / 1.3:
        nearest = min(positive, key=lambda s: abs(math.log(s / target)))
        if abs(math.log(nearest / target)) <= math.log(1.3):
            kept.add(nearest)
        target /= 2
    return ([0] if 0 in steps else []) + sorted(kept)


def learning_curves(records: list[dict[str, Any]], cells: list[CellSummary], folder: Path) -> list[Path]:
    """One PNG per cell: mean test score over seeds against training steps, baseline vs transferred."""
    plt, written = pyplot(), []
    for cell in cells:
        groups = curve_groups(records, cell)
        figure, axes = plt.subplots(figsize=(5, 3.2))
        all_steps: list[float] = []
        for label, runs in groups.items():
            steps, scores, spread = _mean_curve(runs, cell.metric)
            seeds = len(runs)
            shown = f"{label}, mean of {seeds} seed{'s' if seeds != 1 else ''}" + (" ± std" if seeds > 1 else "")
            (line,) = axes.plot(steps, scores, marker="o", markersize=3, label=shown)
            if seeds > 1:  # the band over seeds
                low = [m - d for m, d in zip(scores, spread, strict=True)]
                high = [m + d for m, d in zip(scores, spread, strict=True)]
                axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            all_steps += steps
        if not math.isnan(cell.teacher):
            axes.axhline(100 * cell.teacher, color="grey", linestyle="--", linewidth=1, label="teacher (final)")
        log_scale = step_axis_is_log(all_steps)
        if log_scale:  # ticks at evaluated steps far enough apart to read, in plain numbers
            axes.set_xscale("symlog", linthresh=min(s for s in all_steps if s > 0))
            ticks = tick_steps(all_steps)
            axes.set_xticks(ticks, [f"{s:g}" for s in ticks], fontsize=7)
            axes.minorticks_off()
        axes.set(
            xlabel="training steps (log)" if log_scale else "training steps",
            ylabel=f"{cell.metric} (%)",
            title=f"{_pair(cell)}\n{cell.task}/{cell.language} {cell.module} {cell.transfer}",
        )
        axes.title.set_fontsize(9)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = (
            folder
            / f"curve-{_slug(short_name(cell.teacher_model), cell.task, cell.language, cell.module, cell.transfer)}.png"
        )
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def delta_bars(cells: list[CellSummary], folder: Path) -> list[Path]:
    """One PNG per (task, module, transfer): delta (transferred - baseline) per language, with std error bars."""
    plt, written = pyplot(), []
    groups: dict[tuple[str, str, str, str], list[CellSummary]] = defaultdict(list)
    for cell in cells:
        groups[(short_name(cell.teacher_model), cell.task, cell.module, cell.transfer)].append(cell)
    for (teacher, task, module, transfer), group in sorted(groups.items()):
        figure, axes = plt.subplots(figsize=(max(3.5, 0.8 * len(group) + 2), 3.2))
        deltas = [100 * c.delta for c in group]
        colours = ["tab:green" if d > 0 else "tab:red" for d in deltas]
        languages = [c.language for c in group]
        axes.bar(languages, deltas, yerr=[100 * c.delta_std for c in group], color=colours, capsize=3, alpha=0.7,
                 label="mean over seeds, error bar ±1 std")  # fmt: skip
        for index, cell in enumerate(group):  # each seed's own delta
            seeds = _seed_deltas(cell)
            axes.scatter([index] * len(seeds), seeds, color="black", s=12, zorder=3,
                         label="one seed" if index == 0 and seeds else None)  # fmt: skip
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set(
            ylabel="delta = transferred - baseline (points)", title=f"{_pair(group[0])}\n{task} {module} {transfer}"
        )
        axes.title.set_fontsize(9)
        axes.yaxis.label.set_fontsize(8)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = folder / f"delta-{_slug(teacher, task, module, transfer)}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _pair(cell: CellSummary) -> str:
    return f"{short_name(cell.teacher_model)} -> {short_name(cell.student_model)}"


def _seed_deltas(cell: CellSummary) -> list[float]:
    """Each seed's delta in points (seeds without a baseline left out)."""
    pairs = zip(cell.transferred_by_seed, cell.baseline_by_seed, strict=True)
    return [100 * (moved - base) for moved, base in pairs if not math.isnan(base)]


def similarity_heatmap(layer_map: dict[str, Any], path: Path, title: str = "") -> Path:
    """Heatmap of a manifest's layer similarity (student rows, teacher columns) with the chosen map marked."""
    plt = pyplot()
    matrix = layer_map["similarity"]["matrix"]
    figure, axes = plt.subplots(figsize=(1.2 + 0.45 * len(matrix[0]), 1.2 + 0.45 * len(matrix)))
    image = axes.imshow(matrix, cmap="viridis", aspect="auto")
    for student, group in enumerate(layer_map["sources"]):
        for teacher in group:
            axes.add_patch(plt.Rectangle((teacher - 0.5, student - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
    axes.set_xlabel("teacher layer")
    axes.set_ylabel("student layer")
    axes.set_xticks(range(len(matrix[0])))
    axes.set_yticks(range(len(matrix)))
    axes.set_title(title or f"linear CKA, map '{layer_map['method']}' in red", fontsize=9)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
