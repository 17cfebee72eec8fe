"""Write an experiment's report folder: report.md (table, summary, plots), results.csv and PNGs."""

from __future__ import annotations

from pathlib import Path

from peftport.errors import PeftportError
from peftport.experiments.store import read_index
from peftport.reports.experiment import HEADER, CellSummary, overall, summarise, table_rows, write_csv
from peftport.reports.plots import delta_bars, learning_curves

PAPER_SHARE = "the paper reports 88.7% in the matching setup"


def _markdown_table(cells: list[CellSummary]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(cells)]
    return "\n".join(lines)


def write_report(out: Path) -> tuple[Path, list[CellSummary]]:
    """Build ``out/report/`` from the results index of an experiment folder."""
    records = read_index(out)
    if not records:
        raise PeftportError(f"no finished runs in '{out}' (no results.jsonl): run `peftport run` first")
    cells = summarise(records)
    folder = out / "report"
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    write_csv(cells, folder / "results.csv")
    curves = learning_curves(records, cells, folder / "plots")
    bars = delta_bars(cells, folder / "plots")
    text = [
        "# Experiment report",
        "",
        f"{len(records)} finished runs. Scores are test-split {', '.join(sorted({c.metric for c in cells}))} "
        "in percent, mean ± std over seeds; delta = transferred - baseline, paired by seed; positive = share "
        "of seeds with delta > 0; zero-step = transferred student before any training; steps to baseline = "
        "first evaluated step at which the transferred student reaches the baseline's final score (mean over "
        "seeds, '-' if some seed never does).",
        "",
        f"{overall(cells)} ({PAPER_SHARE})" if cells else "No transferred runs yet.",
        "",
        _markdown_table(cells),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in bars + curves],
        "",
    ]
    (folder / "report.md").write_text("\n".join(text), encoding="utf-8")
    return folder / "report.md", cells
