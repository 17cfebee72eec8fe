"""Experiment report: the paper's table (teacher, baseline, transferred, delta) over seeds, CSV and plots."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from scipy.stats import binomtest

from peftport.errors import PeftportError
from peftport.experiments.store import did_not_learn

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
    steps_to_baseline_median: float | None = None  # median over seeds; a seed that never reaches it counts as last
    budget: float = float("nan")  # the students' training steps (mean over seeds)
    auc: float = float("nan")  # area under the transferred students' learning curve / budget (mean score)
    baseline_auc: float = float("nan")
    reach_shares: tuple[float, ...] = ()  # per seed: steps to the baseline's final score / budget (inf: never)
    teacher_runs: int = 1  # distinct teacher runs the cell's seeds start from (1: one teacher per cell)
    reach_shares_between: tuple[float, ...] = ()  # as reach_shares, read between evaluations (``crossing_step``)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _score(record: dict[str, Any], part: str = "final") -> float:
    return float(record[part].get(record["metric"], float("nan")))


def first_reaching(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    """The first evaluated step at which the learning curve is at or above ``target``; ``None`` if none is."""
    return next((point["step"] for point in curve if point.get(metric, float("-inf")) >= target), None)


def crossing_step(curve: list[dict[str, float]], metric: str, target: float) -> float | None:
    """The step at which the learning curve first reaches ``target``, read between the evaluations around it by a
    straight line (the first evaluated step itself when the one before it is missing); ``None`` if it never does.
    A smooth curve that flattens crosses earlier than the line says; a noisy one can cross either side of it
    (benchmarks/reach_reading.py measures the error against dense evaluations).

    >>> crossing_step([{"step": 0, "f1": 0.0}, {"step": 312, "f1": 0.4}, {"step": 625, "f1": 0.6}], "f1", 0.5)
    468.5
    >>> crossing_step([{"step": 0, "f1": 0.6}], "f1", 0.5), crossing_step([{"step": 0, "f1": 0.1}], "f1", 0.5)
    (0.0, None)
    """
    points = [(p["step"], p[metric]) for p in curve if metric in p]
    for index, (step, score) in enumerate(points):
        if score >= target:
            if index == 0:
                return float(step)
            before, below = points[index - 1]
            return before + (step - before) * (target - below) / (score - below)
    return None


def area_under_curve(curve: list[dict[str, float]], metric: str) -> float:
    """The learning curve's area (trapezoids over steps) divided by its last step: the mean score over training.

    >>> area_under_curve([{"step": 0, "f1": 0.0}, {"step": 10, "f1": 0.5}, {"step": 20, "f1": 0.5}], "f1")
    0.375
    """
    points = [(p["step"], p[metric]) for p in curve if metric in p]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return float("nan")
    area = sum((b - a) * (u + v) / 2 for (a, u), (b, v) in zip(points, points[1:], strict=False))
    return area / (points[-1][0] - points[0][0])


def median_reach(shares: list[float]) -> float | None:
    """Median over seeds of the steps (or share of the budget) needed to reach the baseline's final score, a seed
    that never reaches it counting as infinitely many; ``None`` when the median itself is never reached.

    >>> median_reach([0.2, 0.4, float("inf")])
    0.4
    >>> median_reach([0.2, float("inf"), float("inf")]) is None
    True
    """
    if not shares:
        return None
    middle = statistics.median(shares)
    return None if middle == float("inf") else middle


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
    )


def _budget(record: dict[str, Any]) -> float:
    """A run's training steps: its record's ``steps``, else the last step of its curve."""
    return float(record.get("steps") or max((p["step"] for p in record["curve"]), default=float("nan")))


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
    "AUC (base)",
    "gap to teacher",
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
            _reach_text(c),
            f"{100 * c.auc:.1f} ({100 * c.baseline_auc:.1f})",
            f"{100 * (c.teacher - c.transferred):.1f}",
        ]
        for c in cells
    ]


def _reach_text(cell: CellSummary) -> str:
    """Median steps to the baseline's final score and their share of the budget, e.g. ``150 (30%)``."""
    if cell.steps_to_baseline_median is None:
        return "-"
    return f"{cell.steps_to_baseline_median:.0f} ({100 * cell.steps_to_baseline_median / cell.budget:.0f}%)"


def not_learnt(records: list[dict[str, Any]]) -> list[str]:
    """One line per run that ended no higher than before training (``did_not_learn``), naming its cell:
    ``transferred all-MiniLM-L6-v2 ner/en lora-r8 skip seed 1 (transferred-...): f1 1.7 before training, 0.0
    after``."""
    lines = []
    for r in (r for r in records if did_not_learn(r)):
        metric, cell = r["metric"], " ".join(x for x in (r["module"], r.get("transfer")) if x)
        lines.append(
            f"{r['kind']} {short_name(r['model'])} {r['task']}/{r['language']} {cell} seed {r['seed']} ({r['id']}): "
            f"{metric} {100 * r['zero_step'][metric]:.1f} before training, {100 * r['final'][metric]:.1f} after"
        )
    return lines


def steps_saved(cells: list[CellSummary]) -> str:
    """One sentence: the median share of the budget transferred students need to reach their baseline's final
    score, over every seed-level case (a case that never reaches it counts as never)."""
    shares = [share for c in cells for share in c.reach_shares]
    if not shares:
        return ""
    reached = sum(share != float("inf") for share in shares)
    middle = median_reach(shares)
    where = "never (median)" if middle is None else f"after a median {100 * middle:.0f}% of the budget"
    sentence = (
        f"Transferred students reach their baseline's final score {where}; {reached} of {len(shares)} cases "
        "reach it within the budget."
    )
    between = median_reach([share for c in cells for share in c.reach_shares_between])
    if between is None or between == middle:
        return sentence
    return (
        f"{sentence} Read between evaluations (a straight line from the last one below), the median is "
        f"{100 * between:.0f}%."
    )


def rich_table(cells: list[CellSummary]) -> Table:
    """The summary table for the terminal."""
    table = Table(title="Transferred vs baseline students (test split, mean ± std over seeds)")
    for column in HEADER:
        table.add_column(column)
    for row in table_rows(cells):
        table.add_row(*row)
    return table


def seed_wins(cells: list[CellSummary]) -> tuple[int, int]:
    """Seed-level cases where transferred > baseline, and all cases (cells without a baseline left out)."""
    scored = [c for c in cells if c.positive_share == c.positive_share]
    return round(sum(c.positive_share * c.seeds for c in scored)), sum(c.seeds for c in scored)


def overall(cells: list[CellSummary]) -> str:
    """One sentence: in how many seed-level cases the transferred student beat the baseline, and by how much."""
    wins, cases = seed_wins(cells)
    if not cases:
        return ""
    deltas = [c.delta for c in cells if c.delta == c.delta]
    mean, spread = mean_std(deltas)
    if len(deltas) < 2:  # a spread over one cell would read as a measured 0.0
        return (
            f"Transferred > baseline in {wins} of {cases} cases ({100 * wins / cases:.1f}%); mean delta "
            f"{100 * mean:+.1f} points in {len(cells)} cell."
        )
    return (
        f"Transferred > baseline in {wins} of {cases} cases ({100 * wins / cases:.1f}%); mean delta "
        f"{100 * mean:+.1f} ± {100 * spread:.1f} points over {len(cells)} cells."
    )


def cell_wins(cells: list[CellSummary]) -> tuple[int, int]:
    """Cells whose mean delta over seeds is above 0, and all cells with a baseline: the paper's way of counting
    cases (one task, language and module, scores averaged over seeds; here also one transfer)."""
    scored = [c for c in cells if c.delta == c.delta]
    return sum(c.delta > 0 for c in scored), len(scored)


def _interval(wins: int, cases: int) -> str:
    low, high = binomtest(wins, cases).proportion_ci(method="wilson")
    return f"95% interval {100 * low:.0f}-{100 * high:.0f}%"


SHARED_TEACHER = (
    " Seeds of a cell share one teacher, so both intervals leave out the variance of training another teacher."
)


def evidence(cells: list[CellSummary]) -> str:
    """One sentence: how sure the win rate is. Per cell (the paper's unit) and per seed, each with its 95% Wilson
    interval, and the exact sign test of the seed-level cases against no effect."""
    won, counted = cell_wins(cells)
    wins, cases = seed_wins(cells)
    if not counted or not cases:
        return ""
    shared = any(c.teacher_runs == 1 and c.seeds > 1 for c in cells)
    return (
        f"Per cell (mean over seeds, as the paper counts cases): {won} of {counted} won "
        f"({100 * won / counted:.1f}%, {_interval(won, counted)}). Per seed: {_interval(wins, cases)}, sign test "
        f"against no effect p = {binomtest(wins, cases).pvalue:.2g}.{SHARED_TEACHER if shared else ''}"
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
