"""Identity transfer (teacher == student, identity map) reproduces the teacher's outputs exactly."""

import adapters
import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from module_factory import make_adapterhub, make_peft_lora
from tiny_models import input_ids


def _outputs(model_dir, module_dir, kind):
    model = AutoModel.from_pretrained(str(model_dir))
    if kind == "peft_lora":
        model = PeftModel.from_pretrained(model, str(module_dir))
    else:
        adapters.init(model)
        model.load_adapter(str(module_dir), set_active=True)
    with torch.no_grad():
        return model.eval()(input_ids=input_ids()).last_hidden_state


CASES = [
    (f, k)
    for f in ("bert", "distilbert", "mpnet")
    for k in ("peft_lora", "seq_bn", "double_seq_bn")
    if f != "mpnet" or k == "peft_lora"
]  # AdapterHub has no mpnet support


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_identity_transfer_keeps_outputs(family, kind, tiny_model, cli, tmp_path):
    model = tiny_model(family, 3)
    if kind == "peft_lora":
        source = make_peft_lora(model, family, tmp_path / "teacher", task_model=False)
    else:
        source = make_adapterhub(model, kind, tmp_path / "teacher")
    result = cli(
        "transfer",
        "--teacher",
        model,
        "--student",
        model,
        "--module",
        source,
        "--layer-map",
        "identity",
        "--out",
        tmp_path / "student",
    )
    assert result.exit_code == 0, result.output
    torch.testing.assert_close(
        _outputs(model, tmp_path / "student", kind), _outputs(model, source, kind), rtol=0, atol=0
    )
