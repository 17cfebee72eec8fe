"""Experiment report, the join: transferred runs with their baselines and teachers, one `CellSummary` per
cell over seeds. The figures live beside it (``curves``, ``wins``) and the words in ``render``; their names
are re-exported here, where earlier versions defined them."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from peftport.errors import PeftportError
from peftport.experiments.report.cells import CellSummary, Key, mean_std, short_name
from peftport.experiments.report.curves import area_under_curve, crossing_step, first_reaching, median_reach
from peftport.experiments.report.render import (
    HEADER,
    PAPER_LAYER_MAPS,
    is_paper_method,
    not_learnt,
    rich_table,
    steps_saved,
    table_rows,
    write_csv,
)
from peftport.experiments.report.wins import SHARED_TEACHER, cell_wins, evidence, overall, seed_wins

__all__ = [
    "HEADER", "PAPER_LAYER_MAPS", "SHARED_TEACHER", "CellSummary", "area_under_curve", "cell_wins",
    "crossing_step", "evidence", "first_reaching", "is_paper_method", "mean_std", "median_reach", "not_learnt",
    "overall", "rich_table", "seed_wins", "short_name", "steps_saved", "summarise", "table_rows", "write_csv",
]  # fmt: skip


def _score(record: dict[str, Any], part: str = "final") -> float:
    return float(record[part].get(record["metric"], float("nan")))


def summarise(records: list[dict[str, Any]]) -> list[CellSummary]:
    """Join transferred runs with their baselines and teachers (same task, language, module, seed and training
    variant). A distilling variant shows in the cell's transfer label: ``skip+distill(w0.5,T2)``. Two runs with
    one place in the join (say baselines at two learning rates) raise ``PeftportError``: one would hide the other."""
    by_kind: dict[str, dict[Key, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["kind"] == "teacher":
            by_kind["teacher_id"][(r["id"],)] = r
        key = (r["model"], r["task"], r["language"], _module_variant(r), str(r["seed"]))
        key += (r["teacher"], r["transfer"]) if r["kind"] == "transferred" else ()
        if (other := by_kind[r["kind"]].setdefault(key, r))["id"] != r["id"]:
            raise PeftportError(
                f"runs {other['id']} and {r['id']} fill one report cell ({r['kind']}, {short_name(r['model'])}, "
                f"{r['task']}/{r['language']}, {r['module']}, seed {r['seed']}): grids that differ in training or "
                "teacher share this folder; report them from separate folders"
            )
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
    teach, base, moved, deltas, reach, between, base_zero, base_auc = [], [], [], [], [], [], [], []
    base_by_seed = []
    for r in runs:
        base_run = by_kind["baseline"].get((student, task, language, module_variant, str(r["seed"])))
        teacher_run = by_kind["teacher_id"].get((r.get("teacher_run"),)) or by_kind["teacher"].get(
            (teacher_model, task, language, r["module"], str(r["seed"]))
        )
        moved.append(_score(r))
        base_by_seed.append(_score(base_run) if base_run else float("nan"))
        if teacher_run:
            teach.append(_score(teacher_run))
        if base_run:
            base.append(_score(base_run))
            base_zero.append(_score(base_run, "zero_step"))
            deltas.append(_score(r) - _score(base_run))
            reach.append(first_reaching(r["curve"], metric, _score(base_run)))
            between.append(crossing_step(r["curve"], metric, _score(base_run)))
            base_auc.append(area_under_curve(base_run["curve"], metric))
    reached = [s for s in reach if s is not None]
    budget = statistics.fmean(_budget(r) for r in runs)
    needed = [float("inf") if s is None else s for s in reach]  # a seed that never reaches it: never
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
        *mean_std(teach),
        *mean_std(base),
        *mean_std(moved),
        *mean_std(deltas),
        sum(d > 0 for d in deltas) / len(deltas) if deltas else float("nan"),
        statistics.fmean(_score(r, "zero_step") for r in runs),
        statistics.fmean(reached) if reached and len(reached) == len(reach) else None,
        mean_std(base_zero)[0],
        variant,
        median_reach(needed),
        budget,
        statistics.fmean(area_under_curve(r["curve"], metric) for r in runs),
        mean_std(base_auc)[0],
        tuple(steps / budget for steps in needed),
        len({r.get("teacher_run") for r in runs}),
        tuple(float("inf") if s is None else s / budget for s in between),
        tuple(int(r["seed"]) for r in runs),
        tuple(base_by_seed),
        tuple(moved),
    )


def _budget(record: dict[str, Any]) -> float:
    """A run's training steps: its record's ``steps``, else the last step of its curve."""
    return float(record.get("steps") or max((p["step"] for p in record["curve"]), default=float("nan")))
