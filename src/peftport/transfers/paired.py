"""Running a teacher and a student on the same texts: the two models with their tokenizers, one forward pass
each, and the tokens both tokenizers share (by character offsets). Recovery trains on these passes; fidelity
measures on them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from peftport.probing.collect import MODEL_INPUTS, encode_texts
from peftport.probing.tokens import TokenMatch, match_by_offsets


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


def shared_tokens(texts: list[str], t_enc: Any, s_enc: Any) -> list[TokenMatch]:
    """Per text, the token positions of the two encodings that cover the same characters."""
    keys = ("offset_mapping", "special_tokens_mask")
    return [
        match_by_offsets(text, {k: t_enc[k][i].tolist() for k in keys}, {k: s_enc[k][i].tolist() for k in keys})
        for i, text in enumerate(texts)
    ]


def encoded_pair(models: RecoveryModels, texts: list[str], max_length: int) -> tuple[Any, Any, list[TokenMatch]]:
    """Both encodings of ``texts`` and their shared tokens."""
    t_enc = encode_texts(models.teacher_tokenizer, texts, max_length)
    s_enc = encode_texts(models.student_tokenizer, texts, max_length)
    return t_enc, s_enc, shared_tokens(texts, t_enc, s_enc)
