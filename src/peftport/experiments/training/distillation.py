"""Logit distillation while a student trains: the trained teacher's predictions as soft targets.

Teacher and student may tokenize differently, so predictions are matched by what they label: the
first sub-token of each word (tagging, words in order) or the whole text (classification).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from peftport.experiments.training.options import DistillConfig
from peftport.experiments.training.trainable import attach_module, load_head, read_head, task_model
from peftport.tasks.encoding import IGNORED

TEACHER_LOGITS = "teacher_logits"
TEACHER_COUNTS = "teacher_counts"


@dataclass(frozen=True)
class DistillTeacher:
    """Where the trained teacher is: its model, and the module directory its run saved (with the head)."""

    reference: str
    module_dir: Path
    module: Any  # the ModuleConfig it was trained with


def labelled_logits(logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Per example, the logit rows that carry a label: ``(words, C)`` for tagging, ``(1, C)`` for classification."""
    if logits.dim() == 2:
        return [row[None] for row in logits]
    return [row[mask] for row, mask in zip(logits, labels != IGNORED, strict=True)]


def distillation_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean KL over labelled positions; each example uses the words both sides kept (truncation may differ)."""
    pairs = [(s[: min(len(s), len(t))], t[: min(len(s), len(t))]) for s, t in zip(student, teacher, strict=True)]
    s_rows = torch.cat([s for s, _ in pairs])
    t_rows = torch.cat([t for _, t in pairs]).to(s_rows.device, s_rows.dtype)
    if s_rows.shape[0] == 0:
        return s_rows.sum() * 0.0
    log_student = F.log_softmax(s_rows / temperature, dim=-1)
    log_teacher = F.log_softmax(t_rows / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


@torch.no_grad()
def teacher_predictions(model: torch.nn.Module, features: list[dict], collator: Any, batch_size: int = 64) -> list:
    """The trained teacher's labelled logits for each encoded example (CPU, float32)."""
    model.eval()
    device = next(model.parameters()).device
    found: list[torch.Tensor] = []
    for start in range(0, len(features), batch_size):
        batch = collator(features[start : start + batch_size])
        labels = batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        found.extend(row.float().cpu() for row in labelled_logits(logits, labels.to(device)))
    return found


def with_teacher(features: list[dict], predictions: list[torch.Tensor]) -> list[dict]:
    """Attach each example's teacher logits to its features."""
    return [{**f, TEACHER_LOGITS: p} for f, p in zip(features, predictions, strict=True)]


class TeacherCollator:
    """Pads a batch with ``base`` and stacks the teacher logits beside it (a list per example)."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __call__(self, features: list[dict]) -> dict:
        predictions = [f.pop(TEACHER_LOGITS) for f in features] if TEACHER_LOGITS in features[0] else None
        batch = self.base(features)
        if predictions is not None:
            batch[TEACHER_LOGITS] = torch.cat(predictions)
            batch[TEACHER_COUNTS] = torch.tensor([len(p) for p in predictions])
            for feature, prediction in zip(features, predictions, strict=True):
                feature[TEACHER_LOGITS] = prediction  # the dataset is reused every epoch
        return batch


def split_rows(rows: torch.Tensor, counts: torch.Tensor) -> list[torch.Tensor]:
    """Undo the collator's concatenation."""
    return list(torch.split(rows, counts.tolist()))


def distilling_trainer(base: type, config: DistillConfig) -> type:
    """A ``Trainer`` subclass whose training loss mixes in distillation when the batch has teacher logits."""

    class DistillingTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            rows, counts = inputs.pop(TEACHER_LOGITS, None), inputs.pop(TEACHER_COUNTS, None)
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
            if rows is not None:
                student = labelled_logits(outputs.logits, inputs["labels"])
                soft = distillation_loss(student, split_rows(rows, counts), config.temperature)
                loss = (1 - config.weight) * loss + config.weight * soft
            return (loss, outputs) if return_outputs else loss

    return DistillingTrainer


def load_trained_teacher(reference: str, module_dir: Path, data: Any, module: Any) -> tuple[torch.nn.Module, set[str]]:
    """The teacher task model with its trained module and head, as the teacher run saved them, and the
    input names its forward accepts."""
    import inspect

    from peftport.architectures.models import describe_model

    model = task_model(reference, data)
    load_head(model, read_head(module_dir))
    accepted = set(inspect.signature(type(model).forward).parameters)
    return attach_module(model, describe_model(reference).spec, module, module_dir), accepted
