"""Run an experiment grid on Ray: each run is a Ray task, students wait for their teacher's task, and
results go to the same folder, index and run ids as the default backend.

No address starts a local Ray with ``workers`` CPUs; an address joins an existing cluster, whose nodes
must share the output folder (and have peftport installed). Each run is written atomically and claimed
through the folder as in the default backend, so a task killed mid-run leaves nothing half-written (Ray
retries it once on a worker crash) and other processes sharing the folder never repeat it. A run that
fails is reported with its id; the runs that do not need it go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from peftport.errors import PeftportError
from peftport.experiments.config import ExperimentConfig
from peftport.experiments.grid import Run
from peftport.experiments.store import claim, finished, read_index, release

WAIT_SECONDS = 5.0  # how often a task polls for a run that another process holds


class RayOptions(BaseModel):
    """Where and how wide a grid runs on Ray (``peftport run --backend ray``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str | None = Field(None, description="Ray cluster to join (default: start a local Ray).")
    workers: int | None = Field(None, ge=1, description="Runs at once on a local Ray (default: the CPU count).")
    gpus_per_run: float = Field(0.0, ge=0, description="GPUs per run; fractions let small runs share one GPU.")


@dataclass
class RayOutcome:
    """What a Ray grid did: the runs finished now, and the runs that failed with their one-line reason."""

    done: list[Run] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _execute(run: Run, out: str, *needs: Any) -> dict[str, Any]:
    """One run on a Ray worker (``needs``: the finished dependencies, which Ray resolves first)."""
    from peftport.experiments.runner import DataCache, execute

    folder = Path(out)
    while not claim(folder, run.id):  # another process is doing it: wait for its record
        if run.id in finished(folder):
            return _record(folder, run.id)
        time.sleep(WAIT_SECONDS)
    try:
        if run.id in finished(folder):
            return _record(folder, run.id)
        return execute(run, folder, DataCache())
    finally:
        release(folder, run.id)


def _record(out: Path, run_id: str) -> dict[str, Any]:
    return next(r for r in read_index(out) if r["id"] == run_id)


def _start(options: RayOptions) -> Any:
    try:
        import ray
    except ImportError:
        raise PeftportError("the Ray backend needs Ray: pip install 'peftport[ray]'") from None
    if options.address is None:
        ray.init(num_cpus=options.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        try:
            ray.init(address=options.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise PeftportError(f"cannot join the Ray cluster at {options.address}: {exc}") from None
    return ray


def run_on_ray(config: ExperimentConfig, out: Path, options: RayOptions, console: Console | None = None) -> RayOutcome:
    """Every unfinished run of ``config`` as a Ray task into ``out``; returns what finished and what failed."""
    from peftport.experiments.runner import prepare

    runs, todo = prepare(config, out)
    ray = _start(options)
    try:
        return _submit_and_wait(ray, runs, todo, out, options, console or Console(stderr=True))
    finally:
        ray.shutdown()


def _submit_and_wait(
    ray: Any, runs: list[Run], todo: list[Run], out: Path, options: RayOptions, console: Console
) -> RayOutcome:
    from peftport.experiments.runner import finished_line

    task = ray.remote(num_cpus=1, num_gpus=options.gpus_per_run, max_retries=1)(_execute)
    refs: dict[str, Any] = {}
    for run in todo:  # expand() orders each teacher before the runs that need it
        needs = [refs[n] for n in run.needs if n in refs]
        refs[run.id] = task.remote(run, str(out.resolve()), *needs)
    by_ref = {ref: run for run in todo for ref in [refs[run.id]]}
    outcome = RayOutcome()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"ray: {len(runs) - len(todo)} of {len(runs)} runs already done", total=len(runs))
        progress.update(bar, completed=len(runs) - len(todo))
        pending = list(by_ref)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            run = by_ref[ready[0]]
            try:
                record = ray.get(ready[0])
                outcome.done.append(run)
                console.print(finished_line(run.title, record), highlight=False, soft_wrap=True)
            except Exception as exc:  # noqa: BLE001  (a run's own failure, reported by id)
                outcome.failed[run.id] = _reason(exc, _failed_needs(ray, run, refs))
                console.print(f"run {run.id} failed: {outcome.failed[run.id]}", highlight=False, soft_wrap=True)
            progress.advance(bar)
    return outcome


def _failed_needs(ray: Any, run: Run, refs: dict[str, Any]) -> list[str]:
    """The runs ``run`` needs whose tasks failed (they are finished: ``run`` waited for them)."""
    broken = []
    for need in (n for n in run.needs if n in refs):
        try:
            ray.get(refs[need], timeout=0)
        except Exception:  # noqa: BLE001
            broken.append(need)
    return broken


def _reason(exc: Exception, broken: list[str]) -> str:
    """One line: the run's own error, or the failed run it needed."""
    if broken:
        return f"needs {broken[0]}, which failed"
    cause = getattr(exc, "cause", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"
