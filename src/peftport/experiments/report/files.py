"""Write an experiment's report folder: report.md (table, summary, plots), results.csv and PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peftport.errors import PeftportError
from peftport.experiments.report.cells import CellSummary
from peftport.experiments.report.compute import EQUAL_COMPUTE_HEADER, EQUAL_COMPUTE_NOTE, equal_compute_rows
from peftport.experiments.report.factors import (
    COST_HEADER,
    FACTOR_HEADER,
    FACTORS,
    cost_rows,
    factor_rows,
    overall_by_pair,
)
from peftport.experiments.report.fidelity import fidelity_lines
from peftport.experiments.report.plots import delta_bars, learning_curves
from peftport.experiments.report.render import HEADER, is_paper_method, not_learnt, steps_saved, table_rows, write_csv
from peftport.experiments.report.sections import SEED_HEADER, cost_note, seed_rows, setup_lines, verdict_lines
from peftport.experiments.report.summary import summarise
from peftport.experiments.report.wins import evidence, overall
from peftport.experiments.store import read_index
from peftport.formats.atomic import make_folder

PAPER_SHARE = "the paper reports 88.7% in the matching setup"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _factors(cells: list[CellSummary]) -> list[str]:
    """One table per factor that takes more than one value in this folder (none for a one-cell folder)."""
    varied = [f for f in FACTORS if len({FACTORS[f](c) for c in cells}) > 1]
    if not varied:
        return []
    text = ["## By factor", "", "Cells grouped by one factor at a time (delta in points; won = seed-level cases)."]
    for factor in varied:
        text += ["", f"### {factor}", "", _markdown([factor, *FACTOR_HEADER[1:]], factor_rows(cells, factor))]
    return text


def _zero_step_note(cells: list[CellSummary]) -> str:
    """Why a zero-step score can equal the baseline's, said where one does."""
    same = [c for c in cells if abs(c.zero_step - c.baseline_zero_step) < 5e-4]
    if not same:
        return ""
    return (
        f"In {len(same)} of {len(cells)} cells the transferred student's zero-step score equals the baseline's: "
        "with a random head (the paper's setting) both students start from the same untrained classifier, whose "
        "near-chance predictions hide what the transferred module does until the head is trained; the learning "
        "curves and the area under them show it."
    )


def _seeds(cells: list[CellSummary]) -> list[str]:
    rows = seed_rows(cells)
    if not rows:
        return []
    return ["## Per seed", "", "Test scores in percent; delta = transferred - baseline of the same seed.", "",
            _markdown(SEED_HEADER, rows), ""]  # fmt: skip


def _equal_compute(records: list[dict[str, Any]]) -> list[str]:
    rows = equal_compute_rows(records)
    if not rows:
        return []
    return ["## Label-free against supervised at equal compute", "", EQUAL_COMPUTE_NOTE, "",
            _markdown(EQUAL_COMPUTE_HEADER, rows), ""]  # fmt: skip


def _paper_only(cells: list[CellSummary]) -> list[str]:
    """The headline again over the paper's own methods, when the grid also holds peftport's additions."""
    paper = [c for c in cells if is_paper_method(c.transfer)]
    if not paper or len(paper) == len(cells):
        return []
    return [
        f"The paper's methods only (SKIP/AVG, with or without correlation alignment): {overall(paper)}",
        "",
        *_lines(evidence(paper)),
    ]


def _lines(sentence: str) -> list[str]:
    """A paragraph and its blank line, or nothing for an empty sentence."""
    return [sentence, ""] if sentence else []


def _not_learnt_section(records: list[dict[str, Any]]) -> list[str]:
    """The runs that ended no higher than they started, whose cells compare with a run that learnt nothing."""
    lines = not_learnt(records)
    if not lines:
        return []
    return [
        "## Runs that did not learn",
        "",
        f"{len(lines)} of {len(records)} runs end no higher than before training (say, a tagger that predicts no "
        "entity). A teacher or baseline that did not learn makes its cells' deltas "
        "meaningless; a transferred student that did not learn where its baseline did is a failure of the transfer "
        "at that learning rate. The rate or the budget is the first suspect.",
        "",
        *[f"- {line}" for line in lines],
        "",
    ]


def write_report(out: Path) -> tuple[Path, list[CellSummary]]:
    """Build ``out/report/`` from the results index of an experiment folder."""
    records = read_index(out)
    if not records:
        raise PeftportError(f"no finished runs in '{out}' (no results.jsonl): run `peftport run` first")
    cells = summarise(records)
    folder = out / "report"
    make_folder(folder / "plots")
    write_csv(cells, folder / "results.csv")
    curves = learning_curves(records, cells, folder / "plots")
    bars = delta_bars(cells, folder / "plots")
    text = [
        "# Experiment report",
        "",
        f"{len(records)} finished runs. Scores are test-split {', '.join(sorted({c.metric for c in cells}))} "
        "in percent, mean ± std over seeds; delta = transferred - baseline, paired by seed; positive = share "
        "of seeds with delta > 0; zero-step = transferred student before any training (base: the baseline's); "
        "steps to baseline = first evaluated step at which the transferred student reaches the baseline's final "
        "score (median over seeds, a seed that never does counting as never; '-' if the median never does) and its "
        "share of the budget; AUC = area under the learning curve divided by the budget, i.e. the mean score over "
        "training (base: the baseline's); gap to teacher = teacher - transferred.",
        "",
        *_lines(_zero_step_note(cells)),
        f"{overall(cells)} ({PAPER_SHARE})" if cells else "No transferred runs yet.",
        "",
        *_lines(evidence(cells)),
        *_paper_only(cells),
        *_lines(steps_saved(cells)),
        *[f"- {line}" for line in overall_by_pair(cells)],
        "",
        _markdown(HEADER, table_rows(cells)),
        "",
        *verdict_lines(cells),
        *setup_lines(out, records, cells),
        *_seeds(cells),
        *fidelity_lines(records, folder),
        *_equal_compute(records),
        *_not_learnt_section(records),
        *(_factors(cells) + [""] if _factors(cells) else []),
        "## Cost",
        "",
        cost_note(records),
        "",
        _markdown(COST_HEADER, cost_rows(records)),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in bars + curves],
        "",
    ]
    (folder / "report.md").write_text("\n".join(text), encoding="utf-8")
    return folder / "report.md", cells
