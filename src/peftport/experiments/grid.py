"""Expand an experiment into independent runs, each named by the hash of its resolved config.

Three kinds of run: ``teacher`` (train the module on the teacher), ``baseline`` (train it on the
student from the library's initialisation) and ``transferred`` (transfer the teacher's module, then
train it on the student). A transferred run needs its teacher run; baselines are shared by all
transfers of a cell, so nothing is trained twice. With ``teacher_seed`` set, one teacher per cell
serves every student seed. ``lora_b`` only matters for LoRA, so bottleneck cells drop it and
transfers that differ only there are one run.

A run's id hashes its config with local data paths written relative to the output folder, so the same
experiment names the same runs from any working directory, by any path to the experiment file, and on
any machine where the data sits in the same place relative to the results.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from peftport.experiments.config import ExperimentConfig, TransferConfig
from peftport.experiments.training.options import ModuleConfig, TrainingConfig
from peftport.tasks.data import HUB_PREFIX, TaskConfig

RunKind = Literal["teacher", "baseline", "transferred"]


@dataclass(frozen=True)
class RunSpec:
    """A run's spec validated once: the typed view of `Run.spec` (whose JSON is what the run id hashes)."""

    task: TaskConfig  # with this run's language only
    language: str
    module: ModuleConfig
    training: TrainingConfig
    seed: int
    model: str
    teacher: str | None = None
    teacher_run: str | None = None
    transfer: TransferConfig | None = None
    head: str | None = None

    @classmethod
    def of(cls, spec: dict[str, Any]) -> RunSpec:
        """The typed view of a spec written by :func:`expand` (or read back from a run's ``config.json``)."""
        return cls(
            TaskConfig.model_validate({**spec["task"], "languages": [spec["language"]]}),
            spec["language"],
            ModuleConfig.model_validate(spec["module"]),
            TrainingConfig.model_validate(spec["training"]),
            int(spec["seed"]),
            spec["model"],
            spec.get("teacher"),
            spec.get("teacher_run"),
            TransferConfig.model_validate(spec["transfer"]) if "transfer" in spec else None,
            spec.get("head"),
        )


@dataclass(frozen=True)
class Run:
    """One unit of work: what to train, on which model, from what."""

    kind: RunKind
    spec: dict[str, Any]
    out: str  # the output folder: local data paths enter the id relative to it
    needs: tuple[str, ...] = field(default=())

    @cached_property
    def typed(self) -> RunSpec:
        """The spec validated once (`RunSpec`)."""
        return RunSpec.of(self.spec)

    @property
    def title(self) -> str:
        """A readable name for logs and progress bars: ``baseline ner/en seed 1``."""
        return f"{self.kind} {self.spec['task']['name']}/{self.spec['language']} seed {self.spec['seed']}"

    @property
    def id(self) -> str:
        """Hash of the resolved config, data paths relative to the output folder ``out``: the run's directory
        name and its key in the index."""
        identity = {"kind": self.kind, **self.spec, "task": portable_task(self.spec["task"], self.out)}
        text = json.dumps(identity, sort_keys=True)
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def portable_task(task: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """``task`` with local data paths relative to the folder ``out`` (hub names are kept); symbolic links
    are not followed, so a data folder linked in reads as where the link is."""
    start = os.path.abspath(out)
    return {
        key: os.path.relpath(os.path.abspath(os.path.expanduser(value)), start)
        if key in ("train", "test") and not value.startswith(HUB_PREFIX)
        else value
        for key, value in task.items()
    }


def expand(config: ExperimentConfig, out: Path) -> list[Run]:
    """All runs of ``config`` for the output folder ``out``, in a useful order (each teacher before its
    transfers), without duplicates."""
    runs: dict[str, Run] = {}
    folder = str(out)
    teacher_training = _training_spec(config.teacher_training or config.training)
    student_training = _training_spec(config.training)
    for pair in config.pairs:
        for task in config.tasks:
            for language in task.languages:
                for module in config.modules:
                    for seed in config.seeds:
                        cell = {
                            "task": task.model_dump(exclude={"languages"}),
                            "language": language,
                            "module": module.model_dump(),
                            "seed": seed,
                        }
                        teacher_seed = seed if config.teacher_seed is None else config.teacher_seed
                        teacher = Run(
                            "teacher",
                            {**cell, "seed": teacher_seed, "model": pair.teacher, "training": teacher_training},
                            out=folder,
                        )
                        student = {**cell, "model": pair.student, "training": student_training}
                        distils = config.training.distill is not None  # students learn from the teacher too
                        baseline = Run(
                            "baseline",
                            {**student, "teacher": pair.teacher, "teacher_run": teacher.id} if distils else student,
                            needs=(teacher.id,) if distils else (),
                            out=folder,
                        )
                        runs.setdefault(teacher.id, teacher)
                        runs.setdefault(baseline.id, baseline)
                        for transfer in config.transfers:
                            moved = Run(
                                "transferred",
                                {
                                    **baseline.spec,
                                    "teacher": pair.teacher,
                                    "teacher_run": teacher.id,
                                    "transfer": _transfer_spec(transfer, module),
                                    "head": transfer.head,
                                },
                                needs=(teacher.id,),
                                out=folder,
                            )
                            runs.setdefault(moved.id, moved)
    return list(runs.values())


def later_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Options added after the first studies (marked ``LATER`` on their field), with their defaults: left out
    of a run's spec while at them, so the ids (config hashes) of earlier runs stay valid and their results
    are reused. A new option carries the marker; nothing here changes."""
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("later")
    }


LATER_OPTIONS = later_defaults(TransferConfig)
LATER_TRAINING = later_defaults(TrainingConfig)


def _training_spec(training: TrainingConfig) -> dict[str, Any]:
    spec = training.model_dump()
    for key, default in LATER_TRAINING.items():
        if spec[key] == default:
            del spec[key]
    return spec


def _transfer_spec(transfer: TransferConfig, module: ModuleConfig) -> dict[str, Any]:
    spec = transfer.model_dump()
    if not module.spec.low_rank:  # LoRA-only options mean nothing for bottleneck adapters
        spec["lora_b"] = TransferConfig.model_fields["lora_b"].default
        spec["lora_svd"] = False
    for key, default in LATER_OPTIONS.items():
        if spec[key] == default:
            del spec[key]
    return spec
