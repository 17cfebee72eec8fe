"""The offline demo: the experiment in ``demo/data/demo.yaml`` on real models and real data, on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from peftport.experiments.config import ExperimentConfig, load_config
from peftport.experiments.report.cells import CellSummary
from peftport.experiments.report.files import write_report
from peftport.experiments.runner import run_experiment

DEMO_CONFIG = Path(__file__).resolve().parent / "data" / "demo.yaml"


def demo_config(
    max_steps: int | None = None, train_limit: int | None = None, seeds: list[int] | None = None
) -> ExperimentConfig:
    """The packaged demo experiment; ``max_steps``/``train_limit``/``seeds`` shrink it (for tests)."""
    config = load_config(DEMO_CONFIG)
    if seeds is not None:
        config.seeds = seeds
    if max_steps is not None:
        config.training.max_steps = max_steps
        config.training.eval_every = max(1, max_steps // 2)
    if train_limit is not None:
        for task in config.tasks:
            task.train_limit, task.test_limit = train_limit, train_limit
    return config


def run_demo_experiment(out: Path, console: Console, **shrink: Any) -> tuple[Path, list[CellSummary]]:
    """Train the teacher, transfer, train student and baseline, and write the report into ``out``.

    ``shrink`` goes to :func:`demo_config` (``max_steps``, ``train_limit``, ``seeds``)."""
    run_experiment(demo_config(**shrink), out, console=console)
    return write_report(out)
