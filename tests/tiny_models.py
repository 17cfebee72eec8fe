"""Tiny random models (hidden 32) of every supported family, saved as model directories."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModel,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    MPNetConfig,
    PretrainedConfig,
    Qwen2Config,
    RobertaConfig,
    XLMRobertaConfig,
)

HIDDEN = 32
INTERMEDIATE = 64
FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta", "mpnet", "electra"]
ADAPTERHUB_FAMILIES = [f for f in FAMILIES if f != "mpnet"]
# decoder LLM families (grouped-query attention); tested on their own in test_decoders.py
DECODER_FAMILIES = ["llama", "mistral", "qwen2", "gemma"]
DECODER_CONFIGS = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "gemma": GemmaConfig}


def tiny_config(family: str, layers: int, hidden: int = HIDDEN, vocab_size: int = 120) -> PretrainedConfig:
    """A config of ``family`` with ``layers`` layers and small widths."""
    common = {"vocab_size": vocab_size, "max_position_embeddings": 64}
    if family in DECODER_CONFIGS:  # 2 query heads sharing 1 key/value head
        return DECODER_CONFIGS[family](
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2,
            num_key_value_heads=1, head_dim=hidden // 2, **common,
        )  # fmt: skip
    if family == "distilbert":
        return DistilBertConfig(dim=hidden, n_layers=layers, n_heads=2, hidden_dim=2 * hidden, **common)
    bertlike = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": 2 * hidden,
        **common,
    }
    if family == "electra":
        return ElectraConfig(embedding_size=16, **bertlike)
    classes = {"bert": BertConfig, "roberta": RobertaConfig, "xlm-roberta": XLMRobertaConfig, "mpnet": MPNetConfig}
    return classes[family](**bertlike)


def save_tiny_model(
    family: str, layers: int, directory: Path, hidden: int = HIDDEN, seed: int = 0, vocab_size: int = 120
) -> Path:
    """Save a random ``family`` model with ``layers`` layers to ``directory``."""
    torch.manual_seed(seed)
    AutoModel.from_config(tiny_config(family, layers, hidden, vocab_size)).save_pretrained(str(directory))
    return directory


def input_ids(batch: int = 2, length: int = 7, seed: int = 0) -> torch.Tensor:
    """Random token ids valid for every tiny model (avoids ids 0-3, padding/special)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, 100, (batch, length), generator=generator)
