"""The report's words and tables: the paper's table rows, the terminal table, the runs that did not learn, the
steps-saved sentence, the paper-method filter and the CSV."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from peftport.experiments.report.cells import CellSummary, short_name
from peftport.experiments.report.curves import median_reach
from peftport.experiments.store import did_not_learn


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
