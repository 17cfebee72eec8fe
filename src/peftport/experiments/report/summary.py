"""Experiment report: the paper's table (teacher, baseline, transferred, delta) over seeds, CSV and plots."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

Key = tuple[str, ...]


@dataclass(frozen=True)
class CellSummary:
    """One (pair, task, language, module, transfer) cell, aggregated over seeds."""

    teacher_model: str
    student_model: str
    task: str
    language: str
    module: str
    transfer: str
    metric: str
    seeds: int
    teacher: float
    teacher_std: float
    baseline: float
    baseline_std: float
    transferred: float
    transferred_std: float
    delta: float
    delta_std: float
    positive_share: float
    zero_step: float
    steps_to_baseline: float | None
    baseline_zero_step: float = float("nan")  # the baseline before training: what the zero-step is compared with
    variant: str | None = None  # the students' training variant (distillation), also in ``transfer``


def _stats(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _score(record: dict[str, Any], part: str = "final") -> float:
    return float(record[part].get(record["metric"], float("nan")))


def _first_reaching(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    return next((point["step"] for point in curve if point.get(metric, float("-inf")) >= target), None)


def summarise(records: list[dict[str, Any]]) -> list[CellSummary]:
    """Join transferred runs with their baselines and teachers (same task, language, module, seed and training
    variant). A distilling variant shows in the cell's transfer label: ``skip+distill(w0.5,T2)``."""
    by_kind: dict[str, dict[Key, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["kind"] == "teacher":
            by_kind["teacher_id"][(r["id"],)] = r
        key = (r["model"], r["task"], r["language"], _module_variant(r), str(r["seed"]))
        by_kind[r["kind"]][key + ((r["teacher"], r["transfer"]) if r["kind"] == "transferred" else ())] = r
    cells: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for key, r in by_kind["transferred"].items():
        cells[(r["teacher"], *key[:4], r["transfer"])].append(r)
    return [_cell(key, runs, by_kind) for key, runs in sorted(cells.items())]


def _module_variant(record: dict[str, Any]) -> str:
    """The module label, joined with the training variant of students that distil (kept apart in the join)."""
    variant = record.get("variant") if record["kind"] != "teacher" else None
    return f"{record['module']}|{variant}" if variant else record["module"]


def _cell(key: Key, runs: list[dict[str, Any]], by_kind: dict[str, dict[Key, dict[str, Any]]]) -> CellSummary:
    teacher_model, student, task, language, module_variant, transfer = key
    metric = runs[0]["metric"]
    teach, base, moved, deltas, reach, base_zero = [], [], [], [], [], []
    for r in runs:
        base_run = by_kind["baseline"].get((student, task, language, module_variant, str(r["seed"])))
        teacher_run = by_kind["teacher_id"].get((r.get("teacher_run"),)) or by_kind["teacher"].get(
            (teacher_model, task, language, r["module"], str(r["seed"]))
        )
        moved.append(_score(r))
        if teacher_run:
            teach.append(_score(teacher_run))
        if base_run:
            base.append(_score(base_run))
            base_zero.append(_score(base_run, "zero_step"))
            deltas.append(_score(r) - _score(base_run))
            reach.append(_first_reaching(r["curve"], metric, _score(base_run)))
    reached = [s for s in reach if s is not None]
    variant = runs[0].get("variant")
    return CellSummary(
        teacher_model,
        student,
        task,
        language,
        runs[0]["module"],
        f"{transfer}+{variant}" if variant else transfer,
        metric,
        len(runs),
        *_stats(teach),
        *_stats(base),
        *_stats(moved),
        *_stats(deltas),
        sum(d > 0 for d in deltas) / len(deltas) if deltas else float("nan"),
        statistics.fmean(_score(r, "zero_step") for r in runs),
        statistics.fmean(reached) if reached and len(reached) == len(reach) else None,
        _stats(base_zero)[0],
        variant,
    )


def short_name(model: str) -> str:
    """A model's short name: the last path component, without ``zoo:``."""
    return Path(model.removeprefix("zoo:")).name


def _fmt(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


HEADER = [
    "pair",
    "task",
    "lang",
    "module",
    "transfer",
    "seeds",
    "teacher",
    "baseline",
    "transferred",
    "delta",
    "positive",
    "zero-step",
    "steps to baseline",
]


def table_rows(cells: list[CellSummary]) -> list[list[str]]:
    """Rows of the report table (scores in percent, mean ± std over seeds)."""
    return [
        [
            f"{short_name(c.teacher_model)} -> {short_name(c.student_model)}",
            c.task,
            c.language,
            c.module,
            c.transfer,
            str(c.seeds),
            _fmt(c.teacher, c.teacher_std),
            _fmt(c.baseline, c.baseline_std),
            _fmt(c.transferred, c.transferred_std),
            f"{100 * c.delta:+.1f} ± {100 * c.delta_std:.1f}",
            f"{100 * c.positive_share:.0f}%",
            f"{100 * c.zero_step:.1f} (base {100 * c.baseline_zero_step:.1f})",
            "-" if c.steps_to_baseline is None else f"{c.steps_to_baseline:.0f}",
        ]
        for c in cells
    ]


def rich_table(cells: list[CellSummary]) -> Table:
    """The summary table for the terminal."""
    table = Table(title="Transferred vs baseline students (test split, mean ± std over seeds)")
    for column in HEADER:
        table.add_column(column)
    for row in table_rows(cells):
        table.add_row(*row)
    return table


def _wins(cells: list[CellSummary]) -> tuple[int, int]:
    """Seed-level cases where transferred > baseline, and all cases (cells without a baseline left out)."""
    scored = [c for c in cells if c.positive_share == c.positive_share]
    return round(sum(c.positive_share * c.seeds for c in scored)), sum(c.seeds for c in scored)


def overall(cells: list[CellSummary]) -> str:
    """One sentence: in how many seed-level cases the transferred student beat the baseline, and by how much."""
    wins, cases = _wins(cells)
    if not cases:
        return ""
    deltas = [c.delta for c in cells if c.delta == c.delta]
    mean, spread = _stats(deltas)
    if len(deltas) < 2:  # a spread over one cell would read as a measured 0.0
        return (
            f"Transferred > baseline in {wins} of {cases} cases ({100 * wins / cases:.1f}%); mean delta "
            f"{100 * mean:+.1f} points in {len(cells)} cell."
        )
    return (
        f"Transferred > baseline in {wins} of {cases} cases ({100 * wins / cases:.1f}%); mean delta "
        f"{100 * mean:+.1f} ± {100 * spread:.1f} points over {len(cells)} cells."
    )


PAPER_LAYER_MAPS = ("skip", "avg")


def is_paper_method(transfer: str) -> bool:
    """Whether a transfer label names one of the paper's methods: SKIP or AVG, optionally with correlation
    alignment, and none of peftport's additions (CKA map, other matchers, fallback, SVD merge, teacher head)."""
    name, *extras = transfer.split("+")
    return name in PAPER_LAYER_MAPS and all(extra.startswith("corr(") for extra in extras)


def write_csv(cells: list[CellSummary], path: Path) -> None:
    """All summary fields, one row per cell."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(cells[0]))) if cells else None
        if writer:
            writer.writeheader()
            writer.writerows(asdict(c) for c in cells)


def pair_name(cell: CellSummary) -> str:
    """``teacher -> student`` in short names."""
    return f"{short_name(cell.teacher_model)} -> {short_name(cell.student_model)}"


FACTORS = {
    "pair": pair_name,
    "task": lambda c: f"{c.task}/{c.language}",
    "module": lambda c: c.module,
    "transfer": lambda c: c.transfer,
}


def factor_rows(cells: list[CellSummary], factor: str) -> list[list[str]]:
    """Per value of one factor: cells, seed cases won, mean delta ± std over cells, mean gap to the teacher."""
    groups: dict[str, list[CellSummary]] = defaultdict(list)
    for cell in cells:
        groups[FACTORS[factor](cell)].append(cell)
    rows = []
    for value, members in sorted(groups.items()):
        deltas = [c.delta for c in members if c.delta == c.delta]
        mean, spread = _stats(deltas)
        wins, cases = _wins(members)
        gaps = [c.teacher - c.transferred for c in members if c.teacher == c.teacher]
        rows.append(
            [
                value,
                str(len(members)),
                f"{wins}/{cases}",
                f"{100 * mean:+.1f} ± {100 * spread:.1f}",
                f"{100 * statistics.fmean(gaps):.1f}" if gaps else "-",
            ]
        )
    return rows


FACTOR_HEADER = ["value", "cells", "won (seeds)", "delta (mean ± std over cells)", "teacher - transferred"]


def cost_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Per pair: transfer time (computed, not cached) and training throughput of teacher and student runs."""
    pairs: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    devices: dict[tuple[str, str], set[str]] = defaultdict(set)
    teachers = {r["id"]: r for r in records if r["kind"] == "teacher"}
    counted: set[tuple[tuple[str, str], str]] = set()  # a teacher run serves many transfers: count it once
    for r in records:
        if r["kind"] != "transferred":
            continue
        key = (r["teacher"], r["model"])
        if not r.get("transfer_cached", False) and r.get("transfer_seconds") is not None:
            pairs[key]["transfer"].append(r["transfer_seconds"])
        pairs[key]["student"].append(r["samples_per_second"])
        teacher = teachers.get(r.get("teacher_run", ""))
        if teacher is not None and (key, teacher["id"]) not in counted:
            counted.add((key, teacher["id"]))
            pairs[key]["teacher"].append(teacher["samples_per_second"])
        devices[key].add(r.get("device", "?"))
    rows = []
    for (teacher_model, student_model), values in sorted(pairs.items()):
        row = [f"{short_name(teacher_model)} -> {short_name(student_model)}"]
        for name in ("transfer", "teacher", "student"):
            mean, spread = _stats(values[name])
            row.append(f"{mean:.1f} ± {spread:.1f} (n={len(values[name])})" if values[name] else "-")
        rows.append([*row, ", ".join(sorted(devices[(teacher_model, student_model)]))])
    return rows


COST_HEADER = ["pair", "transfer seconds", "teacher samples/s", "student samples/s", "device"]


def overall_by_pair(cells: list[CellSummary]) -> list[str]:
    """The overall sentence for each pair."""
    groups: dict[str, list[CellSummary]] = defaultdict(list)
    for cell in cells:
        groups[pair_name(cell)].append(cell)
    return [f"{name}: {overall(members)}" for name, members in sorted(groups.items()) if overall(members)]
