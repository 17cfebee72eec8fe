"""Recovery that survives a kill: with a teacher cache folder, the student's trainable state, the optimiser, the
schedule, the losses so far and the early-stopping checks are saved every tenth of the run, keyed by everything
that decides the run (teacher, texts, target, options, the student's starting weights); a rerun of the same
transfer continues from the last save and ends where an unbroken run ends. The save is removed when the run
finishes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from peftport.transfers.stopping import EarlyStop, trainable_parameters

CHECKPOINTS_DIR = "recovery-checkpoints"
SAVES_PER_RUN = 10


def run_key(teacher_key: str, target: str, texts: list[str], options: Any, student: torch.nn.Module) -> str:
    """The name of one recovery run: its teacher, target, texts, options and the student's starting weights
    (so another transfer, seed or rate never continues this one's save)."""
    digest = hashlib.sha256(json.dumps([teacher_key, target, asdict(options)], sort_keys=True, default=str).encode())
    digest.update("\n".join(texts).encode())
    for name, param in sorted(trainable_parameters(student).items()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


class Checkpoint:
    """The save of one recovery run (``path``), written every ``every`` steps."""

    def __init__(self, folder: Path, key: str, steps: int) -> None:
        self.path = folder / CHECKPOINTS_DIR / f"{key}.pt"
        self.every = max(1, steps // SAVES_PER_RUN)

    def load(
        self, model: torch.nn.Module, optimizer: Any, scheduler: Any, stopper: EarlyStop | None
    ) -> tuple[int, list[float]]:
        """Put a saved state back; the steps done and their losses (0 and none without a save)."""
        if not self.path.is_file():
            return 0, []
        saved = torch.load(self.path, map_location="cpu", weights_only=False)
        with torch.no_grad():
            for name, param in trainable_parameters(model).items():
                param.copy_(saved["trainable"][name])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if stopper is not None and saved.get("stopper"):
            for field, value in saved["stopper"].items():
                setattr(stopper, field, value)
        return int(saved["step"]), list(saved["losses"])

    def save(
        self,
        step: int,
        losses: list[float],
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        stopper: EarlyStop | None,
    ) -> None:
        """Save after ``step`` when it is a save step (written to a temporary name, then renamed)."""
        if step % self.every:
            return
        state = {
            "step": step,
            "losses": losses,
            "trainable": {name: p.detach().cpu().clone() for name, p in trainable_parameters(model).items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "stopper": _stopper_state(stopper),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        torch.save(state, partial)
        partial.replace(self.path)

    def finish(self) -> None:
        """The run ended: its save is no longer needed (nor the folder, once it holds no other run's)."""
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:  # absent, or another run's save is there
            pass


def _stopper_state(stopper: EarlyStop | None) -> dict[str, Any] | None:
    if stopper is None:
        return None
    return {"best": stopper.best, "best_step": stopper.best_step, "stale": stopper.stale,
            "curve": list(stopper.curve), "_snapshot": dict(stopper._snapshot)}  # fmt: skip
