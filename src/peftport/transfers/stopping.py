"""Early stopping of recovery on held-out fidelity: check it every few steps, keep the best trainable state,
stop when it has not risen for ``patience`` checks, and end on the best state (possibly the transferred one)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

CHECKS_PER_RUN = 10


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters recovery trains (the module's, and a moved head's), by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


@dataclass
class EarlyStop:
    """``judge()``: the held-out fidelity figure of the current student (higher is better)."""

    judge: Callable[[], float]
    model: torch.nn.Module
    patience: int
    every: int
    best: float = -math.inf
    best_step: int = 0
    stale: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)
    _snapshot: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def over(
        cls, judge: Callable[[], float], model: torch.nn.Module, patience: int, steps: int, first: float | None = None
    ) -> EarlyStop:
        """A stopper checking ``CHECKS_PER_RUN`` times over ``steps``, starting from the current state (whose
        figure is ``first`` when already measured, else judged now)."""
        stopper = cls(judge, model, patience, max(1, steps // CHECKS_PER_RUN))
        stopper._check(0, first)
        return stopper

    def _check(self, step: int, score: float | None = None) -> None:
        score = self.judge() if score is None else score
        self.curve.append((step, score))
        if score > self.best:
            self.best, self.best_step, self.stale = score, step, 0
            self._snapshot = {name: p.detach().clone() for name, p in trainable_parameters(self.model).items()}
        else:
            self.stale += 1

    def after(self, step: int) -> bool:
        """Check at every ``every``-th step; True when recovery should stop."""
        if step % self.every:
            return False
        self._check(step)
        return self.stale >= self.patience

    def restore(self) -> dict[str, Any]:
        """Put the best state back; the record of the checks."""
        with torch.no_grad():
            for name, param in trainable_parameters(self.model).items():
                param.copy_(self._snapshot[name])
        return {"best_step": self.best_step, "best_fidelity": self.best, "fidelity_curve": self.curve}
