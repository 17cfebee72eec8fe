"""How label-free recovery trains: its steps, rate, schedule, stopping rule and precision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from peftport.errors import PeftportError
from peftport.transfers.options import RECOVERY_PRECISIONS, RECOVERY_SCHEDULES


@dataclass(frozen=True)
class RecoveryOptions:
    """How long and how fast to recover (``steps`` optimiser steps of ``batch_size`` probe texts)."""

    steps: int
    learning_rate: float = 1e-3
    batch_size: int = 16
    max_length: int = 128
    schedule: str = "constant"  # or "linear": 10% warm-up, then linear decay to zero
    patience: int | None = None  # stop when held-out fidelity has not risen for this many checks (10 per run)
    precision: str = "fp32"  # "bf16": the student's steps under bf16 autocast; "auto": where the device has bf16

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or not self.learning_rate > 0:
            raise PeftportError("recovery needs steps >= 0, a positive batch size and a positive learning rate")
        if self.precision not in RECOVERY_PRECISIONS:
            raise PeftportError(f"unknown recovery precision '{self.precision}': use {', '.join(RECOVERY_PRECISIONS)}")
        if self.schedule not in RECOVERY_SCHEDULES:
            raise PeftportError(f"unknown recovery schedule '{self.schedule}': use {' or '.join(RECOVERY_SCHEDULES)}")

    def rate_factor(self, step: int) -> float:
        """The multiplier of the learning rate at ``step`` (0-based).

        >>> [round(RecoveryOptions(10, schedule="linear").rate_factor(s), 2) for s in (0, 1, 5, 9)]
        [0.5, 1.0, 0.5, 0.0]
        >>> RecoveryOptions(4).rate_factor(3)
        1.0
        """
        if self.schedule == "constant" or self.steps < 2:
            return 1.0
        warmup = int(0.1 * self.steps)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (self.steps - 1 - step) / max(1, self.steps - 1 - warmup))


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether recovery's steps run under bf16 autocast: ``bf16`` always; ``auto`` on a GPU that supports it or
    a CPU with native bf16 (AVX512-BF16 or AMX); ``fp32`` never."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return device.type == "cpu" and any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))
