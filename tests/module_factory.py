"""Teacher modules made with the real libraries (peft, AdapterHub), with random non-zero weights."""

from __future__ import annotations

import re
from pathlib import Path

import adapters
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModel, AutoModelForSequenceClassification

from peftport.architectures.registry import spec_by_name

PEFT_SLOTS = ["attn_q", "attn_v", "ffn_out"]
ADAPTERHUB_CONFIGS = {
    "seq_bn": adapters.SeqBnConfig(reduction_factor=4),
    "double_seq_bn": adapters.DoubleSeqBnConfig(reduction_factor=4),
    "ah_lora": adapters.LoRAConfig(r=4, alpha=8, attn_matrices=["q", "v"], intermediate_lora=True, output_lora=True),
}


def _randomize(model: torch.nn.Module, marker: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if marker in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def peft_target_modules(family: str, slots: list[str]) -> str:
    """A regex selecting exactly ``slots`` in every layer (independent of peftport's writer)."""
    spec = spec_by_name(family)
    paths = [re.escape(spec.module_path(s, 0)).replace(r"\.0\.", r"\.\d+\.") for s in slots]
    return "|".join(rf"(?:.*\.)?{p}" for p in paths)


def make_peft_lora(
    model_dir: Path,
    family: str,
    out: Path,
    task_model: bool = True,
    seed: int = 0,
    slots: list[str] = PEFT_SLOTS,
    safe_serialization: bool = True,
    **lora: object,
) -> Path:
    """A peft LoRA (rank 4) on ``slots``, saved from a task model (SEQ_CLS) or a base model."""
    model_class = AutoModelForSequenceClassification if task_model else AutoModel
    model = model_class.from_pretrained(str(model_dir))
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=peft_target_modules(family, slots),
        task_type="SEQ_CLS" if task_model else None,
        **lora,
    )
    peft_model = get_peft_model(model, config)
    _randomize(peft_model, "lora_", seed)
    peft_model.save_pretrained(str(out), safe_serialization=safe_serialization)
    return out


def make_adapterhub(model_dir: Path, kind: str, out: Path, seed: int = 0, config: object = None) -> Path:
    """An AdapterHub module (``seq_bn``, ``double_seq_bn`` or ``ah_lora``) named ``task``."""
    model = AutoModel.from_pretrained(str(model_dir))
    adapters.init(model)
    model.add_adapter("task", config=config or ADAPTERHUB_CONFIGS[kind])
    _randomize(model, ".task.", seed)
    model.save_adapter(str(out), "task")
    return out
