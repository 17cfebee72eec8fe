"""What a training run is configured by (experiment YAML ``modules`` and ``training``): light models that
import neither torch nor transformers, so reading an experiment file stays fast."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from peftport.core.kinds import BOTTLENECK, KINDS, LORA, KindSpec
from peftport.transfers.options import LATER


class ModuleConfig(BaseModel):
    """The module trained on teacher and student (defaults: the paper's LoRA r8 on query+value)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["lora", "seq_bn", "double_seq_bn"] = "lora"
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["attn_q", "attn_v"])
    reduction_factor: int = Field(16, gt=0)

    @property
    def kind(self) -> str:
        """The module kind (``core.kinds``): LoRA, or a bottleneck adapter for ``seq_bn`` and ``double_seq_bn``."""
        return LORA if self.type == "lora" else BOTTLENECK

    @property
    def spec(self) -> KindSpec:
        """The definition of its kind."""
        return KINDS[self.kind]

    @property
    def label(self) -> str:
        """Short name for tables: ``lora-r8`` or the bottleneck type."""
        return f"lora-r{self.r}" if self.kind == LORA else self.type


class DistillConfig(BaseModel):
    """Loss = (1 - weight) * task loss + weight * T^2 * KL(teacher_T || student_T) (Hinton et al., 2015)."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(0.5, gt=0, le=1)
    temperature: float = Field(2.0, gt=0)


class TrainingConfig(BaseModel):
    """Training budget and optimiser settings (defaults: the paper's lr 1e-5, batch 16, 10 epochs)."""

    model_config = ConfigDict(extra="forbid")
    learning_rate: float = Field(1e-5, gt=0)
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        description="learning rate of the task head (default: learning_rate); a larger one helps models "
        "whose final hidden states are small, e.g. all-mpnet-base-v2",
        json_schema_extra=LATER,
    )
    batch_size: int = Field(16, gt=0)
    epochs: float = Field(10, gt=0)
    max_steps: int | None = Field(None, gt=0)
    eval_every: int | None = Field(None, gt=0, description="evaluate every N steps (learning curve)")
    eval_log: int | None = Field(
        None,
        gt=1,
        le=30,
        description="evaluate at N log-spaced steps that double up to the budget (e.g. 8 of 1250: 10, 20, 39, "
        "78, 156, 312, 625, 1250), so curves show the early and the late phase; with eval_every, both",
        json_schema_extra=LATER,
    )
    max_length: int = Field(128, gt=8)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    distill: DistillConfig | None = Field(
        None, description="mix in logit distillation from the trained teacher", json_schema_extra=LATER
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 on a GPU that supports it (else fp16), fp32 on a CPU; bf16 on a CPU is autocast, "
        "fast only where the CPU has avx512_bf16 or AMX (benchmarks/training_speed.py measures it)",
        json_schema_extra=LATER,
    )


def log_steps(total: int, points: int) -> list[int]:
    """``points`` steps that double up to ``total`` (the last is ``total``), without repeats: the evaluation
    steps of ``eval_log``.

    >>> log_steps(1250, 8)
    [10, 20, 39, 78, 156, 312, 625, 1250]
    >>> log_steps(4, 8)
    [1, 2, 4]
    """
    steps = {max(1, round(total / 2**k)) for k in range(points)}
    return sorted(steps)
