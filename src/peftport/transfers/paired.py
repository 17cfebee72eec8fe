"""Running a teacher and a student on the same texts: the two models with their tokenizers, and one forward
pass (the shared tokens come from ``transfers.teacher_outputs``). Recovery trains on these passes; fidelity
measures on them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from peftport.probing.collect import MODEL_INPUTS


@dataclass(frozen=True)
class RecoveryModels:
    """Teacher and student task or base models with their modules attached, and their tokenizers."""

    teacher: torch.nn.Module
    student: torch.nn.Module
    teacher_tokenizer: Any
    student_tokenizer: Any


def accepted_inputs(model: torch.nn.Module) -> set[str]:
    """The input names the model's forward takes (a peft wrapper: its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(type(base).forward).parameters)


def forward(model: torch.nn.Module, encoded: Any) -> Any:
    """One forward pass on the encoded batch (only the inputs the model takes), with hidden states."""
    device = next(model.parameters()).device
    accepted = accepted_inputs(model)
    inputs = {k: v.to(device) for k, v in encoded.items() if k in MODEL_INPUTS and k in accepted}
    return model(**inputs, output_hidden_states=True)
