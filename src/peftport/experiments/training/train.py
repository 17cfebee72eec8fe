"""Train a PEFT module and task head with the Hugging Face ``Trainer``; evaluate before, during and after."""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from peftport.architectures.models import describe_model
from peftport.errors import PeftportError
from peftport.experiments.training.distillation import (
    DistillTeacher,
    TeacherCollator,
    distilling_trainer,
    load_trained_teacher,
    teacher_predictions,
    with_teacher,
)
from peftport.experiments.training.options import ModuleConfig, TrainingConfig, log_steps
from peftport.experiments.training.trainable import (
    attach_module,
    head_names,
    load_head,
    save_trained,
    task_model,
    trainable_groups,
)
from peftport.tasks.data import TaskData
from peftport.tasks.encoding import IGNORED, encode_split
from peftport.tasks.metrics import accuracy, macro_f1, span_f1


@dataclass
class TrainResult:
    """Scores before training (step 0), along the way, and at the end, on the test split."""

    zero_step: dict[str, float]
    final: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _metric_function(data: TaskData):
    def compute(prediction: Any) -> dict[str, float]:
        logits, labels = prediction.predictions, prediction.label_ids
        predicted = np.argmax(logits, axis=-1)
        if data.kind == "token":
            keep = labels != IGNORED
            truth = [[data.labels[t] for t in row[k]] for row, k in zip(labels, keep, strict=True)]
            guess = [[data.labels[p] for p in row[k]] for row, k in zip(predicted, keep, strict=True)]
            return {"f1": span_f1(truth, guess)}
        true, guessed = labels.tolist(), predicted.tolist()
        return {"accuracy": accuracy(true, guessed), "macro_f1": macro_f1(true, guessed)}

    return compute


def _callback_base() -> type:
    # transformers is imported here, not at the top, so reading an experiment file stays fast
    from transformers import TrainerCallback

    return TrainerCallback


class _EvaluateAt(_callback_base()):
    """Asks the Trainer for an evaluation at ``eval_log`` log-spaced steps of the run's budget."""

    def __init__(self, points: int) -> None:
        self.points = points
        self.steps: set[int] = set()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps = set(log_steps(state.max_steps, self.points))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step in self.steps:
            control.should_evaluate = True
        return control


class _StepReporter(_callback_base()):
    """Forwards optimiser steps to a progress display."""

    def __init__(self, report: Callable[[int, int], None]) -> None:
        self.report = report

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.report(state.global_step, state.max_steps)


def _collator(data: TaskData, tokenizer: Any) -> Any:
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    return (DataCollatorForTokenClassification if data.kind == "token" else DataCollatorWithPadding)(tokenizer)


def _teacher_predictions(teacher: DistillTeacher | None, data: TaskData, training: TrainingConfig) -> list:
    """The trained teacher's labelled logits on the train split, encoded with the teacher's own tokenizer."""
    from transformers import AutoTokenizer

    if teacher is None:
        raise PeftportError("training.distill needs the trained teacher to distil from")
    model, accepted = load_trained_teacher(teacher.reference, teacher.module_dir, data, teacher.module)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(teacher.reference)
    features = _inputs(encode_split(data, "train", tokenizer, training.max_length), accepted | {"labels"})
    return teacher_predictions(model, features, _collator(data, tokenizer))


def _inputs(features: list[dict], accepted: set[str]) -> list[dict]:
    return [{k: v for k, v in f.items() if k in accepted} for f in features]


def _precision(choice: str = "auto") -> dict[str, bool]:
    """``TrainingArguments`` flags for ``training.precision`` on this machine."""
    if not torch.cuda.is_available():
        return {"use_cpu": True, "bf16": choice == "bf16"}  # bf16 on a CPU: torch.autocast
    if choice == "fp32":
        return {}
    if torch.cuda.is_bf16_supported():
        return {"bf16": True}
    if choice == "bf16":
        raise PeftportError("training.precision is bf16, but this GPU does not support bf16: use auto or fp32")
    return {"fp16": True}


def _optimizer(model: torch.nn.Module, heads: list[str], training: TrainingConfig) -> torch.optim.Optimizer | None:
    """AdamW with the head in its own parameter group when ``head_learning_rate`` is set; else ``None``, so the
    ``Trainer`` builds its default optimiser. The Trainer's schedule scales both groups alike."""
    if training.head_learning_rate is None:
        return None
    module, head = trainable_groups(model, heads)
    groups = [{"params": module}, {"params": head, "lr": training.head_learning_rate}]
    return torch.optim.AdamW(groups, lr=training.learning_rate, weight_decay=0.0)


def _callbacks(training: TrainingConfig, on_step: Callable[[int, int], None] | None) -> list[Any]:
    callbacks: list[Any] = [_StepReporter(on_step)] if on_step else []
    return callbacks + ([_EvaluateAt(training.eval_log)] if training.eval_log else [])


def _scores(metrics: dict[str, float]) -> dict[str, float]:
    return {
        k.removeprefix("eval_"): v for k, v in metrics.items() if k in ("eval_f1", "eval_accuracy", "eval_macro_f1")
    }


def train_module(
    model_ref: str,
    data: TaskData,
    module: ModuleConfig,
    training: TrainingConfig,
    seed: int,
    out: Path,
    init: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    head: dict[str, torch.Tensor] | None = None,
    teacher: DistillTeacher | None = None,
) -> TrainResult:
    """Train ``module`` (from ``init`` or the library's default initialisation) and the head; save the module
    to ``out``. Same seed, data order and budget for every call with the same arguments but ``init``.
    ``on_step(step, total)`` is called after every optimiser step (progress display); ``head`` initialises the
    task head (else it is random, from ``seed``); ``teacher`` is the trained teacher that
    ``training.distill`` distils from."""
    from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

    predictions = _teacher_predictions(teacher, data, training) if training.distill is not None else []
    set_seed(seed)  # after the teacher's predictions, so the student starts as it would without distillation
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    built = task_model(model_ref, data)
    if head is not None:
        load_head(built, head)
    accepted = set(inspect.signature(type(built).forward).parameters)  # e.g. no token_type_ids (distilbert)
    heads = head_names(built)
    model = attach_module(built, describe_model(model_ref).spec, module, init)
    collator = _collator(data, tokenizer)
    train_features = _inputs(encode_split(data, "train", tokenizer, training.max_length), accepted)
    trainer_class = Trainer
    if training.distill is not None:
        train_features = with_teacher(train_features, predictions)
        collator = TeacherCollator(collator)
        trainer_class = distilling_trainer(Trainer, training.distill)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            learning_rate=training.learning_rate,
            per_device_train_batch_size=training.batch_size,
            per_device_eval_batch_size=64,
            num_train_epochs=training.epochs,
            max_steps=training.max_steps or -1,
            eval_strategy="steps" if training.eval_every else "no",
            eval_steps=training.eval_every,
            logging_steps=training.eval_every or 50,  # eval_log steps are asked for by _EvaluateAt
            save_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            warmup_ratio=training.warmup_ratio,
            disable_tqdm=on_step is not None,
            remove_unused_columns=False,
            label_names=["labels"],
            **_precision(training.precision),
        )
        trainer = trainer_class(
            model=model,
            args=args,
            data_collator=collator,
            compute_metrics=_metric_function(data),
            train_dataset=train_features,
            eval_dataset=_inputs(encode_split(data, "test", tokenizer, training.max_length), accepted),
            callbacks=_callbacks(training, on_step),
            optimizers=(_optimizer(model, heads, training), None),
        )
        if on_step is not None:  # the caller shows progress; no per-log printing
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        zero = _scores(trainer.evaluate())
        start = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - start
        final = _scores(trainer.evaluate())
    points = {0: zero} | {e["step"]: _scores(e) for e in trainer.state.log_history if "eval_loss" in e}
    curve = [{"step": step, **scores} for step, scores in sorted(points.items())]
    save_trained(model, module, out)
    return TrainResult(
        zero,
        final,
        curve,
        trainer.state.global_step,
        seconds,
        float(output.metrics.get("train_samples_per_second", 0)),
        str(args.device),
        next((k for k in ("bf16", "fp16") if getattr(args, k)), "fp32"),
    )
