"""The last steps of a transfer: the teacher's task head (read from its peft module, or given), moved to the
student, and the student module built from the remapped layers with the options that still hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from peftport.architectures.models import ModelInfo
from peftport.core.alignment import PointAlignment
from peftport.core.initialisation import default_roles
from peftport.core.module import LayerTensors, PeftModule
from peftport.errors import PeftportError
from peftport.formats.peft_lora import NAME as PEFT_FORMAT
from peftport.formats.peft_lora import task_head
from peftport.transfers.heads import aligned_head
from peftport.transfers.methods import AlignMethod

# Options tied to the teacher model or its task head: peft refuses a SEQ_CLS module whose file lacks
# the head weights it lists in modules_to_save, so they are kept only when the head moves too.
MODEL_BOUND_OPTIONS = ("model_class", "revision", "task_type", "modules_to_save", "layers_to_transform", "head_config")
HEAD_OPTIONS = ("task_type", "modules_to_save")
# peft task types whose task model adds no trained head (a causal LM's head is the model's own): kept
HEADLESS_TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION")


def loadable_name(reference: str) -> str:
    """The student as ``base_model_name_or_path``: a zoo model's hub id, a hub name as given, a local folder as
    its absolute path (a path relative to where the command ran loads from nowhere else)."""
    from peftport.zoo import ZOO_PREFIX, public_name

    if reference.startswith(ZOO_PREFIX):
        return public_name(reference)
    path = Path(reference).expanduser()
    return str(path.resolve()) if path.is_dir() else reference


def teacher_head(source: PeftModule) -> dict[str, torch.Tensor]:
    """The task head a peft module was saved with (``modules_to_save``), keyed as in the task model."""
    saved = source.format_options.get("modules_to_save")
    if source.format_options.get("source_format") != PEFT_FORMAT or not saved:
        raise PeftportError("moving the head needs a peft module saved with its task head (modules_to_save)")
    head = task_head(source)
    if not head:
        raise PeftportError(f"the module lists modules_to_save {saved} but its file holds no head weights")
    return head


def moved_head(
    head: dict[str, torch.Tensor], final: PointAlignment | None, teacher: ModelInfo, method: AlignMethod
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The head for the student and its record: copied for equal widths (no ``final``), else through the
    final layers' alignment."""
    if final is None:
        return head, {"method": "copied"}
    moved, record = aligned_head(head, teacher.dims.hidden_size, final, method.name)
    return moved, {"method": "aligned", **record}


def student_module(
    source: PeftModule,
    keeps_head: bool,
    student: ModelInfo,
    layers: LayerTensors,
    extras: dict[str, torch.Tensor],
    made: dict[str, Any],
    named: str | None = None,
) -> PeftModule:
    """The student's module (``named``: the student as the user gave it): ``source``'s settings on the student,
    its model-bound options dropped (the head's kept when ``keeps_head``: the head travels in ``extras``; a task
    type without a trained head, such as CAUSAL_LM, always kept)."""
    headless = source.format_options.get("task_type") in HEADLESS_TASK_TYPES
    kept = (HEAD_OPTIONS if keeps_head else ()) + (("task_type",) if headless else ())
    bound = [k for k in MODEL_BOUND_OPTIONS if k not in kept]
    return source.with_layers(
        layers,
        family=student.spec.name,
        base_model=loadable_name(named or student.reference),
        model_type=student.config.model_type,
        hidden_size=student.dims.hidden_size,
        num_layers=student.dims.num_layers,
        extras=extras,
        format_options={
            **{k: v for k, v in source.format_options.items() if k not in bound},
            "source_task_type": source.format_options.get("task_type"),  # the class the student loads it on
            "check_on": student.reference,  # the local folder save_module's load check builds the student from
        },
        provenance=made,
    )


def fresh_start(
    module: PeftModule, head: dict[str, torch.Tensor], seed: int
) -> tuple[PeftModule, dict[str, torch.Tensor]]:
    """The fresh control of a transfer (``start: fresh``): ``module``'s layers at the library's default
    initialisation (peft: LoRA B zero; AdapterHub: small normal weights) and a random head shaped like ``head``
    (weights normal with std 0.02, biases zero, as transformers initialises a new head), seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    layers = {
        index: {slot: default_roles(roles, generator) for slot, roles in sorted(slots.items())}
        for index, slots in sorted(module.layers.items())
    }
    random = {
        name: torch.zeros_like(t) if name.endswith("bias") else (torch.randn(t.shape, generator=generator) * 0.02).to(t)
        for name, t in sorted(head.items())
    }
    return module.with_layers(layers, provenance={**module.provenance, "start": "fresh"}), random
