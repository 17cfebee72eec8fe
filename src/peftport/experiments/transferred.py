"""A grid's transferred module: made once per (teacher run, transfer options, student) and kept in the
experiment's ``transfers`` folder for every seed and run that shares it, with the head a student starts from."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from peftport.architectures.models import describe_model
from peftport.core.module import LayerTensors
from peftport.experiments.grid import Run, RunSpec
from peftport.experiments.store import TRANSFERS_DIR, run_dir
from peftport.experiments.training.distillation import load_trained_teacher
from peftport.experiments.training.options import ModuleConfig
from peftport.experiments.training.trainable import (
    attach_module,
    head_names,
    load_head,
    read_head,
    save_trained,
    task_model,
)
from peftport.formats.atomic import atomic_directory
from peftport.formats.registry import load_module, save_module
from peftport.tasks.data import TaskData
from peftport.transfers.api import transfer_module
from peftport.transfers.options import TransferOptions
from peftport.transfers.recovery import Recovery, RecoveryModels, RecoveryOptions
from peftport.transfers.teacher_outputs import teacher_key
from peftport.zoo import resolve_model

HEAD_FILE = "head.safetensors"
TEACHER_OUTPUTS_DIR = "teacher_outputs"  # the trained teachers' outputs on recovery texts, shared by the grid's runs


def transfer_key(spec: dict[str, Any]) -> str:
    """A transfer depends on the teacher run, the transfer options and the student only (the head only
    when it is aligned: a teacher head of equal width is read as it is); a recovered one also on the rate,
    batch size and length recovery trains with."""
    options = dict(spec["transfer"])
    if options.get("align", "none") == "none" and not options.get("recover_steps"):
        options.pop("head", None)  # a copied head is read as it is; recovery trains it, so it counts there
    seeded = options.get("min_quality") is not None  # fresh layers are initialised with the run's seed
    if options.get("recover_steps"):  # recovery trains with the students' settings (and rate, unless its own)
        settings = recovery_settings(RunSpec.of(spec))
        options["recovery_training"] = [settings.learning_rate, settings.batch_size, settings.max_length]
    text = json.dumps([spec["teacher_run"], options, spec["model"], spec["seed"] if seeded else None], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def transfer_init(run: Run, out: Path, data: TaskData) -> tuple[Path, dict[str, Any]]:
    """The transferred module for ``run``, made once and kept in ``out/transfers`` for the other seeds: the one
    transfer of the CLI and API, with the teacher run's head and recovery on the grid's trained task models."""
    spec = run.spec
    cached = out / TRANSFERS_DIR / transfer_key(spec)
    if (cached / "transfer.json").is_file():
        return cached / "module", {**json.loads((cached / "transfer.json").read_text()), "transfer_cached": True}
    typed = run.typed
    config = typed.transfer
    if config is None:
        raise ValueError(f"run {run.id} is not a transfer")
    texts = config.probe_data or typed.task.source("train", typed.language)
    fields = config.model_dump(exclude={"head", "recover_steps", "recover_lr", "probe_data", "name"})
    options = TransferOptions(**fields, probe_data=texts if config.probes else None, seed=spec["seed"])
    teacher_module = run_dir(out, spec["teacher_run"]) / "module"
    teacher, student = resolve_model(spec["teacher"]), resolve_model(spec["model"])
    # the teacher's head moves when it is aligned, or copied when recovery trains it (else it is read as it is)
    moves_head = config.head == "teacher" and (config.method.aligns or config.recover_steps > 0)
    backend = TrainedModels(teacher, student, teacher_module, data, typed.module)
    cache = (out / TEACHER_OUTPUTS_DIR, teacher_key(teacher, teacher_module, "grid"))
    recovery = Recovery(recovery_settings(typed), backend, cache) if config.recover_steps else None
    start = time.perf_counter()
    moved = transfer_module(
        teacher_module,
        spec["teacher"],  # as the experiment names them: the manifest records zoo models by their hub ids
        spec["model"],
        options,
        head=read_head(teacher_module) if moves_head else None,
        recovery=recovery,
    )
    made = moved.module.provenance
    facts: dict[str, Any] = {
        "transfer_seconds": time.perf_counter() - start,
        "alignment": (made.get("alignment") or {}).get("mean_matched_correlation"),
    }
    if moves_head and made["head"]["method"] == "aligned":  # the record of earlier versions: without "method"
        facts["head_alignment"] = {k: v for k, v in made["head"].items() if k != "method"}
    if recovery is not None:
        facts["recovery"] = made["recovery"]
    with atomic_directory(cached, force=True) as staging:
        save_module(moved.module, staging / "module")
        if moved.head is not None:
            save_file({k: v.contiguous() for k, v in moved.head.items()}, str(staging / HEAD_FILE))
        (staging / "transfer.json").write_text(json.dumps(facts))
    return cached / "module", {**facts, "transfer_cached": False}


def recovery_settings(spec: RunSpec) -> RecoveryOptions:
    """How recovery trains for a transferred run: its transfer's steps and ``recover_lr``, else the students'
    rate, with the students' batch size and length."""
    options, training = spec.transfer, spec.training
    if options is None:
        raise ValueError("only a transferred run recovers")
    rate = options.recover_lr or training.learning_rate
    return RecoveryOptions(
        options.recover_steps,
        rate,
        training.batch_size,
        training.max_length,
        schedule=options.recover_schedule,
        precision=options.recover_precision,
        patience=options.recover_patience,
    )


@dataclass(frozen=True)
class TrainedModels:
    """Recovery on a grid's task models: the teacher run's trained module and head, the student's task model
    with the transferred module (and moved head) attached as training attaches it."""

    teacher: str
    student: str
    teacher_module: Path
    data: TaskData
    module: ModuleConfig

    def models(self, before: Path, head: dict[str, torch.Tensor] | None) -> RecoveryModels:
        from transformers import AutoTokenizer

        built = task_model(self.student, self.data)
        if head is not None:
            load_head(built, head)
        names = head_names(built)
        moved = attach_module(built, describe_model(self.student).spec, self.module, before)
        if head is None:  # a random head carries nothing to recover: only the module moves, towards hidden states
            for name, param in moved.named_parameters():
                if set(name.split(".")) & set(names):
                    param.requires_grad = False
        trained_teacher, _ = load_trained_teacher(self.teacher, self.teacher_module, self.data, self.module)
        tokenizers = AutoTokenizer.from_pretrained(self.teacher), AutoTokenizer.from_pretrained(self.student)
        return RecoveryModels(trained_teacher, moved, *tokenizers)

    def read_back(self, student: torch.nn.Module, after: Path, head: bool) -> tuple[LayerTensors, dict | None]:
        save_trained(student, self.module, after)
        return load_module(after).layers, read_head(after) if head else None


def student_head(spec: dict[str, Any], out: Path, init: Path | None) -> dict[str, torch.Tensor] | None:
    """The head a transferred student starts from: none (random), the teacher's, or its aligned version."""
    if spec.get("head") != "teacher":
        return None
    aligned = init.parent / HEAD_FILE if init is not None else None
    if aligned is not None and aligned.is_file():
        return load_file(str(aligned))
    return read_head(run_dir(out, spec["teacher_run"]) / "module")
