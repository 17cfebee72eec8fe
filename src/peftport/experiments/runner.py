"""Run an experiment grid: skip finished runs, write each run atomically, index it when done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from peftport.experiments.checks import check_experiment
from peftport.experiments.config import ExperimentConfig
from peftport.experiments.environment import environment
from peftport.experiments.grid import Run, RunSpec, expand
from peftport.experiments.store import (
    append_index,
    claim,
    clear_leftovers,
    did_not_learn,
    finished,
    release,
    run_dir,
)
from peftport.experiments.training.distillation import DistillTeacher
from peftport.experiments.training.train import train_module
from peftport.experiments.transferred import student_head, transfer_init
from peftport.formats.atomic import atomic_directory, make_folder
from peftport.tasks.data import TaskConfig, TaskData, load_task
from peftport.zoo import resolve_model


class DataCache:
    """Task data loaded once per (task, language)."""

    def __init__(self) -> None:
        self._loaded: dict[str, TaskData] = {}

    def get(self, task: dict[str, Any], language: str) -> TaskData:
        key = json.dumps([task, language], sort_keys=True)
        if key not in self._loaded:
            self._loaded[key] = load_task(TaskConfig.model_validate({**task, "languages": [language]}), language)
        return self._loaded[key]


def _distill_teacher(spec: RunSpec, out: Path) -> DistillTeacher | None:
    if not spec.training.distill or spec.teacher_run is None or spec.teacher is None:
        return None
    return DistillTeacher(resolve_model(spec.teacher), run_dir(out, spec.teacher_run) / "module", spec.module)


def execute(run: Run, out: Path, data: DataCache, on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Do one run into its directory; returns its index record."""
    spec = run.spec
    clear_leftovers(out, run.id)
    start = time.perf_counter()
    with atomic_directory(run_dir(out, run.id)) as staging:
        (staging / "config.json").write_text(json.dumps({"kind": run.kind, **spec}, indent=1, sort_keys=True))
        init, extra = (None, {})
        if run.kind == "transferred":
            init, extra = transfer_init(run, out, data.get(spec["task"], spec["language"]))
            extra["teacher_run"] = spec["teacher_run"]
        result = train_module(
            resolve_model(spec["model"]),
            data.get(spec["task"], spec["language"]),
            run.typed.module,
            run.typed.training,
            spec["seed"],
            staging / "module",
            init,
            on_step,
            head=student_head(spec, out, init),
            teacher=_distill_teacher(run.typed, out),
        )
        record = {
            "id": run.id,
            "kind": run.kind,
            **_cell(run.typed),
            **extra,
            **result.to_dict(),
            "wall_seconds": time.perf_counter() - start,
            **environment(),
        }
        (staging / "metrics.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    append_index(out, record)
    return record


def _cell(spec: RunSpec) -> dict[str, Any]:
    return {
        "task": spec.task.name,
        "metric": spec.task.metric,
        "language": spec.language,
        "module": spec.module.label,
        "model": spec.model,
        "teacher": spec.teacher,
        "seed": spec.seed,
        "transfer": spec.transfer.label if spec.transfer is not None else None,
        "head": spec.head,
        **_variant(spec),
    }


def _variant(spec: RunSpec) -> dict[str, str]:
    """How a student's training differs from plain fine-tuning (distillation), so reports keep such runs
    apart from plain ones of the same cell; empty for plain runs, whose records stay as they were."""
    distill = spec.training.distill if spec.teacher_run else None
    if not distill:
        return {}
    return {"variant": f"distill(w{distill.weight:g},T{distill.temperature:g})"}


def prepare(config: ExperimentConfig, out: Path) -> tuple[list[Run], list[Run]]:
    """Check the experiment, make its folder and record its config; every run and the unfinished ones."""
    check_experiment(config)
    make_folder(out)
    (out / f"experiment-{config.name}.json").write_text(config.model_dump_json(indent=1))
    runs, done = expand(config, out), finished(out)
    return runs, [r for r in runs if r.id not in done]


def run_experiment(
    config: ExperimentConfig,
    out: Path,
    console: Console | None = None,
    on_run: Callable[[Run, dict[str, Any]], None] | None = None,
) -> list[Run]:
    """Run every unfinished run of ``config`` into ``out``; returns the runs done now."""
    runs, todo = prepare(config, out)
    data = DataCache()
    console = console or Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    done_now: list[Run] = []
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(
            f"{len(runs) - len(todo)} of {len(runs)} runs already done",
            total=len(runs),
            completed=len(runs) - len(todo),
        )
        steps = progress.add_task("training steps", total=None)
        pending = list(todo)
        while pending:
            ready = _claim_next(pending, out)
            if ready is None:  # the rest are held by other processes sharing this folder
                progress.update(bar, description="waiting for runs claimed by other processes")
                time.sleep(CLAIM_POLL_SECONDS)
                progress.update(bar, completed=len(runs) - len(pending))
                continue
            run, claimed = ready
            pending.remove(run)
            if not claimed:  # finished by another process meanwhile
                progress.advance(bar)
                continue
            progress.reset(steps)
            progress.update(bar, description=run.title)
            on_step = _step_reporter(progress, steps, run.title)
            try:
                record = execute(run, out, data, on_step)
            finally:
                release(out, run.id)
            # one unwrapped line per finished run, also in a log without a terminal
            progress.console.print(finished_line(run.title, record), highlight=False, soft_wrap=True)
            done_now.append(run)
            if on_run is not None:
                on_run(run, record)
            progress.advance(bar)
    return done_now


CLAIM_POLL_SECONDS = 10.0
LOG_QUARTERS = 4  # without a terminal: a line when a run starts and at each quarter of its steps


def _step_reporter(progress: Progress, steps: TaskID, title: str) -> Callable[[int, int], None]:
    """The training-step callback: moves the bar on a terminal; in a log (no terminal, where the bar is not
    drawn) prints a plain line when the run starts and at each quarter of its steps."""
    console = progress.console
    if not console.is_terminal:
        console.print(f"start {title}", highlight=False, soft_wrap=True)
    told = [0]

    def report(step: int, total: int) -> None:
        progress.update(steps, completed=step, total=total)
        quarter = LOG_QUARTERS * step // total if total else 0
        if not console.is_terminal and quarter > told[0] and step < total:
            told[0] = quarter
            console.print(f"  {title}: step {step} of {total}", highlight=False, soft_wrap=True)

    return report


def finished_line(name: str, record: dict[str, Any]) -> str:
    """One line for a finished run: ``done teacher ner/en seed 0 (run-id): f1 63.1 in 540 s``, and
    ``; did not learn (before training: 1.7)`` for a run that ends no higher than it started."""
    metric = record["metric"]
    score, seconds = 100 * record["final"][metric], record["wall_seconds"]
    line = f"done {name} ({record['id']}): {metric} {score:.1f} in {seconds:.0f} s"
    if did_not_learn(record):  # its cell's deltas say nothing about transfer: say so while the grid runs
        line += f"; did not learn (before training: {100 * record['zero_step'][metric]:.1f})"
    return line


def _claim_next(pending: list[Run], out: Path) -> tuple[Run, bool] | None:
    """The first pending run that is finished elsewhere (False) or whose needs are met and that we claim (True)."""
    done = finished(out)
    for run in pending:
        if run.id in done:
            return run, False
        if all(need in done for need in run.needs) and claim(out, run.id):
            if run.id in finished(out):  # finished between the two reads
                release(out, run.id)
                return run, False
            return run, True
    return None
