"""The report's words and tables: the paper's table rows, the terminal table, the runs that did not learn, the
steps-saved sentence, the paper-method filter and the CSV."""

from __future__ import annotations

import csv
import json
import math
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


def rich_table(cells: list[CellSummary], wide: bool = False, width: int = 100) -> Table:
    """The summary table for the terminal: compact by default, every column with ``wide`` (report.md and
    results.csv always hold them all). The compact table fits ``width`` columns without cutting a number."""
    if not wide:
        return compact_table(cells, width)
    table = Table(title="Transferred vs baseline students (test split, mean ± std over seeds)")
    for column in HEADER:
        table.add_column(column)
    for row in table_rows(cells):
        table.add_row(*row)
    return table


COMPACT_HEADER = ("pair", "task", "module", "transfer", "teacher", "baseline", "transferred", "delta", "won")
WRAPPED = ("pair", "transfer")  # the text columns that wrap; the others (numbers, short names) are never cut


def front_cut(name: str, width: int) -> str:
    """``name`` shortened from the front to ``width`` characters (the tail tells models apart).

    >>> front_cut("paraphrase-MiniLM-L3-v2", 13)
    '…MiniLM-L3-v2'
    """
    return name if len(name) <= width else "…" + name[len(name) - width + 1 :]


def compact_rows(cells: list[CellSummary], pair_width: int = 40) -> list[list[str]]:
    """The compact table's rows: the pair (names cut from the front to ``pair_width`` in all), the cell, and
    the scores in percent (teacher as a mean, students mean ± std, won: seeds where transferred > baseline)."""
    half = max(6, (pair_width - 4) // 2)
    return [
        [
            f"{front_cut(short_name(c.teacher_model), half)} -> {front_cut(short_name(c.student_model), half)}",
            f"{c.task}/{c.language}",
            c.module,
            c.transfer,
            f"{100 * c.teacher:.1f}",
            _fmt(c.baseline, c.baseline_std),
            _fmt(c.transferred, c.transferred_std),
            f"{100 * c.delta:+.1f} ± {100 * c.delta_std:.1f}",
            f"{round(c.positive_share * c.seeds)}/{c.seeds}",
        ]
        for c in cells
    ]


def compact_table(cells: list[CellSummary], width: int = 100) -> Table:
    """The default terminal table (``peftport report``, the demo): numbers, task and module are never cut, the
    pair and transfer columns share what is left of ``width`` and wrap inside it; one pair is named in the
    title instead of a column."""
    pairs = sorted({f"{short_name(c.teacher_model)} -> {short_name(c.student_model)}" for c in cells})
    one_pair = len(pairs) == 1
    rows = compact_rows(cells, pair_width=max(12, (width - 60) // 2 + 4))
    header = COMPACT_HEADER[1:] if one_pair else COMPACT_HEADER
    rows = [row[1:] for row in rows] if one_pair else rows
    title = f"{pairs[0]}: transferred vs baseline" if one_pair else "Transferred vs baseline"
    table = Table(
        title=title, caption="test split, mean ± std over seeds; won: seeds ahead; --wide: all columns",
        box=None, pad_edge=False, header_style="bold",
    )  # fmt: skip
    for index, column in enumerate(header):
        kept = column not in WRAPPED
        longest = max([len(column), *(len(row[index]) for row in rows)])
        number = index >= header.index("teacher")
        table.add_column(column, no_wrap=kept, min_width=longest if kept else None, overflow="fold",
                         justify="right" if number else "left")  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table


PAPER_LAYER_MAPS = ("skip", "avg")


def is_paper_method(transfer: str) -> bool:
    """Whether a transfer label names one of the paper's methods: SKIP or AVG, optionally with correlation
    alignment, and none of peftport's additions (CKA map, other matchers, fallback, SVD merge, teacher head)."""
    name, *extras = transfer.split("+")
    return name in PAPER_LAYER_MAPS and all(extra.startswith("corr(") for extra in extras)


# results.csv: every score and share in percent, like the report; lists as JSON (never reached: null)
PERCENT_FIELDS = (
    "teacher", "teacher_std", "baseline", "baseline_std", "transferred", "transferred_std", "delta", "delta_std",
    "positive_share", "zero_step", "baseline_zero_step", "auc", "baseline_auc",
)  # fmt: skip
PERCENT_LISTS = ("reach_shares", "reach_shares_between", "baseline_by_seed", "transferred_by_seed")
# the mean steps to the baseline, empty whenever one seed never reaches it: steps_to_baseline_median says it
LEFT_OUT = ("steps_to_baseline",)


def _percent(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(100 * value, 4)


def csv_row(cell: CellSummary) -> dict[str, Any]:
    """A cell as results.csv writes it: scores and shares in percent, lists as JSON, one unit throughout."""
    row: dict[str, Any] = {}
    for key, value in asdict(cell).items():
        if key in LEFT_OUT:
            continue
        if key in PERCENT_FIELDS:
            value = _percent(value)
        elif key in PERCENT_LISTS:
            value = json.dumps([_percent(v) for v in value])
        elif isinstance(value, (tuple, list)):
            value = json.dumps(list(value))
        row[key] = "" if value is None else value
    return row


def write_csv(cells: list[CellSummary], path: Path) -> None:
    """All summary fields, one row per cell (``csv_row``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        if not cells:
            return
        rows = [csv_row(c) for c in cells]
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
