"""Rebuild a Hugging Face BERT model directory from a sentence-transformers ONNX export.

Named initializers (embeddings, biases, layer norms) keep their PyTorch names under a prefix such
as ``model.0.auto_model.``. The weight matrices are anonymous ``MatMul`` inputs; each MatMul's output
feeds an ``Add`` whose bias initializer names the module, and the PyTorch ``nn.Linear`` weight is
the MatMul matrix transposed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from peftport.errors import PeftportError


def onnx_bert_state_dict(onnx_file: Path, prefix: str = "model.0.auto_model.") -> dict[str, torch.Tensor]:
    """``BertModel`` weights (without pooler) from an ONNX export of a BERT encoder."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(onnx_file)).graph
    except Exception as exc:  # onnx raises DecodeError and others on corrupt files
        raise PeftportError(f"cannot read ONNX model {onnx_file}: {exc}") from None
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    state = {name[len(prefix) :]: torch.from_numpy(a.copy()) for name, a in arrays.items() if name.startswith(prefix)}
    adds = {name: node for node in graph.node if node.op_type == "Add" for name in node.input}
    for node in graph.node:
        weight = next((i for i in node.input if i in arrays and not i.startswith(prefix)), None)
        if node.op_type != "MatMul" or weight is None or node.output[0] not in adds:
            continue
        bias = next((i for i in adds[node.output[0]].input if i.startswith(prefix) and i.endswith(".bias")), None)
        if bias is None:
            raise PeftportError(f"ONNX MatMul {node.name} is not followed by a named bias: cannot name its weight")
        state[bias[len(prefix) : -len(".bias")] + ".weight"] = torch.from_numpy(np.ascontiguousarray(arrays[weight].T))
    return state


def save_bert_from_onnx(onnx_file: Path, config_dir: Path, layers: int, out: Path) -> Path:
    """Write a ``BertModel`` directory: ``config_dir``'s config with ``layers`` layers and its tokenizer files."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig.from_pretrained(str(config_dir), num_hidden_layers=layers)
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(onnx_bert_state_dict(onnx_file), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise PeftportError(
            f"ONNX weights do not fit a {layers}-layer BERT: missing {missing}, unexpected {unexpected}"
        )
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(config_dir)).save_pretrained(str(out))
    return out
