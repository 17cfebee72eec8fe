"""What a fidelity figure is worth: over every transferred run that recovered without labels, its held-out
fidelity to the teacher (no labels needed) against its task score before any labelled step (labels needed),
per cell and per run, with the rank correlation and a plot, so a user without labels can read a fidelity."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from peftport.experiments.report.cells import run_cell

MIN_POINTS = 3  # fewer points say nothing about a correlation


def _figure(measured: dict[str, Any]) -> tuple[str, float] | None:
    """The one fidelity figure of a measurement (``transfers.fidelity.fidelity_figure``), None without one."""
    from peftport.transfers.fidelity import fidelity_figure

    name, value = fidelity_figure(measured)
    return None if name == "none" or math.isnan(value) else (name, value)


def fidelity_points(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per transferred run whose record holds recovery fidelity: the cell, the figure's name, the
    fidelity after recovery and the task score before training (``zero_step``), both in percent."""
    points = []
    for r in records:
        fidelity = ((r.get("recovery") or {}).get("fidelity") or {}).get("recovered") or {}
        figure = _figure(fidelity)
        if r["kind"] != "transferred" or figure is None or r["metric"] not in r.get("zero_step", {}):
            continue
        points.append({"cell": run_cell(r), "figure": figure[0], "fidelity": 100 * figure[1],
                       "score": 100 * r["zero_step"][r["metric"]], "metric": r["metric"]})  # fmt: skip
    return points


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (NaN for fewer than ``MIN_POINTS`` or constant values).

    >>> round(spearman([1, 2, 3, 4], [10, 30, 20, 40]), 3)
    0.8
    """
    if len(a) < MIN_POINTS:
        return math.nan
    from scipy.stats import spearmanr

    value = spearmanr(a, b).statistic
    return float(value) if value == value else math.nan


def _per_cell(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        cells[point["cell"]].append(point)
    return [
        {"cell": cell, "fidelity": statistics.fmean(p["fidelity"] for p in group),
         "score": statistics.fmean(p["score"] for p in group), "runs": len(group)}
        for cell, group in sorted(cells.items())
    ]  # fmt: skip


def fidelity_lines(records: list[dict[str, Any]], folder: Path) -> list[str]:
    """The report section (and ``plots/fidelity-vs-score.png``), or nothing where no run recovered."""
    points = fidelity_points(records)
    if not points:
        return []
    cells = _per_cell(points)
    by_cell = spearman([c["fidelity"] for c in cells], [c["score"] for c in cells])
    by_run = spearman([p["fidelity"] for p in points], [p["score"] for p in points])
    figures, metrics = sorted({p["figure"] for p in points}), sorted({p["metric"] for p in points})
    plot = _plot(points, folder / "plots" / "fidelity-vs-score.png", figures, metrics)
    said = "too few to say" if math.isnan(by_cell) else f"Spearman {by_cell:.2f}"
    return [
        "## Fidelity without labels against the task score",
        "",
        f"Held-out fidelity to the teacher after label-free recovery ({', '.join(figures)}; measured without "
        f"labels) against the student's test {', '.join(metrics)} before any labelled step, over {len(points)} "
        f"runs in {len(cells)} cells: across cells {said}"
        + ("" if math.isnan(by_run) else f", across runs Spearman {by_run:.2f}")
        + f". {_reading(by_cell)}",
        "",
        "| cell | runs | fidelity | score |",
        "|---|---|---|---|",
        *[f"| {c['cell']} | {c['runs']} | {c['fidelity']:.1f} | {c['score']:.1f} |" for c in cells],
        "",
        f"![fidelity-vs-score](plots/{plot.name})",
        "",
    ]


def _reading(rho: float) -> str:
    """What the correlation lets a user without labels conclude."""
    if math.isnan(rho):
        return f"With fewer than {MIN_POINTS} cells no ranking can be read."
    if rho >= 0.8:
        return "Fidelity ranks students as their task scores do: it can choose between them without labels."
    if rho >= 0.5:
        return "Fidelity ranks students roughly as their scores do: a large difference in fidelity means something."
    return "Here fidelity does not rank students as their task scores do: do not choose by it."


def _plot(points: list[dict[str, Any]], path: Path, figures: list[str], metrics: list[str]) -> Path:
    from peftport.experiments.report.plots import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(4.8, 3.4))
    for cell in sorted({p["cell"] for p in points}):
        mine = [p for p in points if p["cell"] == cell]
        axes.scatter([p["fidelity"] for p in mine], [p["score"] for p in mine], s=18, label=cell)
    axes.set(xlabel=f"held-out fidelity ({', '.join(figures)}, %)",
             ylabel=f"test {', '.join(metrics)} before training (%)",
             title="fidelity without labels vs task score, one point per run")  # fmt: skip
    axes.title.set_fontsize(9)
    axes.legend(fontsize=6)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
