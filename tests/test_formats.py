"""Codecs: detection, lossless round trips, and peft <-> AdapterHub LoRA conversion with equal outputs."""

from __future__ import annotations

import json

import adapters
import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from module_factory import make_adapterhub, make_peft_lora
from peftport.formats.registry import detect_format, load_module, save_module
from tiny_models import input_ids


def _tensors(module):
    return {
        (layer, slot, role): t
        for layer, slots in module.layers.items()
        for slot, roles in slots.items()
        for role, t in roles.items()
    }


def _assert_same(a, b):
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
    assert (a.kind, a.settings, a.family, a.name, a.task_model) == (b.kind, b.settings, b.family, b.name, b.task_model)
    assert a.extras.keys() == b.extras.keys()


@pytest.fixture
def modules(tiny_model, tmp_path):
    bert = tiny_model("bert", 2)
    ln_config = adapters.SeqBnConfig(reduction_factor=4, ln_before=True, ln_after=True, use_gating=True)
    return {
        "peft_task": make_peft_lora(bert, "bert", tmp_path / "peft_task"),
        "peft_base": make_peft_lora(bert, "bert", tmp_path / "peft_base", task_model=False),
        "seq_bn": make_adapterhub(bert, "seq_bn", tmp_path / "seq_bn"),
        "double_seq_bn": make_adapterhub(bert, "double_seq_bn", tmp_path / "double"),
        "ah_lora": make_adapterhub(bert, "ah_lora", tmp_path / "ah_lora"),
        "norms_and_gate": make_adapterhub(bert, "seq_bn", tmp_path / "ln", config=ln_config),
    }


def test_detection(modules):
    assert detect_format(modules["peft_task"]) == "peft"
    assert detect_format(modules["seq_bn"]) == "adapterhub"
    assert detect_format(modules["ah_lora"]) == "adapterhub"


@pytest.mark.parametrize("name", ["peft_task", "peft_base", "seq_bn", "double_seq_bn", "ah_lora", "norms_and_gate"])
def test_round_trip_is_lossless(modules, name, tmp_path):
    first = load_module(modules[name])
    save_module(first, tmp_path / "again")
    second = load_module(tmp_path / "again")
    _assert_same(first, second)
    assert detect_format(tmp_path / "again") == detect_format(modules[name])


def test_reads_peft_pickled_weights(tiny_model, tmp_path):
    bert = tiny_model("bert", 2)
    make_peft_lora(bert, "bert", tmp_path / "bin", safe_serialization=False)
    assert (tmp_path / "bin" / "adapter_model.bin").is_file()
    assert not (tmp_path / "bin" / "adapter_model.safetensors").exists()
    _assert_same(load_module(tmp_path / "bin"), load_module(make_peft_lora(bert, "bert", tmp_path / "safe")))


def test_reads_what_the_libraries_wrote(modules):
    task = load_module(modules["peft_task"])
    assert (task.kind, task.family, task.task_model, task.slots) == (
        "lora",
        "bert",
        True,
        ["attn_q", "attn_v", "ffn_out"],
    )
    assert any("classifier" in k for k in task.extras), "the task head is kept as an extra"
    assert load_module(modules["peft_base"]).task_model is False
    double = load_module(modules["double_seq_bn"])
    assert double.slots == ["attn_adapter", "ffn_adapter"] and double.settings.architecture == "double_seq_bn"
    norms = load_module(modules["norms_and_gate"]).layers[0]["ffn_adapter"]
    assert {"norm_before.weight", "norm_after.bias", "gate.weight", "down.weight"} <= norms.keys()
    assert norms["down.weight"].shape == (8, 32)


def _peft_output(model_dir, module_dir):
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(model_dir)), str(module_dir)).eval()
    with torch.no_grad():
        return model(input_ids=input_ids()).last_hidden_state


def _adapterhub_output(model_dir, module_dir):
    model = AutoModel.from_pretrained(str(model_dir))
    adapters.init(model)
    model.load_adapter(str(module_dir), set_active=True)
    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids()).last_hidden_state


def _base_output(model_dir):
    with torch.no_grad():
        return AutoModel.from_pretrained(str(model_dir)).eval()(input_ids=input_ids()).last_hidden_state


@pytest.mark.parametrize("rslora", [False, True])
def test_peft_to_adapterhub_keeps_outputs(tiny_model, tmp_path, cli, rslora):
    bert = tiny_model("bert", 2)
    source = make_peft_lora(
        bert,
        "bert",
        tmp_path / "peft",
        task_model=False,
        use_rslora=rslora,
        slots=["attn_q", "attn_k", "attn_v", "ffn_in", "ffn_out"],
    )
    result = cli("convert", source, "--to", "adapterhub", "--out", tmp_path / "ah")
    assert result.exit_code == 0, result.output
    expected = _peft_output(bert, source)
    assert not torch.allclose(expected, _base_output(bert), atol=1e-4), "the LoRA must change the output"
    torch.testing.assert_close(_adapterhub_output(bert, tmp_path / "ah"), expected, rtol=1e-5, atol=1e-5)
    if rslora:
        alpha = json.loads((tmp_path / "ah" / "adapter_config.json").read_text())["config"]["alpha"]
        assert alpha == pytest.approx(8 * 2.0), "rsLoRA scaling alpha/sqrt(r) becomes AdapterHub alpha/r"


def test_adapterhub_to_peft_keeps_outputs(tiny_model, modules, tmp_path, cli):
    bert = tiny_model("bert", 2)
    result = cli("convert", modules["ah_lora"], "--to", "peft", "--out", tmp_path / "peft")
    assert result.exit_code == 0, result.output
    torch.testing.assert_close(
        _peft_output(bert, tmp_path / "peft"), _adapterhub_output(bert, modules["ah_lora"]), rtol=1e-5, atol=1e-5
    )
    manifest = json.loads((tmp_path / "peft" / "peftport_manifest.json").read_text())
    conversion = manifest["conversion"]
    assert conversion["source_module"] == str(modules["ah_lora"]) and conversion["source_format"] == "adapterhub"
    assert conversion["format"] == "peft" and manifest["format"] == "peft"
    shown = cli("inspect", tmp_path / "peft")
    assert shown.exit_code == 0 and "Converted by peftport" in shown.stdout


def test_bottleneck_cannot_become_peft(modules, tmp_path, cli):
    result = cli("convert", modules["seq_bn"], "--to", "peft", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "peft has no bottleneck adapters" in result.output
    assert not (tmp_path / "x").exists()


def test_peft_lora_on_attention_output_cannot_become_adapterhub(tiny_model, tmp_path, cli):
    source = make_peft_lora(tiny_model("bert", 2), "bert", tmp_path / "peft", slots=["attn_out"])
    result = cli("convert", source, "--to", "adapterhub", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "cannot target slot(s) ['attn_out']" in result.output
    assert not (tmp_path / "x").exists()


def test_written_peft_targets_only_the_module_slots(tiny_model, tmp_path):
    """Ambiguous short names (bert's ffn_out is 'output.dense') must not catch other modules."""
    bert = tiny_model("bert", 2)
    source = make_peft_lora(bert, "bert", tmp_path / "peft", task_model=False, slots=["attn_q", "ffn_out"])
    save_module(load_module(source), tmp_path / "again")
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(bert)), str(tmp_path / "again"))
    wrapped = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    assert wrapped == [
        f"base_model.model.encoder.layer.{i}.{p}" for i in range(2) for p in ("attention.self.query", "output.dense")
    ]
