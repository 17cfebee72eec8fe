"""The progress bar of label-free recovery: steps, the last loss, and the held-out fidelity the early-stopping
checks measure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from peftport.transfers.stopping import EarlyStop


def bar_text(loss: float, stopper: EarlyStop | None = None) -> str:
    """The bar's figures: the last loss, and the latest held-out fidelity check with the best so far.

    >>> stop = EarlyStop(lambda: 0.5, None, patience=2, every=5, best=0.61, curve=[(0, 0.61), (5, 0.58)])
    >>> bar_text(0.01234, stop)
    'loss 0.0123, held-out fidelity 0.580 (best 0.610)'
    """
    if stopper is None or not stopper.curve:
        return f"loss {loss:.4f}"
    return f"loss {loss:.4f}, held-out fidelity {stopper.curve[-1][1]:.3f} (best {stopper.best:.3f})"


@contextmanager
def recovery_bar(
    console: Console | None, steps: int, stopper: EarlyStop | None = None
) -> Iterator[Callable[[int, int, float], None] | None]:
    """A progress bar of recovery steps with the last loss and, when early stopping checks it, the latest
    held-out fidelity and the best so far, on ``console`` (none without one)."""
    if console is None:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("recovery"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"))

    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("recovery", total=steps, loss="")
        yield lambda step, total, loss: progress.update(task, completed=step, loss=bar_text(loss, stopper))
