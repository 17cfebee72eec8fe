"""The experiment file: YAML validated into typed config objects, checked before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from peftport.errors import PeftportError
from peftport.experiments.training.options import ModuleConfig, TrainingConfig
from peftport.tasks.data import TaskConfig
from peftport.transfers.options import LATER, TransferFields


class PairConfig(BaseModel):
    """A teacher and a student model: hub names, local directories or ``zoo:NAME``."""

    model_config = ConfigDict(extra="forbid")
    teacher: str
    student: str
    name: str | None = None

    @property
    def label(self) -> str:
        """Short name for tables."""
        return self.name or f"{Path(self.teacher).name}->{Path(self.student).name}"


class TransferConfig(TransferFields):
    """How the teacher module becomes the student's initial module (the fields of `TransferOptions`, with
    the student's starting head as a choice)."""

    probe_data: str | None = Field(None, description="default: the task's train split")
    head: Literal["random", "teacher"] = Field(
        "random", description="student head: random, or the teacher's (pruned by the final layers' alignment)"
    )
    recover_lr: float | None = Field(
        None, description="recovery learning rate (default: the students')", json_schema_extra=LATER
    )
    name: str | None = Field(
        None,
        description="the transfer's label in tables and records (default: built from its options, e.g. "
        "skip+corr(offsets,input)); needed where two transfers differ only in options the label leaves out, "
        "such as probe_sentences; part of the run id",
        json_schema_extra=LATER,
    )

    @property
    def label(self) -> str:
        """Short name for tables: ``name`` when given, else ``skip``, ``skip+head``, ``skip+corr(offsets,input)``,
        ``skip+proj`` ..."""
        if self.name:
            return self.name
        method = self.method
        extras = [
            self.matcher if self.matcher != "hungarian" else "",
            f"min{self.min_quality:g}" if self.min_quality is not None else "",
            f"layers({self.transfer_layers})" if self.transfer_layers != "all" else "",
            "svd" if self.lora_svd else "",
            "head" if self.head == "teacher" else "",
            "uncal" if method.calibrates and not self.calibrate else "",
            f"rec{self.recover_steps}{self._recover_rate}" if self.recover_steps else "",
            "lin" if self.recover_schedule == "linear" else "",
            self.recover_precision if self.recover_precision != "fp32" else "",
            f"pat{self.recover_patience}" if self.recover_patience else "",
        ]
        start = "fresh" if self.start == "fresh" else method.label(method, self)
        return "+".join([start, *[e for e in extras if e]])

    @model_validator(mode="after")
    def _fresh_distils(self) -> TransferConfig:
        if self.start == "fresh" and (not self.recover_steps or self.head != "teacher"):
            raise ValueError(
                "start: fresh distils a fresh module and a random head into the teacher's outputs: give "
                "recover_steps and head: teacher (the student then starts from the distilled head)"
            )
        return self

    @property
    def _recover_rate(self) -> str:
        """``(lr0.003)`` when recovery has its own rate; empty at the default (the labels of earlier records)."""
        return f"(lr{self.recover_lr:g})" if self.recover_lr is not None else ""


class ExperimentConfig(BaseModel):
    """A grid: pairs x tasks x languages x modules x transfers x seeds."""

    model_config = ConfigDict(extra="forbid")
    name: str = "experiment"
    pairs: list[PairConfig] = Field(min_length=1)
    tasks: list[TaskConfig] = Field(min_length=1)
    modules: list[ModuleConfig] = Field(default_factory=lambda: [ModuleConfig()])
    transfers: list[TransferConfig] = Field(default_factory=lambda: [TransferConfig()])
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    teacher_training: TrainingConfig | None = Field(None, description="default: the same as training")
    teacher_seed: int | None = Field(
        None, description="train one teacher per cell with this seed and transfer it to every student seed"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("tasks: names must be unique")
        return self


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    return f"{where}: {first['msg']}"


def load_config(path: Path) -> ExperimentConfig:
    """Read and validate an experiment file; one-line errors name the file and the field."""
    if not path.is_file():
        raise PeftportError(f"experiment file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PeftportError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise PeftportError(f"{path} must hold a mapping (name, pairs, tasks, ...)")
    try:
        return ExperimentConfig.model_validate(_relative_paths(raw, path.parent))
    except ValidationError as exc:
        raise PeftportError(f"invalid experiment {path}: {_first_error(exc)}") from None


def _relative_paths(raw: dict, base: Path) -> dict:
    """Data paths in the file are relative to the file's folder (absolute, hub and zoo names are kept)."""
    for task in raw.get("tasks") or []:
        for key in ("train", "test"):
            value = task.get(key) if isinstance(task, dict) else None
            if isinstance(value, str) and not value.startswith(("hf:", "/", "~")):
                task[key] = str(base / value)
    return raw
