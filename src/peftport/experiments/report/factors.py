"""Report tables that group cells: by one factor at a time, the cost of each pair, the headline per pair."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from peftport.experiments.report.cells import CellSummary, mean_std, short_name
from peftport.experiments.report.wins import overall, seed_wins


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
        mean, spread = mean_std(deltas)
        wins, cases = seed_wins(members)
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
            mean, spread = mean_std(values[name])
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
