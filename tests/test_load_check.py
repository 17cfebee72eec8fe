"""Outputs load where users load them: a transferred module is loaded onto the student, built on the meta
device as the class a user would load it on (task class for a task module, bare model for a bare one),
before the output is kept; a module that would not load is refused and nothing is written."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModel, AutoModelForTokenClassification

import peftport
from module_factory import make_peft_lora
from peftport.errors import ModuleFormatError
from peftport.formats import peft_lora
from tiny_models import input_ids


@pytest.fixture(scope="module")
def token_module(tiny_model, tmp_path_factory):
    """A TOKEN_CLS LoRA trained on a task model: keys in the task layout (``bert.encoder...``), with a head."""
    teacher = tiny_model("bert", 4)
    model = AutoModelForTokenClassification.from_pretrained(str(teacher), num_labels=3)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="TOKEN_CLS")
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    out = tmp_path_factory.mktemp("token") / "module"
    peft_model.save_pretrained(str(out))
    return out


def _effect(model):
    ids = input_ids()
    with torch.no_grad():
        moved = model(input_ids=ids)[0]
        with model.disable_adapter():
            plain = model(input_ids=ids)[0]
    return (moved - plain).abs().max().item()


def test_a_task_module_is_checked_on_the_task_class_and_works_there(token_module, tiny_model, cli, tmp_path):
    student, out = tiny_model("bert", 2), tmp_path / "out"
    result = cli("transfer", "--teacher", tiny_model("bert", 4), "--student", student, "--module", token_module,
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "as AutoModelForTokenClassification with every adapter key in place" in result.output
    manifest = json.loads((out / "peftport_manifest.json").read_text())
    assert manifest["loads_on"] == {"model_class": "AutoModelForTokenClassification", "model": str(student)}
    model = PeftModel.from_pretrained(AutoModelForTokenClassification.from_pretrained(str(student), num_labels=3), out)
    assert _effect(model) > 1e-4


def test_a_bare_module_is_checked_on_the_bare_model(tiny_model, tmp_path):
    module = make_peft_lora(tiny_model("bert", 4), "bert", tmp_path / "bare", task_model=False)
    moved = peftport.transfer(module, teacher=str(tiny_model("bert", 4)), student=str(tiny_model("bert", 2)))
    peftport.save_module(moved, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "peftport_manifest.json").read_text())
    assert manifest["loads_on"]["model_class"] == "AutoModel"
    assert (
        _effect(PeftModel.from_pretrained(AutoModel.from_pretrained(str(tiny_model("bert", 2))), tmp_path / "out")) > 0
    )


def test_an_output_that_would_not_load_is_refused_and_not_written(token_module, tiny_model, monkeypatch, tmp_path):
    moved = peftport.transfer(token_module, teacher=str(tiny_model("bert", 4)), student=str(tiny_model("bert", 2)))
    written = peft_lora._state_dict

    def broken(spec, module):  # a codec bug: one layer's keys in the bare layout
        return {k.replace("bert.encoder.layer.1.", "encoder.layer.1."): v for k, v in written(spec, module).items()}

    monkeypatch.setattr(peft_lora, "_state_dict", broken)
    with pytest.raises(ModuleFormatError, match=r"does not load on .* as AutoModelForTokenClassification: 4 adapter"):
        peftport.save_module(moved, tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
