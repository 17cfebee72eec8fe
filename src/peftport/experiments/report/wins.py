"""How often transfer wins and how sure that is: seed-level and cell-level win counts, the headline sentence,
Wilson intervals and the sign test."""

from __future__ import annotations

import math

from scipy.stats import binomtest

from peftport.experiments.report.cells import CellSummary, mean_std


def seed_wins(cells: list[CellSummary]) -> tuple[int, int]:
    """Seed-level cases where transferred > baseline, and all cases (cells without a baseline left out)."""
    scored = [c for c in cells if not math.isnan(c.positive_share)]
    return round(sum(c.positive_share * c.seeds for c in scored)), sum(c.seeds for c in scored)


def overall(cells: list[CellSummary]) -> str:
    """One sentence: in how many seed-level cases the transferred student beat the baseline, and by how much."""
    wins, cases = seed_wins(cells)
    if not cases:
        return ""
    deltas = [c.delta for c in cells if not math.isnan(c.delta)]
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
    scored = [c for c in cells if not math.isnan(c.delta)]
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
