"""The report sections that explain a folder to a reader who did not run it: the setup read from the
experiment, a verdict per cell in plain words, the scores of every seed, and a cost note true to the runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from peftport.experiments.report.cells import CellSummary
from peftport.experiments.report.factors import pair_name


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def verdict(cell: CellSummary) -> str:
    """One sentence on one cell: ahead, behind, or within the seeds' spread (a mean delta no larger than the
    seeds' standard deviation of it, or a single seed, says nothing on its own).

    >>> from dataclasses import replace
    >>> base = CellSummary("t", "s", "ner", "en", "lora", "skip", "f1", 3, .8, 0, .5, .01, .518, .02, .018,
    ...                    .02, 2 / 3, .1, None)
    >>> verdict(base)
    "within the seeds' spread: +1.8 ± 2.0 points, 2 of 3 seeds ahead"
    >>> verdict(replace(base, delta=.05, positive_share=1.0))
    'transferred ahead: +5.0 ± 2.0 points, 3 of 3 seeds ahead'
    """
    if math.isnan(cell.delta):
        return "no baseline to compare with"
    ahead = round(cell.positive_share * cell.seeds)
    figures = f"{100 * cell.delta:+.1f} ± {100 * cell.delta_std:.1f} points, {ahead} of {cell.seeds} seeds ahead"
    if cell.seeds < 2:
        return f"one seed only, no spread to judge by: {figures}"
    if abs(cell.delta) <= cell.delta_std:
        return f"within the seeds' spread: {figures}"
    return f"transferred {'ahead' if cell.delta > 0 else 'behind'}: {figures}"


def verdict_lines(cells: list[CellSummary]) -> list[str]:
    """The verdict section: one bullet per cell."""
    if not cells:
        return []
    lines = ["## Verdict per cell", ""]
    for cell in cells:
        lines.append(
            f"- {pair_name(cell)}, {cell.task}/{cell.language}, {cell.module}, {cell.transfer}: {verdict(cell)}"
        )
    return [*lines, ""]


def seed_rows(cells: list[CellSummary]) -> list[list[str]]:
    """One row per seed of every cell: baseline, transferred and their difference, in percent."""
    rows = []
    for cell in cells:
        for seed, base, moved in zip(cell.seed_numbers, cell.baseline_by_seed, cell.transferred_by_seed, strict=True):
            delta = f"{100 * (moved - base):+.1f}" if not math.isnan(base) else "-"
            rows.append([pair_name(cell), f"{cell.task}/{cell.language}", cell.module, cell.transfer, str(seed),
                         _pct(base), _pct(moved), delta])  # fmt: skip
    return rows


SEED_HEADER = ["pair", "task", "module", "transfer", "seed", "baseline", "transferred", "delta"]


def _experiments(out: Path) -> list[dict[str, Any]]:
    """The experiment files ``peftport run`` kept in the folder (one per grid that ran into it)."""
    found = []
    for path in sorted(out.glob("experiment-*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def _training(training: dict[str, Any] | None) -> str:
    training = training or {}
    steps = f"{training['max_steps']} steps" if training.get("max_steps") else f"{training.get('epochs')} epochs"
    head = f", head lr {training['head_learning_rate']}" if training.get("head_learning_rate") else ""
    return f"{steps}, lr {training.get('learning_rate')}{head}, batch {training.get('batch_size')}"


def _module(module: dict[str, Any]) -> str:
    if module.get("type") == "lora":
        return f"LoRA r{module.get('r')} (alpha {module.get('alpha')}) on {', '.join(module.get('targets') or [])}"
    return f"{module.get('type')} (reduction factor {module.get('reduction_factor')})"


def _task(task: dict[str, Any]) -> str:
    limits = f"{task.get('train_limit') or 'all'} training / {task.get('test_limit') or 'all'} test examples"
    return f"{task.get('name')} ({', '.join(task.get('languages') or [])}; {limits})"


def setup_lines(out: Path, records: list[dict[str, Any]], cells: list[CellSummary]) -> list[str]:
    """The setup section: per experiment file, its pairs, tasks, modules, seeds and the students' and teachers'
    training; the transfers as the cells label them; and what the runs record (steps, devices)."""
    lines = ["## Setup", ""]
    for config in _experiments(out):
        pairs = ", ".join(f"{p.get('teacher')} -> {p.get('student')}" for p in config.get("pairs") or [])
        lines += [
            f"- experiment `{config.get('name')}`: {pairs}; seeds {config.get('seeds')}",
            f"  - tasks: {'; '.join(_task(t) for t in config.get('tasks') or [])}",
            f"  - modules: {'; '.join(_module(m) for m in config.get('modules') or [])}",
            f"  - students: {_training(config.get('training'))}; teachers: {_training(config.get('teacher_training'))}",
        ]
    labels = sorted({c.transfer for c in cells})
    if labels:
        lines.append(f"- transfers (as labelled in the tables): {', '.join(labels)}")
    steps = sorted({int(r.get("steps") or 0) for r in records if r["kind"] != "teacher"})
    teacher_steps = sorted({int(r.get("steps") or 0) for r in records if r["kind"] == "teacher"})
    devices = sorted({str(r.get("device")) for r in records if r.get("device")})
    lines.append(
        f"- the {len(records)} runs record student steps {', '.join(map(str, steps)) or '-'}, teacher steps "
        f"{', '.join(map(str, teacher_steps)) or '-'}; devices {', '.join(devices) or '-'}"
    )
    return [*lines, ""]


def cost_note(records: list[dict[str, Any]]) -> str:
    """What the transfer seconds count, with the reuse the runs actually show."""
    transferred = [r for r in records if r["kind"] == "transferred"]
    cached = sum(bool(r.get("transfer_cached")) for r in transferred)
    reuse = (
        f"{cached} of {len(transferred)} transferred runs reused a transfer made for an earlier seed (one teacher "
        "serves several seeds) and are not counted"
        if cached
        else "every transferred run made its own transfer (each seed has its own teacher run)"
    )
    return (
        "Transfer seconds: probe + align + remap (or the layer map alone) per transfer made; "
        f"{reuse}. Samples/s: training throughput of the Hugging Face Trainer."
    )
