"""A report cell: one (pair, task, language, module, transfer) aggregated over seeds, and the small helpers
every part of the report shares."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    seed_numbers: tuple[int, ...] = ()  # per seed, in this order: the seed,
    baseline_by_seed: tuple[float, ...] = ()  # its baseline's score (NaN: none),
    transferred_by_seed: tuple[float, ...] = ()  # and its transferred student's score


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def short_name(model: str) -> str:
    """A model's short name: the last path component, without ``zoo:``."""
    return Path(model.removeprefix("zoo:")).name


def run_cell(record: dict[str, Any]) -> str:
    """The cell a transferred run belongs to, in words: ``mpnet -> MiniLM-L6 ner/en lora-r8 skip``."""
    pair = f"{short_name(record['teacher'])} -> {short_name(record['model'])}"
    return f"{pair} {record['task']}/{record['language']} {record['module']} {record['transfer']}"
