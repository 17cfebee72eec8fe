"""The hidden states peftport probes for a bottleneck slot are exactly what the AdapterHub adapter reads.

seq_bn (``original_ln_before``) adapters read the sub-layer's normed residual sum; double_seq_bn
adapters read the sub-layer's output before the residual. Both are checked against a forward hook
on the real adapter module, in layer 0, where no earlier adapter changes the input.
"""

from __future__ import annotations

import adapters
import pytest
import torch
from transformers import AutoModel

from module_factory import make_adapterhub
from peftport.architectures.registry import spec_by_name
from peftport.formats.registry import load_module
from peftport.probing.collect import hook_target
from peftport.probing.hooks import capture
from peftport.transfers.alignment import module_points
from tiny_models import input_ids

CASES = [
    ("bert", "seq_bn", "ffn_adapter", "encoder.layer.0.output.adapters.task"),
    ("bert", "double_seq_bn", "attn_adapter", "encoder.layer.0.attention.output.adapters.task"),
    ("distilbert", "seq_bn", "ffn_adapter", "transformer.layer.0.output_adapters.adapters.task"),
    ("distilbert", "double_seq_bn", "attn_adapter", "transformer.layer.0.attention_adapters.adapters.task"),
]


@pytest.mark.parametrize(("family", "kind", "slot", "adapter_path"), CASES)
def test_probe_point_reads_the_adapter_input(tiny_model, tmp_path, family, kind, slot, adapter_path):
    model_dir = tiny_model(family, 2)
    module = load_module(make_adapterhub(model_dir, kind, tmp_path / "module"))
    (point,) = [p for p in module_points(module, "input") if p.endswith(f":{slot}")]
    assert point.startswith("adapter_ln:" if kind == "seq_bn" else "adapter:")
    ids = input_ids()
    stock = AutoModel.from_pretrained(str(model_dir)).eval()
    target = hook_target(spec_by_name(family), 0, point)
    with torch.no_grad(), capture(stock, {target}) as probed:
        stock(input_ids=ids)
    adapted = AutoModel.from_pretrained(str(model_dir)).eval()
    adapters.init(adapted)
    adapted.load_adapter(str(tmp_path / "module"))
    adapted.set_active_adapters("task")
    with torch.no_grad(), capture(adapted, {(adapter_path, "input")}) as seen:
        adapted(input_ids=ids)
    assert torch.allclose(probed[target], seen[(adapter_path, "input")], atol=1e-6)
