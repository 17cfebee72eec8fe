"""Recovery inside a grid: the cached transferred module (and moved head) trained label-free towards the
trained teacher on the task's probe texts, then written back in place of the transfer's output."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from peftport.architectures.models import describe_model
from peftport.experiments.config import TransferConfig
from peftport.experiments.training.distillation import load_trained_teacher
from peftport.experiments.training.options import ModuleConfig, TrainingConfig
from peftport.experiments.training.trainable import (
    attach_module,
    head_names,
    load_head,
    read_head,
    save_trained,
    task_model,
)
from peftport.probing.texts import read_probe_texts
from peftport.tasks.data import TaskData
from peftport.transfers.recovery import RecoveryModels, RecoveryOptions, recover

MANIFEST = "peftport_manifest.json"


def recover_transfer(
    spec: dict[str, Any],
    models: tuple[str, str],
    staging: Path,
    teacher_module: Path,
    data: TaskData,
    hidden_map: torch.Tensor,
    texts: str,
) -> dict[str, Any]:
    """Recover ``staging/module`` (and ``staging/head_file`` when the head moved) in place; returns the record.
    Without a head the target is the teacher's final hidden states read through ``hidden_map`` (d_s, d_t)."""
    from transformers import AutoTokenizer

    teacher, student = models
    options = TransferConfig.model_validate(spec["transfer"])
    module = ModuleConfig.model_validate(spec["module"])
    head_file = staging / "head.safetensors"
    head = read_head(head_file.parent) if head_file.is_file() else None
    built = task_model(student, data)
    if head is not None:
        load_head(built, head)
    names = head_names(built)
    moved = attach_module(built, describe_model(student).spec, module, staging / "module")
    if head is None:  # a random head carries nothing to recover: only the module moves, towards hidden states
        for name, param in moved.named_parameters():
            if set(name.split(".")) & set(names):
                param.requires_grad = False
    trained_teacher, _ = load_trained_teacher(teacher, teacher_module, data, module)
    pair = RecoveryModels(
        trained_teacher, moved, AutoTokenizer.from_pretrained(teacher), AutoTokenizer.from_pretrained(student)
    )
    settings = recovery_settings(spec)
    target = None if head is not None else hidden_map  # a moved head: the teacher's logits are the target
    record = recover(pair, read_probe_texts(texts, options.probe_sentences), settings, target)
    _write_back(moved, module, staging, head is not None)
    return record


def recovery_settings(spec: dict[str, Any]) -> RecoveryOptions:
    """How recovery trains for a run's spec: its transfer's steps and ``recover_lr``, else the students' rate,
    with the students' batch size and length."""
    options, training = TransferConfig.model_validate(spec["transfer"]), TrainingConfig.model_validate(spec["training"])
    rate = options.recover_lr or training.learning_rate
    return RecoveryOptions(options.recover_steps, rate, training.batch_size, training.max_length)


def _write_back(model: torch.nn.Module, module: ModuleConfig, staging: Path, with_head: bool) -> None:
    recovered = staging / "recovered"
    save_trained(model, module, recovered)
    shutil.copy(staging / "module" / MANIFEST, recovered / MANIFEST)
    if with_head:
        save_file({k: v.contiguous() for k, v in read_head(recovered).items()}, str(staging / "head.safetensors"))
    shutil.rmtree(staging / "module")
    recovered.rename(staging / "module")
